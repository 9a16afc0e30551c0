package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"coord/nemesis"
)

// overloadFlags are the --overload mode's settings.
type overloadFlags struct {
	on       bool
	length   time.Duration
	after    time.Duration
	sessions int
	teeth    bool
	peak     float64
	timeline bool
	// serverArgs: extra coordd arguments, space-separated.
	serverArgs string
	// inProcessSessions: hold the sessions in this process, not in a
	// --session-holder child.
	inProcessSessions *bool
	// serverNice: the nice value of the coordd processes and the session
	// holder (servers first on the CPU; 0: leave them as they start).
	serverNice int
	// serverCPUs: the CPUs the coordd processes and the session holder
	// are pinned to ("": not pinned).
	serverCPUs string
	// factor: the overload phase's rate over the peak (0.5: the control
	// run, no overload).
	factor float64
	// profileDir: save CPU profiles of the leader here ("": none).
	profileDir string
}

// addServersFirstFlags registers the servers-first priority flag (its own
// block: other modes add their flags in main.go).
func (f *overloadFlags) addServersFirstFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.serverCPUs, "overload-server-cpus", defaultServerCPUs(), "--overload: pin every coordd and the session holder to these CPUs (e.g. \"1\" or \"2-3\"), leaving the others to the load generator; default: the upper half of the host's CPUs; \"\": not pinned")
	fs.Float64Var(&f.factor, "overload-factor", 2, "--overload: the overload phase's rate as a multiple of the measured peak; 0.5 is the control run (no overload: how often the p99 criterion fails with no trigger)")
	fs.StringVar(&f.profileDir, "overload-profile-dir", "", "--overload: start the nodes with --enable-pprof and save 4 s CPU profiles of the leader in this directory (baseline, overload, right after the drop, 5 s later)")
	fs.IntVar(&f.serverNice, "overload-server-nice", -10, "--overload: nice value for every coordd and the session holder, so the load generator (this process) only gets the CPU they leave, as if it ran on other hosts; negative values need root; 0: off")
}

// runOverload runs the overload proof: protected, then (with --teeth) the
// same offered load with --no-admission. It returns the exit code: 1 if
// the protected run fails a criterion, or the teeth run passes them all.
func runOverload(ctx context.Context, f overloadFlags, coordd, dir string, seed uint64, stdout, stderr io.Writer, logf func(string, ...any)) int {
	var holder []string
	if f.inProcessSessions == nil || !*f.inProcessSessions {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "overload: %v\n", err)
			return 1
		}
		holder = []string{exe, "--session-holder"}
	}
	var cpus []int
	if f.serverCPUs != "" {
		var err error
		if cpus, err = nemesis.ParseCPUList(f.serverCPUs); err != nil {
			fmt.Fprintf(stderr, "overload: --overload-server-cpus: %v\n", err)
			return 2
		}
	}
	run := func(noAdmission bool, peak float64) (nemesis.OverloadResult, error) {
		name := "protected"
		if noAdmission {
			name = "no-admission"
		}
		return nemesis.RunOverload(ctx, nemesis.OverloadConfig{
			Coordd: coordd, Dir: filepath.Join(dir, fmt.Sprintf("overload-%s-%d", name, seed)), Seed: seed,
			NoAdmission: noAdmission, ServerArgs: strings.Fields(f.serverArgs), Peak: peak, Overload: f.length, After: f.after, Sessions: f.sessions, SessionHolder: holder, Log: logf,
			ServerNice: f.serverNice, ServerCPUs: cpus, OverloadFactor: f.factor, ProfileDir: f.profileDir,
		})
	}
	show := func(r nemesis.OverloadResult) {
		fmt.Fprint(stdout, r.Summary())
		if f.timeline {
			fmt.Fprint(stdout, r.Timeline())
			fmt.Fprint(stdout, r.NodeTimeline())
		}
	}
	prot, err := run(false, f.peak)
	if err != nil {
		fmt.Fprintf(stderr, "overload: %v\n", err)
		return 1
	}
	show(prot)
	code := 0
	if prot.Failed() {
		code = 1
	}
	if !f.teeth {
		return code
	}
	bare, err := run(true, prot.Peak)
	if err != nil {
		fmt.Fprintf(stderr, "overload (no admission): %v\n", err)
		return 1
	}
	show(bare)
	if !bare.Failed() {
		fmt.Fprintln(stdout, "teeth: the run without admission control met every criterion: the proof has no teeth on this machine")
		code = 1
	} else {
		fmt.Fprintf(stdout, "teeth: without admission control %d criteria failed\n", len(bare.Violations))
	}
	if code == 0 {
		os.RemoveAll(dir)
	}
	return code
}

// defaultServerCPUs is the upper half of the host's CPUs ("1" on 2), or
// "" on one CPU (nothing to split).
func defaultServerCPUs() string {
	n := runtime.NumCPU()
	if n < 2 {
		return ""
	}
	if n/2 == n-1 {
		return strconv.Itoa(n - 1)
	}
	return fmt.Sprintf("%d-%d", n/2, n-1)
}
