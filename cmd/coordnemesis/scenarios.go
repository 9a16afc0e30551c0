package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"coord/nemesis"
)

// scenarios are the measured runs beside the random schedules:
// partial partitions, failover with many sessions, larger quorums under
// jittered delay (docs/RELIABILITY.md, "Partitions, failover and quorum
// size").
type scenarios struct {
	partitions     *bool
	partitionNodes *string
	partitionHold  *time.Duration
	repeat         *int
	shapes         *string

	election, heartbeat, lease *time.Duration

	failoverSessions *int
	sessionTimeout   *time.Duration
	writeRate        *int
	failoverWorkers  *int
	failoverAfter    *time.Duration
	failoverNoGuard  *bool
	failoverNice     *int

	quorum         *string
	quorumDuration *time.Duration
	quorumDelay    *time.Duration
	quorumJitter   *time.Duration
	nonVoters      *int
}

func addScenarioFlags(fs *flag.FlagSet) *scenarios {
	return &scenarios{
		partitions:     fs.Bool("partitions", false, "run every partial-partition shape (instead of random schedules)"),
		partitionNodes: fs.String("partition-nodes", "3,5", "cluster sizes for --partitions"),
		partitionHold:  fs.Duration("partition-hold", 4*time.Second, "how long each partition is held"),
		repeat:         fs.Int("repeat", 1, "runs per shape (--partitions) or per size (--quorum)"),
		shapes:         fs.String("partition-shapes", "", "comma-separated shapes for --partitions (default: all)"),

		election:  fs.Duration("raft-election", 0, "--partitions, --quorum, --failover-sessions: raft election timeout (default: coordd's for --partitions and --failover-sessions, the harness's for --quorum)"),
		heartbeat: fs.Duration("raft-heartbeat", 0, "--partitions, --quorum, --failover-sessions: raft heartbeat timeout (defaults as --raft-election)"),
		lease:     fs.Duration("raft-lease", 0, "--partitions, --quorum, --failover-sessions: raft leader lease (defaults as --raft-election)"),

		failoverSessions: fs.Int("failover-sessions", 0, "kill the leader under load with this many live sessions (instead of random schedules)"),
		sessionTimeout:   fs.Duration("failover-session-timeout", 10*time.Second, "session timeout for --failover-sessions"),
		writeRate:        fs.Int("failover-write-rate", 200, "offered writes/s for --failover-sessions"),
		failoverWorkers:  fs.Int("failover-workers", -1, "child processes holding the --failover-sessions clients (0: this process; -1: one per 2,500 sessions above 2,500)"),
		failoverAfter:    fs.Duration("failover-after", 0, "--failover-sessions: how long to watch after the kill (default and minimum: 2 session timeouts + 2 s)"),
		failoverNoGuard:  fs.Bool("failover-no-guard", false, "--failover-sessions: run coordd with --no-session-guard (comparison)"),
		// In a deployment the clients run on other machines: the session
		// workers run below the coordd processes' priority (nice 0). 5
		// (CFS weight 335 against 1024): at 0 the clients starved the
		// servers, at 10 (weight 110) the servers starved the clients
		// after the kill (docs/RELIABILITY.md, runs z1, g6, f1-f4).
		failoverNice: fs.Int("failover-worker-nice", 5, "--failover-sessions: CPU priority (nice 1..19, 0: the harness's) of the session worker processes; models clients on other hosts"),

		quorum:         fs.String("quorum", "", "voter counts to run under jittered peer delay, e.g. 5,7 (instead of random schedules)"),
		quorumDuration: fs.Duration("quorum-duration", 3*time.Minute, "window per --quorum run"),
		quorumDelay:    fs.Duration("quorum-delay", 20*time.Millisecond, "one-way peer delay for --quorum"),
		quorumJitter:   fs.Duration("quorum-jitter", 10*time.Millisecond, "± jitter on the delay for --quorum"),
		nonVoters:      fs.Int("quorum-nonvoters", 1, "non-voting replicas added in --quorum runs"),
	}
}

func (s *scenarios) active() bool {
	return *s.partitions || *s.failoverSessions > 0 || *s.quorum != ""
}

func ints(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q in %q", f, list)
		}
		out = append(out, n)
	}
	return out, nil
}

