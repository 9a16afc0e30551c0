package coord_test

import (
	"fmt"
	"testing"
	"time"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// A follower's watchers hear of a change when the leader applies it, not
// when the follower learns the commit (CommitTimeout, long here so the
// difference is plain), and the follower's own apply later adds no
// duplicates: every event arrives once, in zxid order.
func TestPush_FollowerWatchersHearChangesAtLeaderSpeed(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.CommitTimeout = 400 * time.Millisecond
	}})
	testPush(t, c, c.Conn(c.Leader()), c.Conn(c.Follower()))
}

// The same with TLS and superusers on: the follower's pull is a peer call
// the authorizer must let through (if it did not, watches would silently
// fall back to the follower's own, slow, apply).
func TestPush_WorksWithTLSAndAuth(t *testing.T) {
	d := makeCerts(t)
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.CommitTimeout = 400 * time.Millisecond
		cfg.TLS = nodeFiles(d.good, cfg.Name)
		cfg.Superusers = []string{"x509:admin"}
	}})
	conn := func(i int) coordpb.CoordClient {
		return coordpb.NewCoordClient(dialAs(t, c.Node(i).Addr, d.good, "admin"))
	}
	testPush(t, c, conn(c.Leader()), conn(c.Follower()))
}

func testPush(t *testing.T, c *coordtest.Cluster, leader, follower coordpb.CoordClient) {
	ctx := coordtest.Ctx(t, 30*time.Second)
	mustCreate(t, ctx, leader, "/p", nil)
	c.WaitApplied(c.Node(c.Leader()).Server.Replica().Applied(), 5*time.Second)

	w := openWatch(t, ctx, follower)
	w.create(1, "/p", coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE, 0)
	if r := w.next(5 * time.Second); !r.Created {
		t.Fatalf("want created, got %v", r)
	}
	time.Sleep(300 * time.Millisecond) // the follower starts pulling

	const n = 20
	var lags []time.Duration
	for i := range n {
		time.Sleep(50 * time.Millisecond) // sparse writes: the slow case
		sent := time.Now()
		resp, err := leader.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: fmt.Sprintf("/p/k%02d", i)}})
		if err != nil {
			t.Fatal(err)
		}
		r := w.next(5 * time.Second)
		if len(r.Events) != 1 || r.Events[0].Zxid != resp.Header.Zxid || r.Events[0].Path != fmt.Sprintf("/p/k%02d", i) {
			t.Fatalf("event %d: %v, want the create at zxid %d", i, r, resp.Header.Zxid)
		}
		lags = append(lags, time.Since(sent))
	}
	slow := 0
	for _, l := range lags {
		if l > 200*time.Millisecond {
			slow++
		}
	}
	if slow > n/4 {
		t.Fatalf("%d of %d events took over 200ms (CommitTimeout-bound): %v", slow, n, lags)
	}
	// The follower's own apply catches up: nothing more may arrive.
	c.WaitApplied(c.Node(c.Leader()).Server.Replica().Applied(), 5*time.Second)
	time.Sleep(900 * time.Millisecond)
	select {
	case r := <-w.resps:
		t.Fatalf("duplicate or stray event after catching up: %v", r)
	default:
	}
}
