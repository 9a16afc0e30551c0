package coord

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"coord/coord/par"
	"coord/coord/replica"
	"coord/proto/parpb"
)

// A peer hammers PeerRepair (GetEntries reads the log, Hello writes the
// meta record) while the server closes. Close closes the par store (in the
// replica's Close) before gRPC stops, and grpc.Server.Stop does not wait
// for running handlers; the hook holds that window open for 300 ms. Every
// call that starts after the stores closed must fail with
// codes.Unavailable (never an answer from closed files), errors are only
// codes.Unavailable, nothing panics (run under -race), and no late handler
// writes the meta record: the next process to open the dir sets a term
// that must survive.
func TestClose_PeerRepairAfterStoresClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.HTTP = "n1", filepath.Join(t.TempDir(), "n1"), ""
	cfg.InitialCluster = []replica.Peer{{Name: "n1", Address: ln.Addr().String()}}
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLease = 200*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	srv, err := Start(cfg, ln)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var storesClosed, closeReturned atomic.Bool
	hook := func() { storesClosed.Store(true); time.Sleep(300 * time.Millisecond) }
	testHookStoresClosed.Store(&hook)
	defer testHookStoresClosed.Store(nil)

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := parpb.NewPeerRepairClient(cc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		ok, unavailable, inWindow atomic.Int64
		inc                       atomic.Uint64
		mu                        sync.Mutex
		bad                       []string
		wg                        sync.WaitGroup
	)
	report := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(bad) < 5 {
			bad = append(bad, s)
		}
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				after := storesClosed.Load()
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				var err error
				if k%2 == 0 {
					_, err = cl.GetEntries(cctx, &parpb.GetEntriesRequest{Requester: "n2", Items: []*parpb.Item{{Index: 1, Term: 1}}})
				} else {
					_, err = cl.Hello(cctx, &parpb.HelloRequest{Name: "n9", ClusterId: []byte("c"), NodeId: bytes.Repeat([]byte{7}, 16), Incarnation: inc.Add(1)})
				}
				ccancel()
				switch {
				case err == nil && after:
					report("a PeerRepair call answered after the stores closed")
				case err == nil:
					ok.Add(1)
				case status.Code(err) == codes.Unavailable:
					unavailable.Add(1)
					if after && !closeReturned.Load() {
						inWindow.Add(1)
					}
					time.Sleep(time.Millisecond)
				case ctx.Err() != nil:
				default:
					report("not a clean error: " + err.Error())
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := srv.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	closeReturned.Store(true)
	// The next incarnation of the node opens the dir and moves the term.
	st, err := par.Open(par.Config{Dir: cfg.DataDir, Name: cfg.Name})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Stable.SetUint64([]byte("CurrentTerm"), 99); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // room for a late handler of the closed server
	cancel()
	wg.Wait()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = par.Open(par.Config{Dir: cfg.DataDir, Name: cfg.Name})
	if err != nil {
		t.Fatal(err)
	}
	term, _ := st.Stable.DurableTerm()
	_ = st.Close()
	for _, b := range bad {
		t.Error(b)
	}
	if term != 99 {
		t.Errorf("durable term %d after reopening, want 99: a handler of the closed server wrote the meta record", term)
	}
	if ok.Load() == 0 || inWindow.Load() == 0 {
		t.Fatalf("%d answers, %d Unavailable while gRPC still served: the window was not exercised", ok.Load(), inWindow.Load())
	}
	t.Logf("%d answers before the stores closed, %d Unavailable (%d while gRPC still served)", ok.Load(), unavailable.Load(), inWindow.Load())
}
