// Package sim is the deterministic Flease simulator and true-time checker.
//
// One seed fully determines a run: a virtual true time T advanced by one
// event queue, N members (core.Acceptor + core.Member) with per-node clock
// models (wall offset within ε minus the drift the run accumulates, rate
// error within ρ, arbitrary monotonic origin), and a network that loses,
// delays (with a 1 % tail up to 3·LeaseDuration, hence reordering and stale
// messages), duplicates and partitions (symmetric and one-way) messages.
// Members crash with amnesia and restart as a new incarnation, and pause
// (SIGSTOP-like, up to 2·LeaseDuration; their timers then fire late). A
// random workload acquires, tries, renews, releases (sometimes right after
// acquiring, to force fast handovers between skewed clocks), queries and
// cancels on 1–4 resources.
//
// The checker records, for every tenure (member, incarnation, epoch), the
// true-time interval in which the holder's Holding.Valid is true — computed
// exactly from the clock model, not sampled — and at the end asserts that
// intervals of one resource never overlap and that epochs strictly increase
// in start order.
//
// Tests: 100,000 seeds (TestRun_Seeds, ≈ 30 s on 2 cores without -race;
// -short runs 10,000), teeth (TestRun_Teeth: each broken core.Knobs variant
// is caught within 1,000 seeds), and liveness after GST (TestRun_Liveness).
// Run this package WITHOUT -race: it has no goroutines of its own except
// the seed workers, and -race makes 100k seeds take ≈ 10 minutes.
package sim
