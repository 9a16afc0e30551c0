package coord_test

import (
	"testing"
	"time"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
	"coord/session"
)

// TestSessions_FollowerKeepAliveAfterCloseOnLeader: a follower answers
// keepalives of sessions it knows through the leader (the relay rounds),
// without a read-index round; it must still never say "alive" for a
// session the leader has closed, even when the follower has not applied
// the close yet and the leader's deadline table has not caught up with it.
func TestSessions_FollowerKeepAliveAfterCloseOnLeader(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Sessions = session.Limits{Min: 300 * time.Millisecond, Max: 10 * time.Second, Default: 2 * time.Second}
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	leader := c.Conn(c.Leader())
	follower := c.Conn(c.Follower())
	const n = 20
	ids := make([]uint64, n)
	for i := range ids {
		open, err := leader.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 2000})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = open.SessionId
	}
	// The follower knows them all (a keepalive through it succeeds), so
	// the next keepalives take the relay path.
	for _, id := range ids {
		if _, err := follower.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id}); err != nil {
			t.Fatalf("keepalive through the follower: %v", err)
		}
	}
	for i, id := range ids {
		if _, err := leader.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: id}); err != nil {
			t.Fatalf("close %d: %v", i, err)
		}
		_, err := follower.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id})
		if detailCode(err) != coordpb.ErrorCode_SESSION_EXPIRED {
			t.Fatalf("session %d: keepalive through the follower right after the leader closed it: %v, want SESSION_EXPIRED", i, err)
		}
	}
	// Sessions kept alive through the follower alone outlive their timeout.
	open, err := follower.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 600})
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(150 * time.Millisecond) {
		if _, err := follower.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: open.SessionId}); err != nil {
			t.Fatalf("keepalive of a live session through the follower: %v", err)
		}
	}
}