// run runs the chosen scenarios and returns the exit code.
func (s *scenarios) run(ctx context.Context, coordd, dir string, seed uint64, verbose bool, stdout, stderr io.Writer) int {
	logf := func(string, ...any) {}
	if verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }
	}
	failed := 0
	if *s.partitions {
		sizes, err := ints(*s.partitionNodes)
		if err != nil {
			fmt.Fprintf(stderr, "coordnemesis: --partition-nodes: %v\n", err)
			return 2
		}
		shapes := nemesis.Shapes()
		if *s.shapes != "" {
			shapes = nil
			for _, name := range strings.Split(*s.shapes, ",") {
				sh, err := nemesis.ParseShape(strings.TrimSpace(name))
				if err != nil {
					fmt.Fprintf(stderr, "coordnemesis: --partition-shapes: %v\n", err)
					return 2
				}
				shapes = append(shapes, sh)
			}
		}
		for _, n := range sizes {
			for _, shape := range shapes {
				for r := 0; r < *s.repeat && ctx.Err() == nil; r++ {
					res, err := nemesis.RunPartition(ctx, nemesis.PartitionConfig{
						Coordd: coordd, Dir: filepath.Join(dir, fmt.Sprintf("%v-%d-%d", shape, n, r)), Nodes: n, Shape: shape,
						Seed: seed + uint64(r), Hold: *s.partitionHold, Log: logf,
						Election: *s.election, Heartbeat: *s.heartbeat, Lease: *s.lease,
					})
					if err != nil {
						fmt.Fprintf(stderr, "%v on %d nodes: %v\n", shape, n, err)
						return 1
					}
					fmt.Fprintln(stdout, res)
					if res.Failed() {
						failed++
						for _, v := range res.Violations {
							fmt.Fprintf(stdout, "  violation: %s\n", v)
						}
					}
				}
			}
		}
	}
	if *s.failoverSessions > 0 && ctx.Err() == nil {
		workers := *s.failoverWorkers
		if workers < 0 {
			workers = 0
			if *s.failoverSessions > 2500 {
				workers = (*s.failoverSessions + 2499) / 2500
			}
		}
		nice := *s.failoverNice
		if workers == 0 {
			nice = 0 // the sessions live in this process
		}
		res, err := nemesis.RunFailover(ctx, nemesis.FailoverConfig{
			Coordd: coordd, Dir: filepath.Join(dir, "failover"), Sessions: *s.failoverSessions,
			SessionTimeout: *s.sessionTimeout, WriteRate: *s.writeRate, Workers: workers, Log: logf,
			Election: *s.election, Heartbeat: *s.heartbeat, Lease: *s.lease, After: *s.failoverAfter, NoGuard: *s.failoverNoGuard,
			WorkerNice: nice,
		})
		if err != nil {
			fmt.Fprintf(stderr, "failover: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, res)
		if res.Failed() {
			failed++
			for _, v := range res.Violations {
				fmt.Fprintf(stdout, "  violation: %s\n", v)
			}
		}
	}
	if *s.quorum != "" {
		sizes, err := ints(*s.quorum)
		if err != nil {
			fmt.Fprintf(stderr, "coordnemesis: --quorum: %v\n", err)
			return 2
		}
		for _, n := range sizes {
			for r := 0; r < *s.repeat && ctx.Err() == nil; r++ {
				res, err := nemesis.RunQuorum(ctx, nemesis.QuorumConfig{
					Coordd: coordd, Dir: filepath.Join(dir, fmt.Sprintf("quorum-%d-%d", n, r)), Voters: n, NonVoters: *s.nonVoters,
					Delay: *s.quorumDelay, Jitter: *s.quorumJitter, Duration: *s.quorumDuration, Log: logf,
					Election: *s.election, Heartbeat: *s.heartbeat, Lease: *s.lease,
				})
				if err != nil {
					fmt.Fprintf(stderr, "quorum %d: %v\n", n, err)
					return 1
				}
				fmt.Fprintln(stdout, res)
			}
		}
	}
	fmt.Fprintf(stdout, "total: %d scenario runs failed\n", failed)
	if failed > 0 {
		return 1
	}
	return 0
}
