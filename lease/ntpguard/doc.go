// Package ntpguard is the clock guard for lease: it polls NTP servers with
// github.com/beevik/ntp, keeps an error bound on the local wall clock, and
// reports the clock as unsafe — so lease neither grants nor honours leases —
// when the bound is unknown, exceeds ε, is too old, or the wall clock steps.
// It never steers the clock (chronyd or ntpd does that); it only verifies.
//
// # Usage
//
//  1. g, err := ntpguard.New(cfg) with the servers and ε (= lease
//     Config.MaxClockError).
//  2. go g.Run(ctx): the caller owns this one goroutine; it polls every
//     PollInterval (at once after a detected step) and returns when ctx
//     ends.
//  3. Pass g as lease.Config.Clock. Until the first good poll the state is
//     Unknown, which counts as unsafe.
//
// # Error bound
//
// Each valid response i gives b_i = |offset_i| + RTT_i/2. A poll is good
// when at least MinAgree servers each give b_i + ρ·PollInterval ≤ ε; the
// bound is then the MinAgree-th smallest b_i. Between polls it grows by ρ
// per second of monotonic time. A poll in which enough servers answered but
// too few agree makes the clock unsafe at once; a poll in which servers do
// not answer keeps the old bound until MaxSyncAge.
package ntpguard

// # Goroutines
//
// Run is the guard's only long-lived goroutine and belongs to its caller.
// Poll starts one goroutine per server and waits for all of them (each ends
// within QueryTimeout). Now and Status are safe for concurrent use.
//
// # Decisions
//
//   - The local wall clock is injectable (Config.Now) so tests skew it
//     against a real NTP server; the monotonic clock is always the process's.
//   - The step detector runs on every Now() (at most every JumpCheckEvery,
//     default 10ms, not the design's 1s) and from Run every 100ms.
//   - Root distance is not added to the bound (members share the servers).
