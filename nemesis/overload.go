package nemesis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"coord/client"
)

// The overload proof (issue 10, docs/RELIABILITY.md "Overload"): measure
// the cluster's saturation goodput with an open-loop ramp (ramp), then
// offer an open loop of 0.5× that rate (baseline), 2× for Overload, and
// 0.5× again, with live sessions alongside. Protected, goodput during
// overload stays near the peak, no live session expires, memory stays
// bounded and p99 returns to its baseline soon after the drop; with
// --no-admission the same run shows what collapses.

// OverloadConfig configures one overload run.
type OverloadConfig struct {
	Coordd string
	Dir    string // a fresh directory for the cluster
	// Seed draws the operation mix and keys (the offered load is fixed by
	// the phases; OS timing still differs between runs).
	Seed uint64
	// NoAdmission starts every node with --no-admission (the teeth run).
	NoAdmission bool
	// ServerArgs are added to every coordd's command line (e.g. other
	// admission bounds: --admission-max-writes 16).
	ServerArgs []string
	// Peak, when > 0, is used instead of measuring saturation (so a teeth
	// run offers exactly what the protected run did).
	Peak float64
	// Phases (defaults 2 s, 5 s, 30 s, 10 s); Measure is the closed loop
	// that seeds the ramp.
	Measure, Baseline, Overload, After time.Duration
	// Sessions live alongside the load, each its own client with its own
	// connection (default 30), with SessionTimeout (default 2 s).
	Sessions       int
	SessionTimeout time.Duration
	// SessionHolder, when set, is the command (argv) of a process that
	// holds the sessions (overload_sessions.go; coordnemesis
	// --session-holder), so the load generator cannot starve their
	// keepalives; unset, they live in this process.
	SessionHolder []string
	// RequestTimeout: an answer later than this is not goodput (default 1 s).
	RequestTimeout time.Duration
	// LoadClients share the load (default 12); Workers run the short
	// closed loop that seeds the saturation ramp (default 128).
	LoadClients, Workers int
	// The saturation ramp: an open loop offered in steps of RampStep
	// (default 2 s), from half the closed loop's goodput, each step
	// RampFactor (default 1.2) times the last, until goodput stops
	// following the offered rate; the peak is the best step's goodput.
	RampStep   time.Duration
	RampFactor float64
	// ServerNice, when not 0, is the nice value given to every thread of
	// the coordd processes and of the session holder once they run
	// (overload_nice.go): the load generator, this process, keeps its own
	// (normally 0), so the servers and the live clients are served first
	// on a shared CPU, as if the generator ran on other hosts. Negative
	// values need root (CAP_SYS_NICE).
	ServerNice int
	// ServerCPUs, when set, pins every thread of the coordd processes and
	// of the session holder to these CPUs (overload_nice.go); the
	// generator stays free to run anywhere.
	ServerCPUs []int
	// OverloadFactor is the overload phase's rate as a multiple of the
	// peak (default 2). Below 1 it is a control run: the same phases with
	// no overload, which tells how often the p99 criterion fails with no
	// trigger; the goodput criterion then compares with the offered rate.
	OverloadFactor float64
	// ProfileDir, when set, starts the nodes with --enable-pprof and saves
	// every node's heap profile and 4 s CPU profile there: in the
	// baseline, the overload, right after the drop and 5 s later.
	ProfileDir string
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
}

func (c *OverloadConfig) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Measure, 2*time.Second)
	def(&c.RampStep, 2*time.Second)
	if c.RampFactor <= 1 {
		c.RampFactor = 1.2
	}
	def(&c.Baseline, 5*time.Second)
	def(&c.Overload, 30*time.Second)
	def(&c.After, 10*time.Second)
	def(&c.SessionTimeout, 2*time.Second)
	def(&c.RequestTimeout, time.Second)
	if c.Sessions == 0 {
		c.Sessions = 30
	}
	if c.LoadClients == 0 {
		c.LoadClients = 12
	}
	if c.Workers == 0 {
		c.Workers = 128
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	if c.OverloadFactor <= 0 {
		c.OverloadFactor = 2
	}
}

// Request outcomes.
const (
	outOK = iota
	outShed
	outTimeout
	outOther
	outDropped // the harness's own in-flight cap: never sent
	// outSkipped: the generator was more than maxGenLate behind its
	// schedule when the request was due, so it was not sent (a starved
	// generator catching up in a burst floods the cluster and its own
	// process with requests that were due long ago; see offer).
	outSkipped
	// outThrottled: rejected by the load client's own adaptive throttle
	// without being sent (client.ErrThrottled); outShed is a server's shed
	// (after the client's retries, if its budget allowed any).
	outThrottled
	nOutcomes
)

var outcomeNames = [nOutcomes]string{"ok", "shed", "timeout", "error", "dropped", "skipped", "throttled"}

// OverloadWindow is one slice of the open-loop run (requests by start).
type OverloadWindow struct {
	Start    time.Duration // since the open loop began
	Phase    string
	Counts   [nOutcomes]int
	P50, P99 time.Duration // of the successful requests
}

