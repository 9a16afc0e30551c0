package coord_test

import (
	"errors"
	"testing"
	"time"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/coord/replica"
	"coord/proto/coordpb"
	"coord/session"
)

// TestSessions_TableResetOnTermChange: a leader whose session loop is
// starved can lose and regain leadership between two of its ticks. Its
// session table is then the old term's: the keepalives of the term in
// between went to the other leader, so the old deadlines say nothing about
// the clients. The session tick resets the table when raft's term changed
// since its last reset (every session gets a grace of its own timeout, as
// at any takeover).
//
// Real 3-node cluster over loopback TCP, real leadership transfers; only
// the session loop's ticks are paused (a test hook, as a starved loop).
// Session S (timeout T = 4 s) is kept alive on leader L once, then left
// alone for 0.7 T while L's loop runs, so L's table gives it ~0.3 T. With
// L's loop paused, leadership goes to F, S keeps alive on F, and leadership
// comes back to L (two new terms). Then L's loop resumes. Without the reset
// L keeps S's old deadline (pause compensation counts the gap as one
// tick) and expires S ~0.3 T later, although its client did everything
// right; with it S lives at least T from the resume.
func TestSessions_TableResetOnTermChange(t *testing.T) {
	const timeout = 4 * time.Second
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Sessions = session.Limits{Min: time.Second, Max: 10 * time.Second, Default: timeout}
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	li, fi := c.Leader(), c.Follower()
	ln, fn := c.Node(li), c.Node(fi)
	lc, fc := c.Conn(li), c.Conn(fi)

	// Replica.TransferLeadership's typed refusals.
	if err := coord.TransferLeadership(ctx, fn.Server, ln.Name); !errors.Is(err, replica.ErrNotLeader) {
		t.Fatalf("transfer from follower %s: %v, want ErrNotLeader", fn.Name, err)
	}
	for _, to := range []string{"nobody", ln.Name} {
		if err := coord.TransferLeadership(ctx, ln.Server, to); !errors.Is(err, replica.ErrMembership) {
			t.Fatalf("transfer to %q: %v, want ErrMembership", to, err)
		}
	}

	open, err := lc.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		t.Fatal(err)
	}
	id := open.SessionId
	if _, err := lc.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(timeout * 7 / 10)

	resume := coord.PauseSessionTicks(ln.Server)
	defer resume()
	term0 := coord.RaftTerm(ln.Server)
	if err := coord.TransferLeadership(ctx, ln.Server, fn.Name); err != nil {
		t.Fatalf("transfer %s -> %s: %v", ln.Name, fn.Name, err)
	}
	if got := c.WaitLeader(10 * time.Second); got != fi {
		t.Fatalf("leader after the transfer to %s is %s", fn.Name, c.Node(got).Name)
	}
	// The client keeps its session alive on the leader of the term in
	// between.
	if _, err := fc.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id}); err != nil {
		t.Fatalf("keepalive on the interim leader %s: %v", fn.Name, err)
	}
	if err := coord.TransferLeadership(ctx, fn.Server, ln.Name); err != nil {
		t.Fatalf("transfer %s -> %s: %v", fn.Name, ln.Name, err)
	}
	if got := c.WaitLeader(10 * time.Second); got != li {
		t.Fatalf("leader after the transfer back to %s is %s", ln.Name, c.Node(got).Name)
	}
	term1 := coord.RaftTerm(ln.Server)
	if term1 < term0+2 {
		t.Fatalf("%s leads in term %d, want at least %d (lost and regained)", ln.Name, term1, term0+2)
	}
	resumed := time.Now()
	resume()

	// L's table, if not reset, has S due ~0.3 T after the resume. Watch
	// S in L's applied state (no keepalive: one would renew the old
	// deadline too) until well past that and well before T.
	for time.Since(resumed) < timeout*6/10 {
		if _, ok := coord.AppliedState(ln.Server).SessionTimeout(id); !ok {
			t.Fatalf("session expired %v after %s regained leadership (term %d -> %d) although it was kept alive on the interim leader: the old term's session table was kept", time.Since(resumed).Round(time.Millisecond), ln.Name, term0, term1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := lc.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id}); err != nil {
		t.Errorf("keepalive %v after the resume: %v (code %v), want alive", time.Since(resumed).Round(time.Millisecond), err, detailCode(err))
	}
	if term := coord.RaftTerm(ln.Server); term != term1 {
		t.Logf("note: leadership changed again during the watch (term %d -> %d)", term1, term)
	}
}
