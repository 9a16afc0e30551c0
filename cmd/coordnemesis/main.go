// Command coordnemesis runs randomized fault schedules against clusters of
// real coordd processes on loopback and checks every history (see package
// coord/nemesis):
//
//	go run ./cmd/coordnemesis --coordd bin/coordd --seed 1 --schedules 300
//
// It prints one line per schedule and a summary, and exits 1 if any
// checker found a violation (the failing seed, schedule, violations and
// node logs are printed; the run directory is kept).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"coord/nemesis"
)

func main() {
	// --failover-sessions runs its sessions in child processes of this
	// executable (one process may not hold 10,000 clients' connections).
	nemesis.MaybeSessionWorker()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordnemesis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	coordd := fs.String("coordd", "bin/coordd", "path of the coordd binary")
	seed := fs.Uint64("seed", 1, "first seed; schedule i uses seed+i")
	n := fs.Int("schedules", 24, "how many schedules to run")
	length := fs.Duration("length", 4*time.Second, "client traffic per schedule")
	five := fs.Int("five-every", 4, "every k-th schedule uses 5 nodes (0: never)")
	unsafe := fs.Bool("unsafe-local-reads", false, "run the deliberately broken server (teeth check)")
	unfenced := fs.Bool("unfenced", false, "lock workload ignores fencing tokens (teeth check)")
	dir := fs.String("dir", "", "work directory (default: a temp dir)")
	verbose := fs.Bool("v", false, "print each fault as it is applied")
	sc := addScenarioFlags(fs)
	var ov overloadFlags
	fs.BoolVar(&ov.on, "overload", false, "run the overload proof instead of fault schedules (docs/RELIABILITY.md, Overload)")
	fs.DurationVar(&ov.length, "overload-length", 30*time.Second, "--overload: how long 2x the saturation rate is offered")
	fs.DurationVar(&ov.after, "overload-after", 10*time.Second, "--overload: how long 0.5x is offered after the overload")
	fs.IntVar(&ov.sessions, "overload-sessions", 30, "--overload: live sessions alongside the load")
	fs.BoolVar(&ov.teeth, "teeth", true, "--overload: also run with --no-admission at the same offered load; it must fail")
	fs.Float64Var(&ov.peak, "overload-peak", 0, "--overload: use this saturation (ops/s) instead of measuring it")
	fs.BoolVar(&ov.timeline, "timeline", false, "--overload: print every 500 ms window")
	fs.StringVar(&ov.serverArgs, "overload-server-args", "", "--overload: extra coordd arguments for every node, space-separated (e.g. \"--admission-max-writes 16\")")
	holder := fs.Bool("session-holder", false, "internal (--overload): hold the live sessions in this process; stdin EOF ends it")
	holderEps := fs.String("holder-endpoints", "", "--session-holder: comma-separated endpoints")
	holderN := fs.Int("holder-sessions", 30, "--session-holder: sessions to hold")
	holderTimeout := fs.Duration("holder-timeout", 2*time.Second, "--session-holder: session timeout")
	ov.addServersFirstFlags(fs)
	ov.inProcessSessions = fs.Bool("overload-in-process-sessions", false, "--overload: hold the live sessions in the load generator's process (their keepalives then compete with it for CPU)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *holder {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := nemesis.RunSessionHolder(ctx, strings.Split(*holderEps, ","), *holderN, *holderTimeout, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "coordnemesis --session-holder: %v\n", err)
			return 1
		}
		return 0
	}
	if *n < 1 || *length < time.Second {
		fmt.Fprintln(stderr, "coordnemesis: --schedules must be >= 1 and --length >= 1s")
		return 2
	}
	if _, err := os.Stat(*coordd); err != nil {
		fmt.Fprintf(stderr, "coordnemesis: --coordd: %v (run make build)\n", err)
		return 2
	}
	abs, _ := filepath.Abs(*coordd)
	if *dir == "" {
		d, err := os.MkdirTemp("", "coordnemesis")
		if err != nil {
			fmt.Fprintf(stderr, "coordnemesis: %v\n", err)
			return 1
		}
		*dir = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if ov.on {
		return runOverload(ctx, ov, abs, *dir, *seed, stdout, stderr, func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) })
	}
	if sc.active() {
		return sc.run(ctx, abs, *dir, *seed, *verbose, stdout, stderr)
	}
	var ops, unknown, events, probes, sections, rejected, failed int
	var worstRecovery time.Duration
	for i := 0; i < *n && ctx.Err() == nil; i++ {
		s := *seed + uint64(i)
		nodes := 3
		if *five > 0 && i%*five == *five-1 {
			nodes = 5
		}
		runDir := filepath.Join(*dir, fmt.Sprintf("seed-%d", s))
		cfg := nemesis.RunConfig{
			Coordd: abs, Dir: runDir, Schedule: nemesis.Generate(s, nodes, *length),
			UnsafeLocalReads: *unsafe, Unfenced: *unfenced,
		}
		if *verbose {
			cfg.Log = func(f string, a ...any) { fmt.Fprintf(stderr, f+"\n", a...) }
		}
		res, err := nemesis.Run(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "seed %d: %v\n", s, err)
			return 1
		}
		ops += res.Ops
		unknown += res.Unknown
		events += res.WatchEvents
		probes += res.SessionChecks
		sections += res.LockSections
		rejected += res.LockRejected
		worstRecovery = max(worstRecovery, res.Recovery)
		fmt.Fprintf(stdout, "seed %d nodes %d faults %d: %d ops (%d unknown) %s, %d watch events, %d session probes, %d lock sections (%d stale refused), recovery %v, violations %d\n",
			s, nodes, len(res.Schedule.Faults), res.Ops, res.Unknown, res.Linearizable, res.WatchEvents, res.SessionChecks, res.LockSections, res.LockRejected, res.Recovery.Round(time.Millisecond), len(res.Violations))
		if res.Failed() {
			failed++
			fmt.Fprintf(stdout, "  schedule: %s\n", res.Schedule)
			for _, v := range res.Violations {
				fmt.Fprintf(stdout, "  violation: %s\n", v)
			}
			if res.HistoryFile != "" {
				fmt.Fprintf(stdout, "  history: %s\n", res.HistoryFile)
			}
		} else {
			os.RemoveAll(runDir)
		}
	}
	fmt.Fprintf(stdout, "total: %d schedules failed; %d register ops (%d unknown), %d watch events, %d session probes, %d lock sections (%d stale refused), worst recovery %v\n",
		failed, ops, unknown, events, probes, sections, rejected, worstRecovery.Round(time.Millisecond))
	if failed > 0 {
		return 1
	}
	return 0
}
