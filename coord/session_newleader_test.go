package coord_test

import (
	"sync/atomic"
	"testing"
	"time"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// TestSessions_LeaderNotAppliedYetIsNotExpired: a leader's applied state
// can lack a live session (a new leader applies what its predecessor
// committed only once an entry of its own term commits). Such a leader
// must not answer that session's keepalives "session expired", neither
// its own nor those a follower relays: it looks again from a linearizable
// point first. (In a 10,000-session open with leader changes, live
// clients were told their sessions expired while no server expired one.)
// The stale state is a test hook: the leader sees its state from before
// the sessions opened until its read-index round; a session missing after
// that round is still answered "expired".
func TestSessions_LeaderNotAppliedYetIsNotExpired(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 30*time.Second)
	li, fi := c.Leader(), c.Follower()
	leaderNode := c.Node(li)
	leader, follower := c.Conn(li), c.Conn(fi)
	before := coord.AppliedState(leaderNode.Server)
	var direct, relayed uint64
	for _, p := range []*uint64{&direct, &relayed} {
		open, err := leader.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 10000})
		if err != nil {
			t.Fatal(err)
		}
		*p = open.SessionId
	}
	// The follower knows the relayed one (its next keepalive is relayed).
	if _, err := follower.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: relayed}); err != nil {
		t.Fatal(err)
	}

	// Stale once: the leader's first look misses the session, the look
	// after its read-index round finds it.
	var looks atomic.Int32
	undo := coord.SetLeaderStateHook(leaderNode.Name, func(real *tree.Tree) *tree.Tree {
		if looks.Add(1) == 1 {
			return before
		}
		return real
	})
	if _, err := leader.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: direct}); err != nil {
		t.Errorf("keepalive on a leader that had not applied the session yet: %v (code %v), want alive", err, detailCode(err))
	}
	// At least twice: once stale, once after the read index. (A
	// follower's background relay round may look too: CI saw 3.)
	if n := looks.Load(); n < 2 {
		t.Errorf("leader looked at its state %d times, want at least 2 (once stale, once after the read index)", n)
	}
	looks.Store(0)
	if _, err := follower.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: relayed}); err != nil {
		t.Errorf("keepalive relayed to a leader that had not applied the session yet: %v (code %v), want alive", err, detailCode(err))
	}
	if n := looks.Load(); n < 2 {
		t.Errorf("leader looked at its state %d times for the relay, want at least 2", n)
	}
	undo()

	// A session still missing after the read index is gone: "expired",
	// on both paths.
	undo = coord.SetLeaderStateHook(leaderNode.Name, func(*tree.Tree) *tree.Tree { return before })
	defer undo()
	if _, err := leader.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: direct}); detailCode(err) != coordpb.ErrorCode_SESSION_EXPIRED {
		t.Errorf("keepalive on the leader for a session missing after the read index: %v, want SESSION_EXPIRED", err)
	}
	if _, err := follower.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: relayed}); detailCode(err) != coordpb.ErrorCode_SESSION_EXPIRED {
		t.Errorf("relayed keepalive for a session missing after the read index: %v, want SESSION_EXPIRED", err)
	}
}
