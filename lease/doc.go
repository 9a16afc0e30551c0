// Package lease implements Flease (Kolbeck et al., IPDPS 2011): fault-tolerant
// leases decided inside small groups of 3–7 processes, with no lock server and
// no disk. Each resource is a Paxos round-based register replicated on every
// member; a lease is a compare-and-set on it, interpreted with loosely
// synchronised clocks. The design is ../shared/design/flease.md; this file
// records what the code does, including where it deviates.
//
// # What the package owns
//
//   - internal/core: the pure protocol. Register (acceptor cell), Acceptor
//     (cells + restart wait + stale-request filter), Member (proposer cells,
//     holder deadlines, renewal and retry timers). No goroutines, no clock
//     reads, no I/O: time comes in as an Instant.
//   - this package: the driver (Node: event loops, timers, batching, gRPC
//     FleasePeer and LeaseAdmin), the application API (Acquire, TryAcquire,
//     Holder, Watch, *Lease) and Config.
//   - ntpguard: the Clock that vouches for the wall clock with NTP.
//   - sim: the deterministic simulator and true-time checker (tests only).
//   - leasectl: the operator CLI (`coordctl lease ...`).
//
// Imports: lease → internal/core, proto/leasepb, grpc, and the module's
// internal/tlsconf (TLS builders shared with coord). Never coord or session.
//
// # Caller's contract
//
//  1. Build a Config: DefaultConfig(), then ID, Group, Version, Members (same
//     order on every member) and Clock (an ntpguard.Guard whose
//     MaxClockError equals the Config's; UncheckedClock only on one host).
//     Validate reports every problem at once.
//  2. n, err := New(cfg); n.Register(grpcServer) (and RegisterAdmin for
//     operators); serve on the member's address. For RestartWait after New
//     the node is silent in every role — acceptor, own proposer, holder —
//     on every start, clean or not: that is what makes a disk unnecessary.
//     Acquire blocks through it; TryAcquire and Holder return ErrRecovering.
//  3. l, err := n.Acquire(ctx, res): blocks until held; the lease renews
//     itself every RenewAfter (default LeaseDuration/2).
//  4. Before every use check l.Valid(), and pass l.Epoch() to the storage
//     you write (fencing: storage rejects epochs below the highest seen).
//     Run critical sections under l.Context(): it is cancelled, and Done()
//     closed, the moment the lease may be lost.
//  5. l.Release(ctx) when done: invalid locally at once, then a best-effort
//     released write so others need not wait for expiry.
//  6. n.Close(): ends every lease (ErrClosed) without releasing remotely.
//
// # Safety in one paragraph
//
// A committed read-then-write with one ballot is an atomic read-modify-write
// of the register. A proposer takes a lease only if the value it read is free,
// released, or expired by more than ε on its own clock (true time > expiry);
// a holder uses its lease only while its wall clock is below expiry − ε (true
// time < expiry) and, independently, while its monotonic clock is within
// (d − ε)(1 − ρ) of the decision, so a wall step cannot stretch it. A member
// that lost state stays silent for RestartWait ≥ LeaseDuration + MaxMessageAge
// + 4ε (stretched by 2ρ), and acceptors drop requests older than
// MaxMessageAge, so anything it forgot had expired before it votes again.
// Epochs of new tenures are max(eMax+1, wall µs): above everything the read
// saw, and above any tenure a forgetful quorum lost.
//
// # Goroutines
//
//   - One loop per shard (Config.Shards, default 2), started by New, owning
//     a core.Member and the Leases/waiters/watchers of its resources. Stops
//     when Close cancels the node context; Close waits for it.
//   - One goroutine per outgoing peer RPC batch (shard.call), started by a
//     loop's flush; bounded by RoundTimeout and the node context; Close
//     waits for it (node wait group).
//   - One goroutine per Watch (unsubscribes when the caller's ctx ends);
//     exits on ctx or Close; Close waits for it.
//   - One runtime timer per Lease (time.AfterFunc at its deadline) that
//     ends the lease locally; stopped when the lease ends.
//   - LeaseAdmin: one goroutine per non-stream admin Acquire, waiting on the
//     lease's Done (which Close, Release or loss closes) to forget it.
//   - gRPC handlers run on gRPC's goroutines: they touch acceptors under the
//     shard lock and hand Learn hints to the loops.
//   - ntpguard.Guard.Run is one goroutine owned by whoever calls it; it
//     returns when its ctx ends. Poll's per-server queries end within
//     QueryTimeout and Poll waits for them.
//
// # Errors
//
// Sentinels in errors.go, wrapped with %w: ErrInvalidConfig (*ConfigError),
// ErrBadResource, ErrLeaseHeld (*HeldError), ErrNotOwner, ErrClockUnsafe,
// ErrRecovering, ErrNoQuorum, ErrConfigMismatch, ErrClosed; and the reasons
// a Lease ends (Lease.Err, context.Cause of Lease.Context): ErrExpired,
// ErrRenewFailed, ErrReleased, ErrClockUnsafe, ErrClosed. LeaseAdmin maps
// them to gRPC codes in one function (toStatus).
//
// # Decisions (and deviations from the design note)
//
//   - Layout: the pure core is lease/internal/core (not register.go/proposer.go
//     in package lease), so the simulator in lease/sim can drive it and set
//     its teeth knobs (core.Knobs) while applications cannot. The simulator is
//     lease/sim, not lease/internal/sim, so the Makefile can run it without
//     -race. The guard is lease/ntpguard, not lease/clock/ntpguard; there is
//     no separate transport/ package (gRPC only; the simulator has its own
//     network) and no internal/ntptest responder (tests use a real chronyd).
//   - One Node is one member of one group. JoinGroup (many groups per node)
//     and Reconfigure are not implemented; the group id and config version
//     are on every message and checked, so a mismatched peer is refused
//     (FailedPrecondition naming the receiver's version).
//   - RestartWait is (LeaseDuration + MaxMessageAge + 4ε)(1 + 2ρ), not the
//     design's (LeaseDuration + 2ε + MaxMessageAge)(1 + ρ): message ages are
//     measured across two clocks (2ε) on top of the taker's ε.
//   - The stale-request filter (MaxMessageAge) is part of safety, not an
//     optimisation: without it a request delayed past a restart wait could
//     be accepted by an amnesiac acceptor that had promised a higher ballot.
//     So an acceptor whose clock is not vouched for refuses to vote
//     (Refusal CLOCK_BAD) instead of voting without the filter; with one bad
//     clock a 3-member group still has a majority.
//   - Refusals (recovering, clock bad, stale) are per item in the batch
//     (enum Refusal), not gRPC status errors with typed details.
//   - Non-holders never write back a foreign valid lease (as in the design,
//     unlike XtreemFS). A blocked Acquire sleeps until the read expiry + ε
//     (plus jitter); a Learn hint of a release wakes it early.
//   - A renewal that commits after the holder's deadline never resurrects
//     the lease; an acquisition that commits too late to be valid is retried.
//   - Two Acquire callers of one resource in one process are served one after
//     the other (the second waits for the first lease to end); TryAcquire
//     reports the process's own live lease as *HeldError.
//   - Holder is linearizable (a full round with write-back); LocalHolder is
//     the free, possibly stale, learned cache.
//   - Timers: each loop iterates its cells to find the next wake-up instead
//     of a heap (fine for the tens of resources per group we target); while
//     it hands out leases a loop wakes at least every min(RoundTimeout/4,
//     10ms) so a clock the guard withdrew ends leases promptly. Valid() reads
//     the clock itself, so it turns false at once regardless.
//   - Batching: everything a loop produces in one iteration (it drains up to
//     64 queued inputs first) goes to each peer as one Prepare, one Accept
//     and one Learn RPC, not a 100 µs coalescing window.
//   - Epochs use the wall-clock term from the proposer's clock; the optional
//     fsync'ing EpochStore is not implemented.
//   - Acceptor cells idle for RestartWait whose value expired more than ε ago
//     are dropped (each loop checks once per RestartWait): that is amnesia for
//     one cell, covered by the restart-wait argument. Proposer-side cells
//     (core.Member) are never dropped yet: memory grows with the number of
//     distinct resources a process ever touched.
//   - Not implemented: Prometheus metrics, fast (1-RTT) renew, handover, the
//     clean-shutdown checkpoint.
//   - UncheckedClock logs a warning when created and New logs another with
//     the node's logger; leasectl serve requires --ntp or an explicit
//     --unchecked-clock.
//   - Close takes no context (it implements io.Closer): it cancels and waits
//     for goroutines that are each bounded by RoundTimeout.
//   - TLS (tls.go): Config.TLS makes Flease traffic mutual TLS with the same
//     certificate files as coord nodes (internal/tlsconf, shared because
//     lease may not import coord). A member is bound to its ID both ways:
//     it dials member M accepting only a certificate naming M, and answers
//     a FleasePeer request only over a certificate naming the sender in its
//     header. LeaseAdmin takes any CA-signed certificate (no per-operator
//     authorization). Without Config.TLS everything is plaintext, as before.
package lease
