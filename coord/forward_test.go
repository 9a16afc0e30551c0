package coord_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// Concurrent writes sent to a follower travel to the leader in batches,
// and each keeps its own outcome: successes get their own zxid, a failing
// write in the same batch gets its own typed error.
func TestForward_ConcurrentWritesBatchedEachWithItsOwnOutcome(t *testing.T) {
	// The burst of 300 is about batching, not admission (admission_test.go):
	// let all of it in flight, or a slow machine's standing queue sheds some.
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) { cfg.Admission.MaxWrites = 512 }})
	ctx := coordtest.Ctx(t, 30*time.Second)
	f := c.Follower()
	fc := c.Conn(f)
	mustCreate(t, ctx, fc, "/fw", nil)
	mustCreate(t, ctx, fc, "/fw/taken", nil)

	const n = 300
	var wg sync.WaitGroup
	zxids := make([]uint64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/fw/k%03d", i)
			if i%50 == 0 {
				p = "/fw/taken" // exists: this one must fail alone
			}
			resp, err := fc.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: p, Data: []byte(p)}})
			errs[i] = err
			if err == nil {
				zxids[i] = resp.Header.GetZxid()
			}
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range n {
		if i%50 == 0 {
			if status.Code(errs[i]) != codes.AlreadyExists || detailCode(errs[i]) != coordpb.ErrorCode_NODE_EXISTS {
				t.Fatalf("create of an existing node %d: %v, want NODE_EXISTS", i, errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		if zxids[i] == 0 || seen[zxids[i]] {
			t.Fatalf("create %d: zxid %d missing or shared", i, zxids[i])
		}
		seen[zxids[i]] = true
	}
	// Everything acknowledged is there, read from the leader.
	ch, err := c.Conn(c.Leader()).Children(ctx, &coordpb.ChildrenRequest{Path: "/fw"})
	if err != nil {
		t.Fatal(err)
	}
	if want := n - n/50 + 1; len(ch.GetNames()) != want {
		t.Fatalf("children: %d, want %d", len(ch.GetNames()), want)
	}
	batches, writes := c.Node(f).Server.ForwardStats()
	if writes < n {
		t.Fatalf("forwarded %d writes, want at least %d", writes, n)
	}
	if batches >= writes {
		t.Fatalf("%d batches for %d writes: nothing was batched", batches, writes)
	}
	t.Logf("%d writes in %d batches", writes, batches)
}