// OverloadResult is what one run measured.
type OverloadResult struct {
	NoAdmission bool
	Peak        float64 // saturation goodput (the ramp's best step), ops/s
	Ramp        []RampStep
	Windows     []OverloadWindow
	Window      time.Duration
	// Goodput during overload (ok/s) and its ratio to Peak.
	OverloadGoodput, GoodputRatio float64
	// BaselineP99 over the baseline phase; AfterP99 over the last half of
	// the after phase; Recovery: from the drop until p99 is back within
	// RecoveryBound for good (recoveryAt: a single noisy window does not
	// count); -1 if never.
	BaselineP99, AfterP99, RecoveryBound, Recovery time.Duration
	// Outcomes per phase.
	Phases map[string][nOutcomes]int
	// SessionsExpired among Sessions whose clients stayed alive.
	Sessions, SessionsExpired int
	// RSS per node: at the end of the baseline, and the maximum during
	// overload and after (bytes).
	RSSBaseline, RSSMax []int64
	// PhaseCPU: the coordd processes' CPU per phase, in cores, and
	// PhaseLoad the host's 1-minute load average at each phase's end: a
	// goodput far below the peak with the nodes getting much less CPU
	// than during the peak's ramp step is a host starved by others.
	PhaseCPU, PhaseLoad map[string]float64
	// Snapshots the nodes took from the open loop's start on (raft
	// snapshot + log compaction: a node's first one after the overload's
	// extra writes is when its log store's free list jumps).
	Snapshots []OverloadSnapshot
	// Nice: the nice values the coordd threads had at the end of the
	// overload phase (value → threads, summed over the nodes), and the
	// generator's own (this process's main thread); nil if not read.
	ServerNices   map[int]int
	GeneratorNice int
	// ServerCPUs, GeneratorCPUs: the CPUs the first node's and the
	// generator's main threads were allowed (from /proc).
	ServerCPUs, GeneratorCPUs string
	// Offered: the requests the generator started per second in each
	// phase (against the schedule's rate: a starved generator offers
	// less than it was asked to).
	Offered map[string]float64
	// Lag: the mean lateness of the phase's requests against their
	// schedule (the open loop's own delay: CPU the generator did not get).
	Lag map[string]time.Duration
	// NodePhases and NodeWindows: every node's /metrics per phase and per
	// 2 s window (overload_nodes.go); ClientPhases and ClientWindows: the
	// load clients' overload counters over the same spans.
	NodePhases, NodeWindows     []NodeStats
	ClientPhases, ClientWindows []ClientStats
	// Factor: the overload phase's rate over the peak.
	Factor float64
	// Profiles: the CPU profiles saved (OverloadConfig.ProfileDir).
	Profiles []string
	// StartRetried: the first cluster did not become writable (logged).
	StartRetried bool
	// Violations of the protected criteria (a teeth run is expected to
	// have some).
	Violations []string
}

// OverloadSnapshot is one raft snapshot a node took during the open loop.
type OverloadSnapshot struct {
	Node  string
	Index uint64
	At    time.Duration // since the open loop began
	Phase string
}

// Failed reports whether any criterion failed.
func (r OverloadResult) Failed() bool { return len(r.Violations) > 0 }

// Summary is a few lines for people.
func (r OverloadResult) Summary() string {
	var b strings.Builder
	mode := "admission on"
	if r.NoAdmission {
		mode = "admission OFF (--no-admission)"
	}
	for _, st := range r.Ramp {
		fmt.Fprintf(&b, "  ramp: offered %6.0f ops/s  goodput %6.0f ops/s  p99 %v  coordd CPU %.2f cores  load %.1f\n", st.Offered, st.Goodput, st.P99.Round(time.Millisecond), st.CPU, st.Load)
	}
	fmt.Fprintf(&b, "%s: peak %.0f ops/s; overload goodput %.0f ops/s = %.0f%% of peak\n", mode, r.Peak, r.OverloadGoodput, 100*r.GoodputRatio)
	for _, ph := range []string{"baseline", "overload", "after"} {
		c := r.Phases[ph]
		fmt.Fprintf(&b, "  %-8s", ph)
		for i, n := range c {
			fmt.Fprintf(&b, " %s %d", outcomeNames[i], n)
		}
		if cpu, ok := r.PhaseCPU[ph]; ok {
			fmt.Fprintf(&b, "  coordd CPU %.2f cores  load %.1f", cpu, r.PhaseLoad[ph])
		}
		if o, ok := r.Offered[ph]; ok {
			total := 0
			for _, n := range c {
				total += n
			}
			sent := o - float64(c[outSkipped]+c[outDropped])/float64(max(1, total))*o
			fmt.Fprintf(&b, "  sent %.0f of %.0f ops/s (mean lag %v)", sent, o, r.Lag[ph].Round(100*time.Microsecond))
		}
		b.WriteByte('\n')
	}
	rec := "never"
	if r.Recovery >= 0 {
		rec = r.Recovery.String()
	}
	fmt.Fprintf(&b, "  p99 baseline %v, after the drop %v (bound %v), back within bound after %s\n", r.BaselineP99.Round(time.Millisecond), r.AfterP99.Round(time.Millisecond), r.RecoveryBound.Round(time.Millisecond), rec)
	fmt.Fprintf(&b, "  sessions expired %d of %d\n", r.SessionsExpired, r.Sessions)
	for i := range r.RSSMax {
		fmt.Fprintf(&b, "  n%d RSS baseline %d MiB, max %d MiB\n", i+1, r.RSSBaseline[i]>>20, r.RSSMax[i]>>20)
	}
	if ov := r.Phases["overload"]; ov[outSkipped] > 0 {
		n := 0
		for _, k := range ov {
			n += k
		}
		fmt.Fprintf(&b, "  the generator fell behind: %d of %d overload requests (%.0f%%) skipped\n", ov[outSkipped], n, 100*float64(ov[outSkipped])/float64(max(1, n)))
	}
	if r.ServerNices != nil {
		fmt.Fprintf(&b, "  priority: coordd threads by nice value %v (generator %d); cpus: n1 %s, generator %s\n", r.ServerNices, r.GeneratorNice, r.ServerCPUs, r.GeneratorCPUs)
	}
	if r.StartRetried {
		fmt.Fprintf(&b, "  (the first cluster did not become writable; this is the second)\n")
	}
	for _, sn := range r.Snapshots {
		fmt.Fprintf(&b, "  %s snapshot at index %d, t=%v (%s)\n", sn.Node, sn.Index, sn.At.Round(100*time.Millisecond), sn.Phase)
	}
	b.WriteString(r.NodeSummary())
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "  profile %s\n", p)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  violation: %s\n", v)
	}
	return b.String()
}

