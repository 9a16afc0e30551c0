// Package session is the pure part of coord's sessions: the leader's table
// of session deadlines and the expiry decisions, with the clock passed in.
//
// # Where it sits
//
// The replicated part of a session (its id and timeout, and the ephemeral
// nodes it owns) lives in coord/tree, created and closed only by raft
// commands. This package holds what is NOT replicated: when each session was
// last heard from. Only the leader keeps a Table; coord drives it:
//
//  1. On becoming leader, Reset the table from the replicated sessions: each
//     gets a fresh deadline now+timeout (the grace period after a leader
//     change, bounded by the session's own timeout — no session is expired
//     because the old leader's keepalive record was lost, and none lives
//     longer than timeout + election + grace after its client went away).
//  2. On every keepalive (direct or relayed by a follower), Touch.
//  3. Periodically, Expired(now) lists sessions past their deadline; coord
//     proposes one CloseSession{expired} raft entry per session, which ends
//     it and deletes its ephemerals atomically.
//  4. Sync keeps the table in step with the replicated set (sessions opened
//     or closed through raft).
//
// No goroutines, no time.Now, no locks: the caller serialises access.
//
// # Errors
//
// ErrUnknown: a keepalive for a session the table does not hold.
package session
