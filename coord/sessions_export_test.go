package coord

import (
	"context"

	"coord/coord/tree"
)

// SetRelayBlocked makes s's keepalive relay fail (true), as if the leader
// could not be reached, until it is called with false. s keeps answering
// its clients' keepalives meanwhile, as a starved or cut-off follower
// does; the failed relays are kept and sent once it is unblocked.
func SetRelayBlocked(s *Server, blocked bool) { s.sess.relayBlocked.Store(blocked) }

// SetLeaderStateHook makes the leader named name check keepalives against
// stale(real) instead of its applied state, until the returned func is
// called (tests: a new leader that has not applied what its predecessor
// committed).
func SetLeaderStateHook(name string, stale func(real *tree.Tree) *tree.Tree) (undo func()) {
	h := func(n string, t *tree.Tree) *tree.Tree {
		if n == name {
			return stale(t)
		}
		return t
	}
	testHookLeaderState.Store(&h)
	return func() { testHookLeaderState.Store(nil) }
}

// AppliedState returns s's applied state.
func AppliedState(s *Server) *tree.Tree {
	t, _ := s.rep.State()
	return t
}

// PauseSessionTicks makes s's session loop skip its ticks (a starved
// loop: no expiry, no relay, no leadership bookkeeping) until resume is
// called.
func PauseSessionTicks(s *Server) (resume func()) {
	s.sess.ticksPaused.Store(true)
	return func() { s.sess.ticksPaused.Store(false) }
}

// TransferLeadership hands leadership from s (the leader) to the voter
// named to.
func TransferLeadership(ctx context.Context, s *Server, to string) error {
	return s.rep.TransferLeadership(ctx, to)
}

// RaftTerm is s's current raft term.
func RaftTerm(s *Server) uint64 { return s.rep.Term() }
