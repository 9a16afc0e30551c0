package coord

// SetRelayBlocked makes s's keepalive relay fail (true), as if the leader
// could not be reached, until it is called with false. s keeps answering
// its clients' keepalives meanwhile, as a starved or cut-off follower
// does; the failed relays are kept and sent once it is unblocked.
func SetRelayBlocked(s *Server, blocked bool) { s.sess.relayBlocked.Store(blocked) }
