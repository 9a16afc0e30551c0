package nemesis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"coord/client"
	"coord/coord/replica"
)

// FailoverConfig configures a failover-under-load run: many live sessions
// (each a client.Client with its own jittered keepalives and one
// ephemeral), a steady write load, and a SIGKILL of the leader.
type FailoverConfig struct {
	Coordd string
	Dir    string
	// Nodes (default 3) and Sessions (default 10,000).
	Nodes, Sessions int
	// SessionTimeout each session asks for (default 10 s, coord's
	// default).
	SessionTimeout time.Duration
	// WriteRate is the offered write load in writes per second, spread
	// over 4 writers (default 200).
	WriteRate int
	// Before is the steady window measured before the kill (default 10
	// s); After the window after it (default 10 s, and at least two
	// session timeouts, so an expiry storm would be seen).
	Before, After time.Duration
	// Election, Heartbeat and Lease override the raft timing (default
	// coordd's).
	Election, Heartbeat, Lease time.Duration
	// Workers > 0 holds the sessions in that many child processes (this
	// executable again; its main must call MaybeSessionWorker) instead of
	// this one: see sessions.go.
	Workers int
	// WorkerNice is the CPU priority (nice, 1..19) of the session worker
	// processes (with Workers > 0); 0 leaves them at the harness's. In a
	// deployment the clients run on other machines: a positive value
	// models that on one machine, the coordd processes (nice 0) get the
	// CPU first (CFS weight 1024 each against 335 at nice 5, 110 at nice
	// 10). Only an approximation: on 2 cores, at 10 the workers were not
	// scheduled for seconds after a kill (coordnemesis uses 5).
	WorkerNice int
	// NoGuard runs coordd with --no-session-guard (comparison runs).
	NoGuard bool
	Log     func(format string, args ...any)
}

// FailoverResult is what a failover run measured.
type FailoverResult struct {
	Sessions int
	// Open is how long opening every session (and its ephemeral) took.
	Open time.Duration
	// Expired counts sessions whose client was told its session expired
	// (every client stays alive: each one is spurious); EphemeralsLost
	// the ephemerals missing at the end (-1: they could not be listed).
	Expired, EphemeralsLost int
	// OfferedRate is the client requests per second that arrived at the
	// servers in the steady window (keepalives plus writes); AfterRate
	// the mean over the 10 s after the kill, PeakRate the highest
	// one-second rate in them, both on the surviving servers.
	// PeakDoneRate is the highest one-second rate of requests finished
	// there (held keepalives finish together once a leader is known).
	OfferedRate, AfterRate, PeakRate, PeakDoneRate float64
	// Recover: from the kill to the first acknowledged write; WriteGap
	// the longest time without one around the kill.
	Recover, WriteGap time.Duration
	// ServerExpiries is the sessions the surviving servers expired
	// (coord_session_expiries_total); HoldSeconds the one-second samples
	// after the kill in which the leader's expiry guard held every
	// session, SourceHoldSeconds those in which it held some sources only.
	ServerExpiries                 float64
	ServerExpiriesUnknown          int // survivors whose metrics did not answer
	HoldSeconds, SourceHoldSeconds int
	// WorkerStall is the longest time a session worker process could not
	// run a goroutine that asked to (starved of the CPU, or paused), and
	// WorkerStallAt when it ended, from the kill: its clients sent no
	// keepalives meanwhile (stall.go). 0 without Workers.
	WorkerStall, WorkerStallAt time.Duration
	// Killed is the leader that was killed (index).
	Killed     int
	Violations []string
}

func (r *FailoverResult) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// Failed reports whether a check failed.
func (r FailoverResult) Failed() bool { return len(r.Violations) > 0 }

