package replica

import (
	"sync"

	"github.com/hashicorp/raft"
)

// gatedTransport is raft's NetworkTransport with a gate on the heartbeat
// fast path, so Close can know that no raft code still runs on a
// transport goroutine before it closes the stores.
//
// Why: NetworkTransport hands a pure heartbeat to raft's processHeartbeat
// on the connection's own goroutine (raft.go, "heartbeat fast-path"), not
// through raft's main loop. processHeartbeat checks raft's shutdown
// channel only once, at its start; after that, appendEntries persists the
// term (setCurrentTerm → StableStore.SetUint64) whenever the heartbeat's
// term is newer or the node is not a follower, and raft's Shutdown sets
// the state to Shutdown, so a heartbeat that passed the check while
// Shutdown ran always writes. raft.Shutdown().Error() waits only for
// raft's own goroutines, and NetworkTransport.Close does not wait for its
// connection handlers either. A heartbeat that slipped in therefore wrote
// the term into a store Close had already closed; raft-boltdb answers
// "database not open" and setCurrentTerm panics (seen once in ~3,700
// in-process family D cases, coordfault plain mode).
//
// The gate: every heartbeat runs under a read lock; closeHeartbeats takes
// the write lock, which waits for the heartbeats in flight, and from then
// on heartbeats are answered with raft.ErrRaftShutdown without reaching
// raft. Every other RPC goes through raft's main loop, which
// raft.Shutdown().Error() waits for. All other methods are the embedded
// NetworkTransport's (so raft sees the same optional interfaces:
// WithClose, WithPreVote).
type gatedTransport struct {
	*raft.NetworkTransport
	mu     sync.RWMutex
	closed bool
}

// SetHeartbeatHandler installs cb behind the gate.
func (g *gatedTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		g.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	g.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		g.mu.RLock()
		defer g.mu.RUnlock()
		if g.closed {
			rpc.Respond(nil, raft.ErrRaftShutdown)
			return
		}
		cb(rpc)
	})
}

// closeHeartbeats waits for the heartbeats being handled and turns away
// the later ones. Idempotent.
func (g *gatedTransport) closeHeartbeats() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
