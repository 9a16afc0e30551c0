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
//  2. On every keepalive, Touch (received by the leader itself) or TouchVia
//     (relayed by a follower, named after it).
//  3. Every loop tick, Advance(now) moves the expiry guard's clocks
//     (guard.go), then Expire(now) lists the sessions to end, most overdue
//     first and within the expiry rate; coord re-checks each with Due and
//     proposes one CloseSession{expired} raft entry per session, which ends
//     it and deletes its ephemerals atomically.
//  4. Sync keeps the table in step with the replicated set (sessions opened
//     or closed through raft).
//
// # The expiry guard
//
// A leader that stops hearing keepalives because it, or a relaying
// follower, is starved must not expire the sessions of clients that are
// alive (guard.go, Guard): pauses of the leader's loop do not count,
// session time stands still while keepalive intake (in total, or from one
// source) is below half of what the live sessions send, and expiries are
// rate-limited. A session whose client died still ends: at its timeout
// when intake is healthy, and never later than Guard.MaxLife × its timeout
// of loop time after the last keepalive this leader counted.
//
// No goroutines, no time.Now, no locks: the caller serialises access.
//
// # Errors
//
// ErrUnknown: a keepalive for a session the table does not hold.
package session