func (r FailoverResult) String() string {
	return fmt.Sprintf("%d sessions opened in %v; leader n%d killed: write recovered in %v (longest gap without one %v); spurious expirations %d (servers expired %.0f, %d unanswered), ephemerals lost %d; guard samples holding all / some %d / %d; client requests/s arriving: offered %.0f, 10 s after the kill %.0f (%.2f×), peak second %.0f (%.2f×; finished %.2f×); longest session worker stall %v (ended %+.1fs from the kill); violations %d",
		r.Sessions, r.Open.Round(time.Millisecond), r.Killed+1, r.Recover.Round(time.Millisecond), r.WriteGap.Round(time.Millisecond), r.Expired, r.ServerExpiries, r.ServerExpiriesUnknown, r.EphemeralsLost,
		r.HoldSeconds, r.SourceHoldSeconds, r.OfferedRate, r.AfterRate, r.AfterRate/max(r.OfferedRate, 1), r.PeakRate, r.PeakRate/max(r.OfferedRate, 1), r.PeakDoneRate/max(r.OfferedRate, 1),
		r.WorkerStall.Round(time.Millisecond), r.WorkerStallAt.Seconds(), len(r.Violations))
}

const failoverDir = "/failover"

func guardArgs(off bool) []string {
	if off {
		return []string{"--no-session-guard"}
	}
	return nil
}

// debugFailover logs every failed write of the load (for diagnosis).
var debugFailover = false

// scrapeRequests sums a node's client requests over the client API's
// methods (/coord.v1.Coord/...; peer RPCs are not client load): started
// counts arrivals (coord_grpc_requests_started_total, also requests
// refused before running), finished those that ran, as they ended
// (coord_grpc_requests_total). A keepalive a follower holds until a
// leader exists arrives once but finishes late, so a burst of finishes
// after a failover is not a burst of requests.
func scrapeRequests(ctx context.Context, hc *http.Client, addr string) (started, finished float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var sum *float64
		switch {
		case strings.HasPrefix(line, "coord_grpc_requests_started_total{"):
			sum = &started
		case strings.HasPrefix(line, "coord_grpc_requests_total{"):
			sum = &finished
		default:
			continue
		}
		if !strings.Contains(line, ".Coord/") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, 0, fmt.Errorf("metrics %s: %q: %w", addr, line, err)
		}
		*sum += v
	}
	return started, finished, sc.Err()
}

// keepAliveCodes returns a node's KeepAlive answers by status code and
// the relays it served (Peer/KeepAlives), as one line (diagnostics).
func keepAliveCodes(ctx context.Context, addr string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "coord_grpc_requests_total{") && strings.Contains(line, "KeepAlive") {
			line = strings.TrimPrefix(line, "coord_grpc_requests_total")
			line = strings.ReplaceAll(line, "/coord.v1.", "")
			out = append(out, line)
		}
		// Why keepalives were answered "expired", and the expiries this
		// node decided as leader, by reason.
		if strings.HasPrefix(line, "coord_session_keepalive_expired_total{") || strings.HasPrefix(line, "coord_session_expiry_decisions_total{") ||
			strings.HasPrefix(line, "coord_session_keepalive_unapplied_total ") {
			out = append(out, strings.TrimPrefix(line, "coord_session_"))
		}
	}
	return strings.Join(out, " ")
}

// guardMetrics returns a node's session-guard metrics (coord_session_*)
// by name.
func guardMetrics(ctx context.Context, hc *http.Client, addr string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "coord_session_") && !strings.HasPrefix(line, "coord_raft_is_leader ") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// guardSampler records, once a second, the leader's keepalive intake
// ratio and whether its expiry guard holds (diagnostics for the failover
// run).
type guardSampler struct {
	mu      sync.Mutex
	samples []guardSample
}

type guardSample struct {
	at      time.Time
	intake  float64
	holding float64
	held    float64 // sources held
	defer_  float64 // deferred expiries
}

