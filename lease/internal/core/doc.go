// Package core is the pure Flease protocol: the round-based register
// (Register), a member's acceptor role (Acceptor: cells, restart wait,
// stale-request filter) and its proposer role (Member: rounds, ballots,
// holder deadlines, renewals, retries, epochs). It has no goroutines, no
// clock reads, no I/O and no global state; time is an Instant passed in, and
// every call returns an Output (messages to send, events for the host).
//
// Hosts: package lease drives it with real clocks and gRPC; package
// lease/sim drives it with virtual time and a faulty network. Knobs are
// deliberate bugs used only by the simulator's teeth tests; being in an
// internal package, they cannot be set outside lease/.
//
// # Caller's contract
//
//  1. NewAcceptor and NewMember with the same start Instant: both stay silent
//     until start.Mono + Timing.RestartWait().
//  2. Route every outgoing Message: Prepare/Accept to the destination's
//     Acceptor.Handle (the own acceptor too — never bypass its restart
//     wait), replies and Learn to the destination's Member.Step.
//  3. Call Member.Tick at Member.NextWake (earlier is harmless).
//  4. Consume an Output before the next call into the same Member: its
//     slices are reused.
//  5. Calls on one Member or Acceptor must not run concurrently.
package core
