package par

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"coord/proto/parpb"
)

// coord.Server.Close closes the par store (inside the replica's Close)
// while its gRPC server still serves PeerRepair, and grpc.Server.Stop does
// not wait for running handlers. This test holds that window open: the
// gRPC server keeps serving after Store.Close. Peers hammer GetEntries and
// Hello (which writes the meta record) before, during and after the close.
// Every answer must come from the open store or be codes.Unavailable:
// after Close returns no handler may answer from the closed files (an
// intact entry reported HAVE_FAULTY) or write the meta copies (a late Hello
// would overwrite the term/vote of the process that reopens the dir).
func TestServer_ClosedStoreAnswersUnavailable(t *testing.T) {
	dir := t.TempDir()
	st := openTestStore(t, dir)
	storeN(t, st, 1, 5, 1)
	if err := st.Stable.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, st) // keeps serving after st.Close, until cleanup
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := parpb.NewPeerRepairClient(cc)

	var (
		closed   atomic.Bool // Close has returned
		inc      atomic.Uint64
		okBefore atomic.Int64
		unavail  atomic.Int64
		mu       sync.Mutex
		bad      []string
	)
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(bad) < 5 {
			bad = append(bad, s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				after := closed.Load() // the call starts after Close returned
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				var err error
				if k%2 == 0 {
					var r *parpb.GetEntriesResponse
					r, err = cl.GetEntries(cctx, &parpb.GetEntriesRequest{Requester: "n2", Items: []*parpb.Item{{Index: 3, Term: 1}}})
					if err == nil && (len(r.Replies) != 1 || Status(r.Replies[0].Status) != StatusHave) {
						fail("GetEntries answered " + r.String() + " for an intact entry")
					}
				} else {
					var r *parpb.HelloResponse
					r, err = cl.Hello(cctx, &parpb.HelloRequest{Name: "n9", ClusterId: []byte("c"), NodeId: bytes.Repeat([]byte{7}, 16), Incarnation: inc.Add(1)})
					if err == nil && !r.Stored {
						fail("Hello not stored by an open store")
					}
				}
				ccancel()
				switch {
				case err == nil && after:
					fail("answered from a closed store")
				case err == nil:
					okBefore.Add(1)
				case status.Code(err) == codes.Unavailable:
					unavail.Add(1)
				case ctx.Err() != nil:
				default:
					fail("unexpected error: " + err.Error())
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	closed.Store(true)
	meta := func() []byte {
		a, _ := os.ReadFile(filepath.Join(dir, MetaFileA))
		b, _ := os.ReadFile(filepath.Join(dir, MetaFileB))
		return append(a, b...)
	}
	atClose := meta()
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	for _, b := range bad {
		t.Error(b)
	}
	if !bytes.Equal(meta(), atClose) {
		t.Error("the meta copies changed after Store.Close returned")
	}
	if okBefore.Load() == 0 || unavail.Load() == 0 {
		t.Fatalf("%d answers before the close, %d Unavailable after: the window was not exercised", okBefore.Load(), unavail.Load())
	}
	t.Logf("%d answers from the open store, %d Unavailable", okBefore.Load(), unavail.Load())
}
