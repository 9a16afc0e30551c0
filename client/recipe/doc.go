// Package recipe builds coordination recipes on the coord client: a
// distributed lock without herd effect and leader election, each handing
// out a fencing token.
//
// # Fencing tokens
//
// A lock or a leadership term is only as safe as what the holder does
// with it: a holder paused past its session timeout still believes it
// holds the lock. So every acquisition returns a token — the zxid that
// created the holder's node — which strictly increases for a given lock
// across holders, leader changes and restarts (zxids are raft indexes).
// Pass the token to the resource you protect and have it reject any token
// lower than the highest it has seen; or make the write itself conditional
// on still holding the lock with Lock.Guard (a Multi whose first op checks
// that the holder's node still exists).
//
// # Lock
//
// Each contender creates an ephemeral sequential node under the lock's
// path and holds the lock when its node is first in sequence order; the
// others each watch only their predecessor (no herd effect: one release
// wakes one waiter). The lock's session is the client's: if it expires the
// node is gone and Lost() closes at once.
//
// # Read-write lock, semaphore, barrier, group
//
// NewReadLock/NewWriteLock share one queue: a reader holds while no writer
// queued before it (it watches the last such writer), a writer when first.
// NewSemaphore(n) holds while fewer than n queued before it and watches
// the contender n places ahead. Barrier is ZooKeeper's: Set, Wait, Remove.
// Group is live membership: ephemeral member nodes, Watch streams the
// member list.
//
// # Election
//
// The same queue, with the candidate's proposal as the node's data; the
// leader is the first node. Observe streams the proposal of each new
// leader.
//
// # Goroutines
//
// A held Lock (or won Election) runs one goroutine that watches its own
// node and the session; it ends on Unlock/Resign or when the lock is lost.
// Observe runs one goroutine until its ctx ends.
package recipe
