package coord

import "coord/coord/tree"

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