func (s *guardSampler) run(ctx context.Context, addrs []string) {
	hc := &http.Client{Timeout: 800 * time.Millisecond}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, a := range addrs {
			m, err := guardMetrics(ctx, hc, a)
			if err != nil || m["coord_raft_is_leader"] != 1 {
				continue
			}
			s.mu.Lock()
			s.samples = append(s.samples, guardSample{at: time.Now(), intake: m["coord_session_keepalive_intake_ratio"],
				holding: m["coord_session_guard_holding"], held: m["coord_session_guard_sources_held"], defer_: m["coord_session_expiries_deferred"]})
			s.mu.Unlock()
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// line formats the samples after from as "+Ns:intake[H|h]/deferred"
// (H: every session held, h: some sources held).
func (s *guardSampler) line(from time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, g := range s.samples {
		if g.at.Before(from) {
			continue
		}
		mark := ""
		switch {
		case g.holding == 1:
			mark = "H"
		case g.held > 0:
			mark = "h"
		}
		fmt.Fprintf(&b, " %+.0fs:%.2f%s/%.0f", g.at.Sub(from).Seconds(), g.intake, mark, g.defer_)
	}
	return b.String()
}

// holds counts the samples after from holding every session, and those
// holding some sources only.
func (s *guardSampler) holds(from time.Time) (all, some int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.samples {
		switch {
		case g.at.Before(from):
		case g.holding == 1:
			all++
		case g.held > 0:
			some++
		}
	}
	return all, some
}

// guardLog summarises a node's log lines of the session guard and of
// leadership (coordd runs at --log-level warn here: the guard's holds,
// each expiry decision and each keepalive answered "expired" are
// warnings, with the guard's state for the session's group; releases are
// info lines and do not appear): how many of each, and the first few
// expiry lines.
func guardLog(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	kinds := []string{"session expiry held", "session expiry proposed", "keepalive answered session expired", "not applied on this leader yet",
		"not logged in the last tick", "session table reset", "failed to contact quorum", "heartbeat timeout reached"}
	counts := make([]int, len(kinds))
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		for i, k := range kinds {
			if !strings.Contains(l, k) {
				continue
			}
			counts[i]++
			if (i == 0 && counts[i] <= 3) || (i > 0 && i < 6 && len(lines) < 12) {
				lines = append(lines, l)
			}
		}
	}
	var b strings.Builder
	for i, k := range kinds {
		fmt.Fprintf(&b, "%q: %d; ", k, counts[i])
	}
	out := b.String()
	for _, l := range lines {
		out += "\n    " + l
	}
	return out
}

// rateSampler scrapes every node once a second and keeps the per-second
// client request rates (arrivals, and requests finished) summed over the
// nodes answering both scrapes.
type rateSampler struct {
	mu    sync.Mutex
	rates []rateSample
}

type rateSample struct {
	at   time.Time
	rate float64 // arrivals per second
	done float64 // requests finished per second
}

func (s *rateSampler) run(ctx context.Context, addrs []string) {
	hc := &http.Client{Timeout: 800 * time.Millisecond}
	prev := make([][2]float64, len(addrs))
	ok := make([]bool, len(addrs))
	prevAt := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for first := true; ; first = false {
		var sum [2]float64
		now := time.Now()
		for i, a := range addrs {
			started, finished, err := scrapeRequests(ctx, hc, a)
			if err != nil {
				ok[i] = false
				continue
			}
			v := [2]float64{started, finished}
			if ok[i] && v[0] >= prev[i][0] && v[1] >= prev[i][1] {
				sum[0] += v[0] - prev[i][0]
				sum[1] += v[1] - prev[i][1]
			}
			prev[i], ok[i] = v, true
		}
		if !first {
			d := now.Sub(prevAt).Seconds()
			s.mu.Lock()
			s.rates = append(s.rates, rateSample{at: now, rate: sum[0] / d, done: sum[1] / d})
			s.mu.Unlock()
		}
		prevAt = now
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// window returns the mean and peak arrival rate of the samples taken in
// (from, to], and the peak rate of requests finished.
func (s *rateSampler) window(from, to time.Time) (mean, peak, peakDone float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rates {
		if r.at.After(from) && !r.at.After(to) {
			mean += r.rate
			peak = max(peak, r.rate)
			peakDone = max(peakDone, r.done)
			n++
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return mean / float64(n), peak, peakDone
}

// createRetry creates path (ErrNodeExists counts as done) and retries
// other errors for up to limit: on a loaded machine a commit can outlast
// the server's own wait. An ephemeral create is exactly-once (it carries
// the session), so a retry after it was applied finds the node.
func createRetry(ctx context.Context, c *client.Client, path string, opts *client.CreateOptions, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		_, _, err := c.Create(ctx, path, nil, opts)
		if err == nil || errors.Is(err, client.ErrNodeExists) {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, client.ErrSessionExpired) {
			return fmt.Errorf("create %s: %w", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// raiseFileLimit makes sure this process (and the coordd processes it
// starts, which inherit the limit) may hold need open files: each session
// is a client.Client with its own connection to every endpoint it has
// used, so after a failover a client may hold one per node. It raises the
// hard limit when privileged and fails with the numbers otherwise (at
// 10,000 sessions the 20,000 limit of this machine ran out 3 s after the
// kill: clients could not dial the survivors and their sessions expired,
// the harness's failure, not the service's).
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= need {
		return lim.Cur, nil
	}
	want := lim
	want.Cur = need
	want.Max = max(lim.Max, need)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return need, nil
	}
	// Unprivileged: the soft limit up to the hard one is all there is.
	want.Cur, want.Max = lim.Max, lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, fmt.Errorf("setrlimit: %w", err)
	}
	if lim.Max < need {
		return lim.Max, fmt.Errorf("open-file limit %d, need %d (ulimit -n, or fewer sessions)", lim.Max, need)
	}
	return lim.Max, nil
}

// openFiles counts this process's open file descriptors (-1 if unknown).
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// RunFailover opens the sessions, runs the write load, measures the
// steady request rate, kills the leader, and measures what followed.
func RunFailover(ctx context.Context, cfg FailoverConfig) (FailoverResult, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = 10000
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.WriteRate == 0 {
		cfg.WriteRate = 200
	}
	if cfg.Before == 0 {
		cfg.Before = 10 * time.Second
	}
	if cfg.After == 0 {
		cfg.After = 10 * time.Second
	}
	cfg.After = max(cfg.After, 2*cfg.SessionTimeout+2*time.Second)
	if cfg.WorkerNice < 0 || cfg.WorkerNice > 19 || (cfg.WorkerNice != 0 && cfg.Workers <= 0) {
		return FailoverResult{}, fmt.Errorf("failover: worker nice %d needs 1..19 and session workers (have %d)", cfg.WorkerNice, cfg.Workers)
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res := FailoverResult{Sessions: cfg.Sessions, Killed: -1}
	perProcess := cfg.Sessions
	if cfg.Workers > 0 {
		perProcess = (cfg.Sessions + cfg.Workers - 1) / cfg.Workers
	}
	fdLimit, err := raiseFileLimit(uint64(perProcess*cfg.Nodes + 4096))
	if err != nil {
		return res, fmt.Errorf("failover with %d sessions: %w", cfg.Sessions, err)
	}
	logf("open-file limit %d", fdLimit)
	// coordd's default raft timing, not the harness's short one: this run
	// is about what a deployment sees after its leader dies.
	cl, err := StartCluster(ctx, ClusterConfig{Coordd: cfg.Coordd, Nodes: cfg.Nodes, Dir: cfg.Dir, Metrics: true, DirectPeers: true,
		Election: orDefault(cfg.Election, replica.DefaultElectionTimeout), Heartbeat: orDefault(cfg.Heartbeat, replica.DefaultHeartbeatTimeout),
		Lease: orDefault(cfg.Lease, replica.DefaultLeaderLease), Args: guardArgs(cfg.NoGuard)})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	admin, err := client.New(ctx, client.Config{Endpoints: cl.Direct(), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer admin.Close(context.Background())
	for _, p := range []string{failoverDir, failoverDir + "/e", failoverDir + "/w"} {
		if err := createRetry(ctx, admin, p, nil, 30*time.Second); err != nil {
			return res, err
		}
	}

	// The sessions: client k starts on node k mod n (direct addresses:
	// this run is about the leader's death, not the network), in this
	// process or in Workers child processes.
	start := time.Now()
	direct := cl.Direct()
	var clients []*client.Client
	var workers []*sessionWorker
	defer func() {
		for _, w := range workers {
			w.stop()
		}
	}()
	defer func() { closeSessions(clients) }()
	if cfg.Workers > 0 {
		workers, err = startWorkers(ctx, cfg.Workers, cfg.Sessions, direct, cfg.SessionTimeout, cfg.WorkerNice, os.Stderr)
		for i, w := range workers {
			n, threads, nerr := processNice(w.cmd.Process.Pid)
			logf("session worker %d: pid %d, nice %d on all %d threads (%v)", i, w.cmd.Process.Pid, n, threads, nerr)
		}
	} else {
		clients, err = openSessions(ctx, direct, 0, cfg.Sessions, cfg.SessionTimeout, 32)
	}
	if err != nil {
		for _, n := range cl.Nodes {
			logf("%s keepalives: %s", n.Name, keepAliveCodes(ctx, n.HTTP))
			logf("%s %s", n.Name, guardLog(filepath.Join(cfg.Dir, n.Name+".log")))
		}
		logf("open failed; logs:\n%s", cl.Logs(3000))
		return res, err
	}
	res.Open = time.Since(start)
	logf("%d sessions and ephemerals in %v", cfg.Sessions, res.Open.Round(time.Millisecond))

	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var httpAddrs []string
	for _, n := range cl.Nodes {
		httpAddrs = append(httpAddrs, n.HTTP)
	}
	rates := &rateSampler{}
	guard := &guardSampler{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rates.run(workCtx, httpAddrs) }()
	go func() { defer wg.Done(); guard.run(workCtx, httpAddrs) }()
	// The write load: 4 writers with sessions (exactly-once writes), each
	// paced at WriteRate/4.
	const writers = 4
	var acks struct {
		mu sync.Mutex
		at []time.Time
	}
	for w := 0; w < writers; w++ {
		eps := make([]string, len(direct))
		for j := range direct {
			eps[j] = direct[(w+j)%len(direct)]
		}
		c, err := client.New(ctx, client.Config{Endpoints: eps, DialTimeout: time.Second, SessionTimeout: cfg.SessionTimeout})
		if err != nil {
			return res, err
		}
		defer c.Close(context.Background())
		path := fmt.Sprintf("%s/w/%d", failoverDir, w)
		if err := createRetry(ctx, c, path, nil, 30*time.Second); err != nil {
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := time.Second * writers / time.Duration(cfg.WriteRate)
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-workCtx.Done():
					return
				case <-t.C:
				}
				octx, cancel := context.WithTimeout(workCtx, 2*time.Second)
				t0 := time.Now()
				_, err := c.Set(octx, path, []byte("x"), -1)
				cancel()
				if err != nil && debugFailover {
					logf("writer %d: %v after %v (endpoint %s)", w, err, time.Since(t0).Round(time.Millisecond), c.Endpoint())
				}
				if err == nil {
					acks.mu.Lock()
					acks.at = append(acks.at, time.Now())
					acks.mu.Unlock()
				}
			}
		}()
	}

	select {
	case <-time.After(cfg.Before + time.Second):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	// Status answers can be slow under this load: look a few times.
	for try := 0; try < 50; try++ {
		if res.Killed = cl.Leader(ctx); res.Killed >= 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if res.Killed < 0 {
		return res, errors.New("failover: no leader to kill")
	}
	kill := time.Now()
	res.OfferedRate, _, _ = rates.window(kill.Add(-cfg.Before), kill)
	fdsBefore := openFiles()
	cl.Kill(res.Killed)
	logf("killed leader n%d; offered %.0f client requests/s; harness open files %d", res.Killed+1, res.OfferedRate, fdsBefore)
	select {
	case <-time.After(cfg.After):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.AfterRate, res.PeakRate, res.PeakDoneRate = rates.window(kill, kill.Add(10*time.Second))
	acks.mu.Lock()
	for _, t := range acks.at {
		if t.After(kill) {
			res.Recover = t.Sub(kill)
			break
		}
	}
	// The longest stretch without an acknowledged write, from the last
	// ack before the kill to the end of the window (a write that raced
	// the kill makes Recover tiny; this one is the outage writers saw).
	prev := kill
	for _, t := range acks.at {
		if t.After(kill) {
			res.WriteGap = max(res.WriteGap, t.Sub(prev))
		}
		prev = t
	}
	if prev.After(kill) {
		res.WriteGap = max(res.WriteGap, time.Since(prev))
	} else {
		res.WriteGap = time.Since(kill)
	}
	acks.mu.Unlock()
	if res.Recover == 0 {
		res.violate("no write acknowledged in the %v after the kill", cfg.After)
	}
	expired := expiredSessions(clients, 0)
	rates.mu.Lock()
	var line strings.Builder
	for _, r := range rates.rates {
		fmt.Fprintf(&line, " %+.0fs:%.0f/%.0f", r.at.Sub(kill).Seconds(), r.rate, r.done)
	}
	rates.mu.Unlock()
	logf("client requests/s arrived/finished by second (relative to the kill):%s", line.String())
	logf("harness open files after the kill window: %d", openFiles())
	logf("leader's keepalive intake / expected by second (H: guard holds every session, h: some sources; /N deferred expiries):%s", guard.line(kill))
	res.HoldSeconds, res.SourceHoldSeconds = guard.holds(kill)
	hc := &http.Client{Timeout: 2 * time.Second}
	for i, n := range cl.Nodes {
		if i != res.Killed {
			logf("%s keepalives: %s", n.Name, keepAliveCodes(ctx, n.HTTP))
			if m, err := guardMetrics(ctx, hc, n.HTTP); err == nil {
				res.ServerExpiries += m["coord_session_expiries_total"]
			} else {
				res.ServerExpiriesUnknown++
			}
			logf("%s %s", n.Name, guardLog(filepath.Join(cfg.Dir, n.Name+".log")))
		}
	}
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	kids, _, err := admin.Children(lctx, failoverDir+"/e", nil)
	lcancel()
	logf("listed ephemerals: %d, %v", len(kids), err)
	stopWork()
	wg.Wait()
	logf("work stopped")
	if err != nil {
		// A flapping cluster may miss one 20 s listing: try again without
		// the write load (the sessions still keep alive), for up to 60 s.
		for try := time.Now(); err != nil && time.Since(try) < 60*time.Second && ctx.Err() == nil; {
			lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
			kids, _, err = admin.Children(lctx, failoverDir+"/e", nil)
			lcancel()
			logf("listed ephemerals again: %d, %v", len(kids), err)
		}
	}
	if err != nil {
		res.EphemeralsLost = -1
		res.violate("list ephemerals: %v", err)
	} else {
		res.EphemeralsLost = cfg.Sessions - len(kids)
	}
	// Every worker is asked at once (each counts its expired sessions
	// when its stdin closes), so none keeps its sessions alive past the
	// window while another one closes its own.
	for _, w := range workers {
		w.stdin.Close()
	}
	for i, w := range workers {
		ks, err := w.finish()
		if err != nil {
			res.violate("session worker %d: %v", i, err)
		}
		expired = append(expired, ks...)
		if w.stall > res.WorkerStall {
			res.WorkerStall, res.WorkerStallAt = w.stall, w.stallEnd.Sub(kill)
		}
	}
	workers = nil
	res.Expired = len(expired)
	for i, k := range expired[:min(3, len(expired))] {
		logf("session %d expired (%d of %d)", k, i+1, len(expired))
	}
	if res.Expired > 0 {
		// Still a failure; the stall says whether the clients could send
		// keepalives at all (a worker starved for most of a session
		// timeout points at this machine, not at the servers).
		res.violate("%d sessions expired while their clients were alive (longest session worker stall %v, %.0f%% of the session timeout)",
			res.Expired, res.WorkerStall.Round(time.Millisecond), 100*res.WorkerStall.Seconds()/cfg.SessionTimeout.Seconds())
	}
	if res.EphemeralsLost > 0 {
		res.violate("%d ephemerals of live sessions deleted", res.EphemeralsLost)
	}
	if res.OfferedRate > 0 && res.AfterRate > 2*res.OfferedRate {
		res.violate("retry storm: %.0f requests/s in the 10 s after the kill, %.1f× the offered %.0f", res.AfterRate, res.AfterRate/res.OfferedRate, res.OfferedRate)
	}
	return res, nil
}