// snapshotName parses a raft snapshot directory's name,
// TERM-INDEX-UNIXMILLIS (hashicorp/raft's file snapshot store).
func snapshotName(name string) (index uint64, at time.Time, ok bool) {
	f := strings.Split(name, "-")
	if len(f) != 3 {
		return 0, time.Time{}, false
	}
	index, err1 := strconv.ParseUint(f[1], 10, 64)
	ms, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return index, time.UnixMilli(ms), true
}

// Timeline prints every window (ok/s, shed/s, timeouts/s, p99).
func (r OverloadResult) Timeline() string {
	var b strings.Builder
	per := float64(time.Second) / float64(r.Window)
	fmt.Fprintf(&b, "%8s %-8s %8s %8s %8s %8s %8s %9s\n", "t", "phase", "ok/s", "shed/s", "thr/s", "tmo/s", "err/s", "p99")
	for _, w := range r.Windows {
		fmt.Fprintf(&b, "%8s %-8s %8.0f %8.0f %8.0f %8.0f %8.0f %9s\n", w.Start.Round(time.Millisecond), w.Phase,
			float64(w.Counts[outOK])*per, float64(w.Counts[outShed])*per, float64(w.Counts[outThrottled])*per, float64(w.Counts[outTimeout])*per,
			float64(w.Counts[outOther]+w.Counts[outDropped])*per, w.P99.Round(100*time.Microsecond))
	}
	return b.String()
}

const (
	overloadKeys   = 256
	overloadWindow = 500 * time.Millisecond
	// maxHarnessInFlight caps the open loop's own goroutines; beyond it a
	// request is counted as dropped (never sent).
	maxHarnessInFlight = 60_000
	// maxGenLate: a request whose due time passed longer ago than this is
	// skipped, not sent late (outSkipped). An open loop on other hosts
	// keeps its schedule; one that shares the servers' host falls behind
	// when it does not get the CPU (21:35, seed 4: requests started 0.67 s
	// late on average, 99,825 dropped at the in-flight cap, goodput 6%
	// with the nodes idle a third of the time on their own core), and
	// sending the backlog at once only deepens its own overload.
	maxGenLate = 200 * time.Millisecond
)

// overloadRecorder collects outcomes and latencies per window.
type overloadRecorder struct {
	start time.Time
	mu    sync.Mutex
	wins  map[int]*windowData
}

type windowData struct {
	counts [nOutcomes]int
	lats   []time.Duration
}

func (r *overloadRecorder) add(started time.Time, lat time.Duration, out int) {
	i := int(started.Sub(r.start) / overloadWindow)
	r.mu.Lock()
	w := r.wins[i]
	if w == nil {
		w = &windowData{}
		r.wins[i] = w
	}
	w.counts[out]++
	if out == outOK {
		w.lats = append(w.lats, lat)
	}
	r.mu.Unlock()
}

func classifyOutcome(err error) int {
	switch {
	case err == nil:
		return outOK
	case errors.Is(err, client.ErrThrottled):
		return outThrottled
	case errors.Is(err, client.ErrOverloaded):
		return outShed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, client.ErrTimeout):
		return outTimeout
	}
	return outOther
}

// overloadOp runs one operation of the seeded mix: half linearizable
// gets, half sets, on overloadKeys keys.
func overloadOp(ctx context.Context, c *client.Client, op, k int, data []byte) error {
	p := fmt.Sprintf("/ov/k%d", k)
	if op == 0 {
		_, _, err := c.Get(ctx, p, nil)
		return err
	}
	_, err := c.Set(ctx, p, data, -1)
	return err
}

