// Package nemesis proves coord under faults, Jepsen-style: it runs real
// coordd processes on loopback, injects randomized, seeded fault schedules
// while concurrent clients work, and checks the recorded histories.
//
// It imports the client (and coord/rpc, coord/coordtest in tests) and
// drives coordd as a separate binary; nothing imports it but
// cmd/coordnemesis and its own tests. Background and targets:
// ../shared/design/reliability.md (G1–G3) and docs/RELIABILITY.md.
//
// # Usage
//
//  1. Build coordd (make build).
//  2. Generate(seed, nodes, length) draws a Schedule; the same seed gives
//     the same schedule.
//  3. Run(ctx, RunConfig{Coordd, Dir, Schedule}) starts the cluster, runs
//     the workload under the schedule, heals, measures recovery, checks,
//     stops the cluster and returns a Result (Violations empty = pass).
//
// # The cluster
//
// Each node listens on its own loopback port and advertises (coordd
// --advertise) the address of a Proxy in front of it, so every raft and
// peer-RPC connection goes through a proxy. All nodes dial the same proxy
// address for a node; the proxy tells them apart by finding which coordd
// process owns the dialing socket (/proc/net/tcp and /proc/PID/fd, Linux
// only). Links holds the cut (from, to) pairs: a cut link holds the bytes
// one node sends to another (a one-way partition); healing either delivers
// them late or resets the connections (chosen by the schedule). Clients
// reach nodes through their own proxy sets, one per client group, so the
// register clients, the session owner and each locker can be cut off
// separately. Processes are stopped with SIGKILL and restarted on their
// data, paused with SIGSTOP and resumed with SIGCONT.
//
// # Faults (schedule.go)
//
// kill-leader, kill-node (restart after 0–1.2 s), pause-leader, pause-node
// (SIGSTOP for 2–6 election timeouts), isolate-node, split-majority,
// one-way, client-cut (register clients lose one node), pause-locker (a
// lock holder stalls inside its critical section with its network cut for
// longer than its session, a GC pause). Faults run one after another, so
// each heal is exact; the session owner additionally cuts itself off once
// per session for longer than its timeout. Clock jumps are NOT modelled:
// coordd reads the system clock and faking it per process needs
// libfaketime or a clock seam in coord, neither of which exists yet.
//
// # Checkers (model.go, checks.go)
//
//   - Linearizability: porcupine over get/set/cas/multi on Keys versioned
//     registers (RegisterModel). A write whose outcome is unknown (lost
//     connection, leader lost, timeout) returns at Infinity: it may or may
//     not have happened; ResolveUnknown first narrows them using reads
//     that saw their values and the registers' final versions. A write
//     refused as Unavailable is dropped (the client guarantees nothing was
//     applied); that guarantee is checked too.
//   - Watches: two recursive watchers, one from the start and one opened
//     mid-run after a zxid the first saw; each must see strictly
//     increasing zxids, the first exactly one data event per version each
//     register reached (last at its mzxid), the second exactly the first's
//     events after its start point.
//   - Sessions: an ephemeral missing from a listing while its session
//     later creates a node is a violation; one still listed more than
//     SessionTimeout+ExpiryBound after its client was cut off is one too.
//   - Fenced lock: lockers increment a shared resource under
//     recipe.Lock; the resource refuses reads and writes with a token
//     below the highest it has seen; its value must equal the accepted
//     increments. Unfenced (RunConfig.Unfenced), pauses must lose updates.
//   - Recovery: after the last heal a write must succeed within
//     2×election timeout + 5 s.
//
// # Goroutines
//
// Per Proxy: one accept loop, two copy loops per connection; Close stops
// them. Per Cluster: one waiter per coordd process (cmd.Wait). Per Run:
// the register workers, the watchers' collectors, the session owner and
// observer, the lockers, and the mid-run watcher starter; all end when
// Run cancels its work context, and Run waits for them before checking.
//
// # Decisions
//
//   - Real processes, not in-process servers: kill -9 and SIGSTOP must hit
//     everything a node owns (raft, bolt, gRPC), and a crash must lose
//     whatever was not fsynced.
//   - Hold, don't drop: a proxy that drops bytes mid-stream corrupts TCP
//     framing, which tests the decoders rather than the protocol; resets
//     model drops at connection granularity.
//   - Runs are reproducible in their schedule, not bit for bit: goroutine
//     and OS timing differ between runs (see reliability.md §3).
package nemesis