// RunOverload runs the proof once on a fresh 3-node cluster.
func RunOverload(ctx context.Context, cfg OverloadConfig) (OverloadResult, error) {
	cfg.defaults()
	res := OverloadResult{NoAdmission: cfg.NoAdmission, Window: overloadWindow, Phases: map[string][nOutcomes]int{}, Factor: cfg.OverloadFactor}
	// coordd's default raft timing, not the fault schedules' short one:
	// overload is about queues, not about elections on a starved CPU.
	args := []string{"--heartbeat-timeout", "1s", "--election-timeout", "1s", "--leader-lease", "500ms"}
	if cfg.NoAdmission {
		args = append(args, "--no-admission")
	}
	if cfg.ProfileDir != "" {
		args = append(args, "--enable-pprof")
	}
	args = append(args, cfg.ServerArgs...)
	// DirectPeers: the proof injects no link faults, so raft and peer
	// traffic must not go through the proxies, which run in this process
	// — the load generator, the busiest process on the host. Through them
	// every new peer connection waited for a scan of /proc/net/tcp (8,800
	// lines on the shared host) before a byte flowed: an idle cluster
	// failed every vote with an i/o timeout for 5 minutes (493 proxy
	// goroutines in socketOwner), and under load raft heartbeats waited
	// for the generator's scheduling.
	ccfg := ClusterConfig{Coordd: cfg.Coordd, Nodes: 3, Dir: cfg.Dir, Args: args, DirectPeers: true, Metrics: true}
	cl, err := StartCluster(ctx, ccfg)
	if err != nil && ctx.Err() == nil {
		// On a host at load 15-25 a fresh cluster sometimes does not
		// become writable within StartCluster's 20 s (one node keeps
		// restarting elections while the others have a leader): one more
		// try on a fresh directory, said in the log, so the run measures
		// overload rather than the start.
		cfg.Log("start cluster: %v; one more try on a fresh directory", err)
		res.StartRetried = true
		ccfg.Dir = cfg.Dir + "-retry"
		cl, err = StartCluster(ctx, ccfg)
	}
	if err != nil {
		return res, err
	}
	defer cl.Close()
	for _, n := range cl.Nodes {
		n.mu.Lock()
		pid := n.cmd.Process.Pid
		n.mu.Unlock()
		if err := cfg.serversFirst(pid); err != nil {
			return res, fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	direct := cl.Direct()
	rotate := func(i int) []string {
		out := make([]string, len(direct))
		for k := range direct {
			out[k] = direct[(i+k)%len(direct)]
		}
		return out
	}
	admin, err := client.New(ctx, client.Config{Endpoints: direct})
	if err != nil {
		return res, err
	}
	defer admin.Close(context.Background())
	// Setup creates, retried through leader changes (a loaded host loses
	// leaders): a create whose outcome was unknown and then reports
	// NODE_EXISTS did happen.
	setupBy := time.Now().Add(2 * time.Minute)
	create := func(p string) error {
		for {
			_, _, err := admin.Create(ctx, p, nil, nil)
			if err == nil || errors.Is(err, client.ErrNodeExists) {
				return nil
			}
			if ctx.Err() != nil || !errors.Is(err, client.ErrConnectionLoss) && !errors.Is(err, client.ErrUnavailable) &&
				!errors.Is(err, client.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("setup %s: %w", p, err)
			}
			if time.Now().After(setupBy) {
				return fmt.Errorf("setup %s: not done within 2 minutes: %w", p, err)
			}
			cfg.Log("setup %s: %v (retrying)", p, err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("setup %s: %w", p, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if err := create("/ov"); err != nil {
		return res, err
	}
	for k := 0; k < overloadKeys; k++ {
		if err := create(fmt.Sprintf("/ov/k%d", k)); err != nil {
			return res, err
		}
	}

	// Live sessions, each its own client: they must all survive.
	var sessions []*client.Client
	defer func() {
		for _, s := range sessions {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Close(cctx)
			cancel()
		}
	}()
	var holder *sessionHolder
	if len(cfg.SessionHolder) > 0 {
		if holder, err = startSessionHolder(ctx, cfg.SessionHolder, direct, cfg.Sessions, cfg.SessionTimeout); err != nil {
			return res, err
		}
		defer func() {
			if holder != nil {
				holder.kill()
			}
		}()
		if err := cfg.serversFirst(holder.cmd.Process.Pid); err != nil {
			return res, fmt.Errorf("session holder: %w", err)
		}
	} else {
		for i := 0; i < cfg.Sessions; i++ {
			s, err := client.New(ctx, client.Config{Endpoints: rotate(i), SessionTimeout: cfg.SessionTimeout})
			if err != nil {
				return res, err
			}
			sessions = append(sessions, s)
			if _, err := s.Session(ctx); err != nil {
				return res, fmt.Errorf("open session %d: %w", i, err)
			}
		}
	}
	res.Sessions = cfg.Sessions

	loads := make([]*client.Client, cfg.LoadClients)
	for i := range loads {
		if loads[i], err = client.New(ctx, client.Config{Endpoints: rotate(i), RequestTimeout: cfg.RequestTimeout}); err != nil {
			return res, err
		}
		defer loads[i].Close(context.Background())
	}
	data := make([]byte, 100)

	// RSS sampler.
	pids := make([]int, len(cl.Nodes))
	for i, n := range cl.Nodes {
		n.mu.Lock()
		pids[i] = n.cmd.Process.Pid
		n.mu.Unlock()
	}
	type seenSnap struct {
		node  string
		index uint64
		at    time.Time
	}
	seen := map[string]bool{}
	var snaps []seenSnap // guarded by rssMu
	var rssMu sync.Mutex
	rssNow := make([]int64, len(pids))
	res.RSSMax = make([]int64, len(pids))
	trackMax := atomic.Bool{}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var samplerWG sync.WaitGroup
	samplerWG.Add(1)
	go func() {
		defer samplerWG.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			rssMu.Lock()
			for i, pid := range pids {
				if v, err := readRSS(pid); err == nil {
					rssNow[i] = v
					if trackMax.Load() && v > res.RSSMax[i] {
						res.RSSMax[i] = v
					}
				}
				// Only the newest snapshot is kept on disk: poll.
				des, _ := os.ReadDir(filepath.Join(cl.Nodes[i].data, "snapshots"))
				for _, de := range des {
					key := cl.Nodes[i].Name + "/" + de.Name()
					if idx, at, ok := snapshotName(de.Name()); ok && !seen[key] {
						seen[key] = true
						snaps = append(snaps, seenSnap{cl.Nodes[i].Name, idx, at})
					}
				}
			}
			rssMu.Unlock()
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { stopSampling(); samplerWG.Wait() }()

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x0f10ad))
	var rngMu sync.Mutex
	draw := func() (int, int) {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(2), rng.IntN(overloadKeys)
	}

	// 1. Saturation. A short closed loop of Workers seeds the ramp; the
	// ramp offers an open loop in steps, each RampFactor × the last, until
	// goodput stops following the offered rate. A closed loop alone
	// under-measures: its workers wait for answers, so it never offers
	// more than they can carry (128 workers measured about half of what
	// the cluster serves on a quiet machine, and "2×" of that was served
	// with and without protection).
	gen := &loadGen{loads: loads, data: data, draw: draw, timeout: cfg.RequestTimeout, cpu: func() time.Duration {
		var sum time.Duration
		for _, pid := range pids {
			if d, err := readCPU(pid); err == nil {
				sum += d
			}
		}
		return sum
	}}
	if cfg.Peak > 0 {
		res.Peak = cfg.Peak
	} else {
		closed := closedLoop(ctx, cfg, gen)
		cfg.Log("closed loop (%d workers): %.0f ops/s", cfg.Workers, closed)
		if closed < 10 {
			return res, fmt.Errorf("closed loop measured %.1f ops/s: the cluster is not serving", closed)
		}
		res.Peak, res.Ramp = gen.ramp(ctx, cfg, closed/2)
		cfg.Log("peak (open-loop ramp): %.0f ops/s", res.Peak)
	}
	if res.Peak < 10 {
		return res, fmt.Errorf("saturation measured at %.1f ops/s: the cluster is not serving", res.Peak)
	}
	// The ramp's last steps were past saturation: let the cluster settle
	// before the baseline.
	time.Sleep(3 * time.Second)

	// 2. The open loop: 0.5×, 2×, 0.5× of the peak.
	rec := newRecorder()
	phases := []struct {
		name string
		rate float64
		d    time.Duration
	}{{"baseline", 0.5 * res.Peak, cfg.Baseline}, {"overload", cfg.OverloadFactor * res.Peak, cfg.Overload}, {"after", 0.5 * res.Peak, cfg.After}}
	scraper := startNodeScraper(ctx, cl, loads, rec.start)
	scraperStopped := false
	defer func() {
		if !scraperStopped {
			scraper.stop()
		}
	}()
	profCtx, stopProfiles := context.WithCancel(ctx)
	var profWG sync.WaitGroup
	defer func() { stopProfiles(); profWG.Wait() }()
	var profMu sync.Mutex
	if cfg.ProfileDir != "" {
		mode := "protected"
		if cfg.NoAdmission {
			mode = "noadmission"
		}
		drop := cfg.Baseline + cfg.Overload
		stamp := time.Now().Format("150405")
		for _, p := range []struct {
			name string
			at   time.Duration
		}{{"baseline", 500 * time.Millisecond}, {"overload", cfg.Baseline + cfg.Overload/3}, {"after0", drop + 500*time.Millisecond}, {"after5", drop + 5500*time.Millisecond}} {
			if p.at+4*time.Second > drop+cfg.After {
				continue
			}
			profWG.Add(1)
			go func() {
				defer profWG.Done()
				select {
				case <-profCtx.Done():
					return
				case <-time.After(time.Until(rec.start.Add(p.at))):
				}
				l := scraper.leader()
				role := func(i int) string {
					if i == l {
						return "-leader"
					}
					return ""
				}
				save := func(node, secs int, kind string) {
					path := filepath.Join(cfg.ProfileDir, fmt.Sprintf("%s-seed%d-%s-%s-%s-%s%s.pprof", mode, cfg.Seed, stamp, p.name, kind, cl.Nodes[node].Name, role(node)))
					if err := fetchProfile(profCtx, cl.Nodes[node].HTTP, secs, path); err != nil {
						cfg.Log("profile %s: %v", p.name, err)
						return
					}
					profMu.Lock()
					res.Profiles = append(res.Profiles, path)
					profMu.Unlock()
				}
				var wg sync.WaitGroup
				for i := range cl.Nodes { // every node's heap, then its CPU
					save(i, 0, "heap")
					wg.Add(1)
					go func() { defer wg.Done(); save(i, 4, "cpu") }()
				}
				wg.Wait()
			}()
		}
	}
	phaseAt := func(d time.Duration) string {
		for _, p := range phases {
			if d < p.d {
				return p.name
			}
			d -= p.d
		}
		return "drain"
	}
	var dropAt time.Duration
	res.PhaseCPU, res.PhaseLoad, res.Offered = map[string]float64{}, map[string]float64{}, map[string]float64{}
	res.Lag = map[string]time.Duration{}
	for pi, ph := range phases {
		if pi == 1 {
			rssMu.Lock()
			res.RSSBaseline = append([]int64(nil), rssNow...)
			rssMu.Unlock()
			trackMax.Store(true)
		}
		if pi == 2 {
			dropAt = time.Since(rec.start)
		}
		cfg.Log("phase %s: %.0f ops/s for %v", ph.name, ph.rate, ph.d)
		// Each phase is scheduled from the loop's start, so the phases
		// follow each other without gaps or drift.
		var before time.Duration
		for _, p := range phases[:pi] {
			before += p.d
		}
		cpu0, t0, fired0 := gen.cpuNow(), time.Now(), gen.fired.Load()
		res.Lag[ph.name] = gen.offer(ctx, ph.rate, rec.start.Add(before), ph.d, rec)
		res.PhaseCPU[ph.name] = (gen.cpuNow() - cpu0).Seconds() / time.Since(t0).Seconds()
		res.PhaseLoad[ph.name] = loadAvg()
		res.Offered[ph.name] = float64(gen.fired.Load()-fired0) / ph.d.Seconds()
		if ph.name == "overload" {
			res.ServerNices = map[int]int{}
			for _, pid := range pids {
				if m, err := threadNices(pid); err == nil {
					for v, k := range m {
						res.ServerNices[v] += k
					}
				}
			}
			res.GeneratorNice, _ = niceOf(os.Getpid(), os.Getpid())
			res.ServerCPUs, _ = cpusAllowed(pids[0], pids[0])
			res.GeneratorCPUs, _ = cpusAllowed(os.Getpid(), os.Getpid())
		}
	}
	gen.wg.Wait()
	trackMax.Store(false)
	scraper.stop()
	scraperStopped = true
	stopProfiles()
	profWG.Wait()
	{
		var spans []phaseSpan
		var at time.Duration
		for _, p := range phases {
			spans = append(spans, phaseSpan{p.name, at, at + p.d})
			at += p.d
		}
		scraper.report(&res, spans)
	}
	rssMu.Lock()
	for _, sn := range snaps {
		if at := sn.at.Sub(rec.start); at >= -overloadWindow {
			res.Snapshots = append(res.Snapshots, OverloadSnapshot{Node: sn.node, Index: sn.index, At: at, Phase: phaseAt(max(at, 0))})
		}
	}
	rssMu.Unlock()
	sort.Slice(res.Snapshots, func(i, j int) bool { return res.Snapshots[i].At < res.Snapshots[j].At })

	// 3. Sessions: every one must still be alive.
	if holder != nil {
		expired, ended, err := holder.finish()
		holder = nil
		if err != nil {
			return res, err
		}
		res.SessionsExpired = expired
		for _, e := range ended {
			cfg.Log("session %s", e)
		}
	}
	for i, s := range sessions {
		select {
		case <-s.SessionDone():
			res.SessionsExpired++
			cfg.Log("session %d ended: %v", i, s.SessionErr())
		default:
		}
	}

	// 4. Windows, phases, goodput, p99 recovery.
	rec.mu.Lock()
	var idx []int
	for i := range rec.wins {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var baseLats, afterLats []time.Duration
	var overloadOK int
	var overloadTime time.Duration
	for _, i := range idx {
		wd := rec.wins[i]
		start := time.Duration(i) * overloadWindow
		ph := phaseAt(start)
		w := OverloadWindow{Start: start, Phase: ph, Counts: wd.counts, P50: quantile(wd.lats, 0.5), P99: quantile(wd.lats, 0.99)}
		res.Windows = append(res.Windows, w)
		c := res.Phases[ph]
		for o := range c {
			c[o] += wd.counts[o]
		}
		res.Phases[ph] = c
		switch ph {
		case "baseline":
			if start >= time.Second { // the loop's first second warms up
				baseLats = append(baseLats, wd.lats...)
			}
		case "overload":
			overloadOK += wd.counts[outOK]
			overloadTime += overloadWindow
		case "after":
			if start >= dropAt+cfg.After/2 {
				afterLats = append(afterLats, wd.lats...)
			}
		}
	}
	rec.mu.Unlock()
	if overloadTime > 0 {
		res.OverloadGoodput = float64(overloadOK) / overloadTime.Seconds()
	}
	res.GoodputRatio = res.OverloadGoodput / res.Peak
	res.BaselineP99 = quantile(baseLats, 0.99)
	res.AfterP99 = quantile(afterLats, 0.99)
	res.RecoveryBound = max(2*res.BaselineP99, res.BaselineP99+20*time.Millisecond)
	res.Recovery = -1
	var after []OverloadWindow
	for _, w := range res.Windows {
		if w.Phase == "after" {
			after = append(after, w)
		}
	}
	if k := recoveryAt(after, res.RecoveryBound); k >= 0 {
		res.Recovery = max(0, after[k].Start-dropAt)
	}

	// 5. The protected criteria.
	if want := min(1, cfg.OverloadFactor) * res.Peak; res.OverloadGoodput < 0.7*want {
		res.violate("goodput during overload %.0f ops/s is %.0f%% of the peak %.0f (want >= 70%% of %.0f)", res.OverloadGoodput, 100*res.GoodputRatio, res.Peak, want)
	}
	if res.SessionsExpired > 0 {
		res.violate("%d of %d live sessions expired", res.SessionsExpired, res.Sessions)
	}
	if res.Recovery < 0 || res.Recovery > 5*time.Second {
		res.violate("p99 not back within %v of the drop (recovery %v, bound %v)", 5*time.Second, res.Recovery, res.RecoveryBound)
	}
	for i := range res.RSSMax {
		if bound := max(2*res.RSSBaseline[i], res.RSSBaseline[i]+256<<20); res.RSSMax[i] > bound {
			res.violate("n%d RSS grew to %d MiB under overload (baseline %d MiB, bound %d MiB)", i+1, res.RSSMax[i]>>20, res.RSSBaseline[i]>>20, bound>>20)
		}
	}
	return res, nil
}

// recoveryWindows: p99 is judged over every run of this many consecutive
// windows (2 s); at most one of them may be over the bound.
const recoveryWindows = 4

// recoveryAt returns the index of the first window from which p99 is back
// for good, or -1. The rule: from window k to the end, every run of
// recoveryWindows consecutive windows (2 s; shorter at the end) has at
// most one window whose p99 is over bound or that served nothing. One
// noisy 500 ms window (a descheduled process on a shared machine) is
// forgiven; a backlog, which keeps p99 up for seconds, is not.
func recoveryAt(ws []OverloadWindow, bound time.Duration) int {
	bad := func(w OverloadWindow) bool { return w.P99 > bound || w.Counts[outOK] == 0 }
	ok := func(k int) bool { // the run starting at k
		n := 0
		for _, w := range ws[k:min(len(ws), k+recoveryWindows)] {
			if bad(w) {
				n++
			}
		}
		return n <= 1
	}
	at := -1
	for k := len(ws) - 1; k >= 0; k-- {
		if !ok(k) {
			break
		}
		at = k
	}
	// Start at a good window: the recovery time is when p99 came back.
	for at >= 0 && at < len(ws) && bad(ws[at]) {
		at++
	}
	if at >= len(ws) {
		return -1
	}
	return at
}

func (r *OverloadResult) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// quantile of lats (sorted in place); 0 when empty.
func quantile(lats []time.Duration, q float64) time.Duration {
	if len(lats) == 0 {
		return 0
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	i := int(math.Ceil(q*float64(len(lats)))) - 1
	return lats[max(0, min(i, len(lats)-1))]
}

// readRSS reads a process's resident set size from /proc (Linux).
// readCPU returns a process's user+system CPU time (/proc/PID/stat, in
// clock ticks of 10 ms: USER_HZ is 100 on Linux).
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: stat times %q %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// loadAvg is the host's 1-minute load average (0 if unknown).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func (g *loadGen) cpuNow() time.Duration {
	if g.cpu == nil {
		return 0
	}
	return g.cpu()
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

func newRecorder() *overloadRecorder {
	return &overloadRecorder{start: time.Now(), wins: map[int]*windowData{}}
}

// loadGen offers requests in an open loop: each request is its own
// goroutine, started on schedule whatever the cluster answers.
type loadGen struct {
	loads    []*client.Client
	data     []byte
	draw     func() (op, key int)
	timeout  time.Duration
	cpu      func() time.Duration // CPU time of every coordd so far (nil: not measured)
	inflight atomic.Int64
	wg       sync.WaitGroup // every request started
	n        atomic.Int64
	fired    atomic.Int64 // requests the schedule asked for (dropped ones too)
}

// fire starts one request of the mix and records its outcome in rec.
func (g *loadGen) fire(ctx context.Context, rec *overloadRecorder) {
	op, k := g.draw()
	started := time.Now()
	g.fired.Add(1)
	if g.inflight.Load() >= maxHarnessInFlight {
		rec.add(started, 0, outDropped)
		return
	}
	c := g.loads[int(g.n.Add(1))%len(g.loads)]
	g.inflight.Add(1)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer g.inflight.Add(-1)
		rctx, cancel := context.WithTimeout(ctx, g.timeout)
		err := overloadOp(rctx, c, op, k, g.data)
		cancel()
		lat := time.Since(started)
		out := classifyOutcome(err)
		if out == outOK && lat > g.timeout {
			out = outTimeout
		}
		rec.add(started, lat, out)
	}()
}

// offer sends rate requests a second from start for d (it returns when d
// has passed; the requests may still be running: g.wg). It returns the
// requests' mean lateness against their schedule: how far behind a
// starved generator fell.
func (g *loadGen) offer(ctx context.Context, rate float64, start time.Time, d time.Duration, rec *overloadRecorder) (lag time.Duration) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	var late time.Duration
	defer func() {
		if sent > 0 {
			lag = late / time.Duration(sent)
		}
	}()
	for {
		el := time.Since(start)
		if el >= d || ctx.Err() != nil {
			return
		}
		for due := int(rate * el.Seconds()); sent < due; sent++ {
			dueAt := time.Duration(float64(sent) / rate * float64(time.Second))
			behind := time.Since(start) - dueAt
			late += behind
			if behind > maxGenLate {
				g.fired.Add(1)
				rec.add(start.Add(dueAt), 0, outSkipped)
				continue
			}
			g.fire(ctx, rec)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// closedLoop runs cfg.Workers workers, each sending its next request when
// the last is answered, and returns their goodput over cfg.Measure.
func closedLoop(ctx context.Context, cfg OverloadConfig, g *loadGen) float64 {
	var okCount atomic.Int64
	var counting atomic.Bool
	mctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := 0; w < cfg.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := g.loads[w%len(g.loads)]
			for mctx.Err() == nil {
				op, k := g.draw()
				rctx, cancel := context.WithTimeout(mctx, cfg.RequestTimeout)
				err := overloadOp(rctx, c, op, k, g.data)
				cancel()
				if err == nil && counting.Load() {
					okCount.Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Second) // warm up
	counting.Store(true)
	t0 := time.Now()
	time.Sleep(cfg.Measure)
	counting.Store(false)
	el := time.Since(t0)
	stop()
	wg.Wait()
	return float64(okCount.Load()) / el.Seconds()
}

// RampStep is one step of the saturation ramp.
type RampStep struct {
	Offered, Goodput float64 // ops/s
	P99              time.Duration
	// CPU: the coordd processes' CPU during the step, in cores; Load: the
	// host's 1-minute load average at its end.
	CPU, Load float64
}

// Ramp limits.
const (
	maxRampSteps = 30
	// A step is saturated when its goodput is below rampFollow × the
	// offered rate or not rampGain × better than the best step before;
	// the ramp ends after rampSaturated saturated steps in a row.
	rampFollow    = 0.8
	rampGain      = 1.02
	rampSaturated = 2
)

// ramp finds the saturation goodput: open-loop steps of cfg.RampStep
// from rate, each cfg.RampFactor × the last, until two steps in a row are
// saturated. Each step's goodput is counted over its windows after the
// first (by request start; an answer later than the request timeout does
// not count), and the requests of a step finish before the next starts.
func (g *loadGen) ramp(ctx context.Context, cfg OverloadConfig, rate float64) (float64, []RampStep) {
	var steps []RampStep
	best, saturated := 0.0, 0
	for i := 0; i < maxRampSteps && ctx.Err() == nil; i++ {
		cpu0 := g.cpuNow()
		rec := newRecorder()
		g.offer(ctx, rate, rec.start, cfg.RampStep, rec)
		g.wg.Wait()
		cpu := (g.cpuNow() - cpu0).Seconds() / time.Since(rec.start).Seconds()
		var ok int
		var lats []time.Duration
		rec.mu.Lock()
		for w, wd := range rec.wins {
			if w >= 1 && time.Duration(w+1)*overloadWindow <= cfg.RampStep {
				ok += wd.counts[outOK]
				lats = append(lats, wd.lats...)
			}
		}
		rec.mu.Unlock()
		span := cfg.RampStep - overloadWindow
		st := RampStep{Offered: rate, Goodput: float64(ok) / span.Seconds(), P99: quantile(lats, 0.99), CPU: cpu, Load: loadAvg()}
		steps = append(steps, st)
		cfg.Log("ramp: offered %.0f ops/s, goodput %.0f ops/s, p99 %v", st.Offered, st.Goodput, st.P99.Round(time.Millisecond))
		if st.Goodput < rampFollow*rate || st.Goodput < rampGain*best {
			saturated++
		} else {
			saturated = 0
		}
		best = max(best, st.Goodput)
		if saturated >= rampSaturated {
			break
		}
		rate *= cfg.RampFactor
		time.Sleep(300 * time.Millisecond)
	}
	return best, steps
}
