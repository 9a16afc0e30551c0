package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"coord/client"
	"coord/coord/replica"
)

// Shape is one partial-partition scenario (the shapes of Alfatafta et
// al., "Toward a Generic Fault Tolerance Technique for Partial Network
// Partitioning", OSDI'20), placed relative to the leader at the moment it
// is applied. Unlike the random schedules, each shape is applied once,
// held long enough (PartitionConfig.Hold) for a flapping leader to show,
// and measured.
type Shape int

// The shapes. L is the leader when the fault starts, F0 the first other
// node (by index), F1 the next.
const (
	// ShapeFollowersApart (a): every follower-follower link is cut both
	// ways; the leader still reaches every follower (it bridges them).
	ShapeFollowersApart Shape = iota
	// ShapeLeaderReachesOne (a'): the leader reaches only F0; every other
	// link is up. With 3 nodes the leader keeps a majority (it is shape
	// b from F1's side); with 5 it has lost it and must step down within
	// its lease while the others elect a leader among themselves.
	ShapeLeaderReachesOne
	// ShapeFollowerCut (b): F0 is cut from the leader both ways and still
	// reaches every other follower: it must not depose the leader in a
	// loop.
	ShapeFollowerCut
	// ShapeOneWayToFollower (c): the leader's bytes to F0 are held; F0's
	// to the leader flow.
	ShapeOneWayToFollower
	// ShapeOneWayToLeader (c): F0's bytes to the leader are held; the
	// leader's to F0 flow (F0 hears heartbeats but its answers and its
	// forwarded writes go nowhere).
	ShapeOneWayToLeader
	// ShapeClientCut (d): the clients are cut from the leader both ways
	// (the node every write ends up on); they must move to another node.
	ShapeClientCut
	// ShapeIsolatedServing (d): F0 is cut from every peer both ways while
	// the clients still reach it: clients on it must be redirected or
	// failed fast, not kept waiting.
	ShapeIsolatedServing
	numShapes
)

var shapeNames = [...]string{"followers-apart", "leader-reaches-one", "follower-cut",
	"oneway-leader-to-follower", "oneway-follower-to-leader", "client-cut-leader", "isolated-serving"}

func (s Shape) String() string {
	if s < 0 || s >= numShapes {
		return fmt.Sprintf("shape(%d)", int(s))
	}
	return shapeNames[s]
}

// Shapes lists every shape.
func Shapes() []Shape {
	out := make([]Shape, numShapes)
	for i := range out {
		out[i] = Shape(i)
	}
	return out
}

// ParseShape turns a shape's name back into the shape.
func ParseShape(name string) (Shape, error) {
	for i, n := range shapeNames {
		if n == name {
			return Shape(i), nil
		}
	}
	return 0, fmt.Errorf("unknown partition shape %q (have %v)", name, shapeNames)
}

// MajorityKeepsLeader reports whether the leader keeps a connected
// majority under the shape on n nodes (so no election is needed at all).
func (s Shape) MajorityKeepsLeader(n int) bool {
	return s != ShapeLeaderReachesOne || n <= 3
}

// ProbeTimeout is the deadline of each probe write.
const ProbeTimeout = time.Second

// Client group ids the partition runs use.
const (
	groupPartRegister = 0
	groupPartProbe    = 1
)

// PartitionConfig configures one partition scenario.
type PartitionConfig struct {
	Coordd string
	Dir    string
	Nodes  int
	Shape  Shape
	// Seed drives the register workload.
	Seed uint64
	// Calm is how long the workload runs before the fault (default 1 s);
	// Hold how long the fault lasts (default 4 s); After how long the
	// workload goes on after the heal (default 1 s).
	Calm, Hold, After time.Duration
	// CheckTimeout bounds porcupine (default 1 min).
	CheckTimeout time.Duration
	// Election, Heartbeat and Lease are the raft timing: by default
	// coordd's election timeout (1 s) and lease (500 ms) with the
	// heartbeat timeout at half the election timeout (coordd's default
	// too), the setting under which writes resume within two election
	// timeouts (with the heartbeat at the election timeout: ~2-4). The
	// harness's short timing (ElectionTimeout) is below the probes' own
	// 1 s deadline, which then dominates.
	Election, Heartbeat, Lease time.Duration
	Log                        func(format string, args ...any)
}

// PartitionResult is what one scenario measured.
type PartitionResult struct {
	Shape Shape
	Nodes int
	// Election and Heartbeat are the raft timeouts the cluster ran with.
	Election, Heartbeat time.Duration
	// Elections is how far the highest raft term moved while the fault
	// was held (each election, won or not, takes a new term; a failed
	// pre-vote does not); LeaderChanges how often the observed leader
	// changed in that time.
	Elections, LeaderChanges int
	// ElectionsPerMin is Elections scaled to a minute of fault.
	ElectionsPerMin float64
	// StepDown: from the fault to the old leader no longer saying it
	// leads (0 if it never stepped down).
	StepDown time.Duration
	// ClusterGap is the longest time, from the fault to the heal, in
	// which no probe client completed a write (writes resume within it).
	// ClientGap is the longest such time for any one probe client (how
	// long a client can be held before it moves on).
	ClusterGap, ClientGap time.Duration
	// ProbeWrites completed during the fault.
	ProbeWrites int
	// Ops and Unknown: register ops checked; Linearizable: porcupine.
	Ops, Unknown int
	Linearizable porcupine.CheckResult
	Violations   []string
}

func (r *PartitionResult) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// apply cuts the links of shape s with leader l on the cluster and
// returns F0.
func (s Shape) apply(cl *Cluster, l int) int {
	n := len(cl.Nodes)
	var fs []int
	for i := 0; i < n; i++ {
		if i != l {
			fs = append(fs, i)
		}
	}
	f0 := fs[0]
	both := func(a, b int) { cl.Links.Cut(a, b); cl.Links.Cut(b, a) }
	switch s {
	case ShapeFollowersApart:
		for _, a := range fs {
			for _, b := range fs {
				if a != b {
					cl.Links.Cut(a, b)
				}
			}
		}
	case ShapeLeaderReachesOne:
		for _, f := range fs[1:] {
			both(l, f)
		}
	case ShapeFollowerCut:
		both(l, f0)
	case ShapeOneWayToFollower:
		cl.Links.Cut(l, f0)
	case ShapeOneWayToLeader:
		cl.Links.Cut(f0, l)
	case ShapeClientCut:
		for _, g := range []int{groupPartRegister, groupPartProbe} {
			both(ClientID(g), l)
		}
	case ShapeIsolatedServing:
		for _, f := range append(fs[1:], l) {
			both(f0, f)
		}
	}
	return f0
}

// termWatch polls every node's status and records the highest term and
// the leader seen over time.
type termWatch struct {
	mu      sync.Mutex
	maxTerm uint64
	samples []termSample
}

type termSample struct {
	at     time.Time
	term   uint64 // highest term any node reported
	leader string // the node reporting Leader at the highest term ("" none)
}

// watchTerms polls addrs (the nodes' direct addresses) every interval
// until ctx ends; wait for the returned channel before reading.
// leaderAfter returns the first leader other than old seen after from,
// and when (diagnostics).
func (w *termWatch) leaderAfter(from time.Time, old string) (string, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.at.After(from) && s.leader != "" && s.leader != old {
			return s.leader, s.at.Sub(from)
		}
	}
	return "", 0
}

func watchTerms(ctx context.Context, addrs []string, every time.Duration) (*termWatch, <-chan struct{}) {
	w := &termWatch{}
	done := make(chan struct{})
	var cls []*client.Client
	for _, a := range addrs {
		c, err := client.New(ctx, client.Config{Endpoints: []string{a}, DialTimeout: 200 * time.Millisecond})
		if err == nil {
			cls = append(cls, c)
		}
	}
	go func() {
		defer close(done)
		defer func() {
			for _, c := range cls {
				_ = c.Close(context.Background())
			}
		}()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			var s termSample
			for _, c := range cls {
				cctx, cancel := context.WithTimeout(ctx, every)
				st, err := c.Status(cctx)
				cancel()
				if err != nil {
					continue
				}
				if st.Term > s.term {
					s.term, s.leader = st.Term, ""
				}
				if st.State == "Leader" && st.Term == s.term {
					s.leader = st.Name
				}
			}
			s.at = time.Now()
			w.mu.Lock()
			w.maxTerm = max(w.maxTerm, s.term)
			w.samples = append(w.samples, s)
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w, done
}

// between returns the term moves and leader changes seen in [from, to].
func (w *termWatch) between(from, to time.Time) (terms, changes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var first, last uint64
	lastLeader := ""
	for _, s := range w.samples {
		if s.at.Before(from) {
			first = max(first, s.term)
			if s.leader != "" {
				lastLeader = s.leader
			}
			continue
		}
		if s.at.After(to) {
			break
		}
		if first == 0 {
			// No sample before the window: count from its first one.
			first = s.term
		}
		last = max(last, s.term)
		if s.leader != "" && s.leader != lastLeader {
			if lastLeader != "" {
				changes++
			}
			lastLeader = s.leader
		}
	}
	if first == 0 || last < first {
		return 0, changes
	}
	return int(last - first), changes
}

// probe is one client writing its own znode back to back, recording when
// each write completed.
type probe struct {
	mu  sync.Mutex
	oks []time.Time
	// fails: the failed writes (diagnostics: where a gap went).
	fails []probeFail
}

type probeFail struct {
	at, end time.Time
	err     string
}

func (p *probe) run(ctx context.Context, eps []string, path string, opTimeout time.Duration) {
	c, err := client.New(ctx, client.Config{Endpoints: eps, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		t0 := time.Now()
		_, err := c.Set(octx, path, []byte("p"), -1)
		if errors.Is(err, client.ErrNoNode) {
			if _, _, err = c.Create(octx, path, nil, nil); errors.Is(err, client.ErrNodeExists) {
				err = nil
			}
		}
		cancel()
		if err == nil {
			p.mu.Lock()
			p.oks = append(p.oks, time.Now())
			p.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		} else if ctx.Err() == nil {
			p.mu.Lock()
			if len(p.fails) < 1000 {
				p.fails = append(p.fails, probeFail{at: t0, end: time.Now(), err: err.Error()})
			}
			p.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// describe is one line on the probe's writes around the fault (from):
// when the first one after it completed, and the failures in between.
func (p *probe) describe(from, to time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := "none"
	for _, t := range p.oks {
		if t.After(from) && !t.After(to) {
			first = "+" + t.Sub(from).Round(time.Millisecond).String()
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "first write after the fault %s", first)
	n := 0
	for _, f := range p.fails {
		if f.end.Before(from) || f.at.After(to) {
			continue
		}
		if n++; n <= 3 {
			e := f.err
			if len(e) > 120 {
				e = e[:120]
			}
			fmt.Fprintf(&b, "; failed +%v..+%v: %s", f.at.Sub(from).Round(time.Millisecond), f.end.Sub(from).Round(time.Millisecond), e)
		}
	}
	if n > 3 {
		fmt.Fprintf(&b, "; %d more failures", n-3)
	}
	return b.String()
}

// gap is the longest time in [from, to] without a completed write in
// oks (sorted), and how many completed inside.
func gap(oks []time.Time, from, to time.Time) (time.Duration, int) {
	prev, worst, n := from, time.Duration(0), 0
	for _, t := range oks {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		n++
		worst = max(worst, t.Sub(prev))
		prev = t
	}
	return max(worst, to.Sub(prev)), n
}

func (p *probe) times() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.oks)
}

// setupRegisters creates the register znodes and returns the mzxid the
// last one was created at.
func setupRegisters(ctx context.Context, admin *client.Client) error {
	paths := []string{"/nemesis", regDir}
	for k := 0; k < Keys; k++ {
		paths = append(paths, key(k))
	}
	for _, p := range paths {
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, _, err := admin.Create(ctx, p, nil, nil)
			if err == nil || errors.Is(err, client.ErrNodeExists) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("setup %s: %w", p, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// RunPartition starts a cluster, runs the register workload and one probe
// writer per node, applies the shape for Hold, heals, and checks.
func RunPartition(ctx context.Context, cfg PartitionConfig) (PartitionResult, error) {
	res := PartitionResult{Shape: cfg.Shape, Nodes: cfg.Nodes}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.Calm == 0 {
		cfg.Calm = time.Second
	}
	if cfg.Hold == 0 {
		cfg.Hold = 4 * time.Second
	}
	if cfg.After == 0 {
		cfg.After = time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = time.Minute
	}
	if cfg.Nodes < 3 {
		return res, fmt.Errorf("partition %v: needs >= 3 nodes, have %d", cfg.Shape, cfg.Nodes)
	}
	if cfg.Election == 0 {
		cfg.Election = replica.DefaultElectionTimeout
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = cfg.Election / 2
	}
	if cfg.Lease == 0 {
		cfg.Lease = min(replica.DefaultLeaderLease, cfg.Heartbeat)
	}
	res.Election, res.Heartbeat = cfg.Election, cfg.Heartbeat
	cl, err := StartCluster(ctx, ClusterConfig{Coordd: cfg.Coordd, Nodes: cfg.Nodes, Dir: cfg.Dir, ClientGroups: 2,
		Election: cfg.Election, Heartbeat: cfg.Heartbeat, Lease: cfg.Lease})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	admin, err := client.New(ctx, client.Config{Endpoints: cl.Direct(), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer admin.Close(context.Background())
	if err := setupRegisters(ctx, admin); err != nil {
		return res, err
	}

	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	terms, termsDone := watchTerms(workCtx, cl.Direct(), 50*time.Millisecond)
	rec := &recorder{start: time.Now()}
	var wg sync.WaitGroup
	for w := 0; w < registerWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			registerWorker(workCtx, cl.ClientAddrs(groupPartRegister, w), rec, w, cfg.Seed)
		}()
	}
	probes := make([]*probe, cfg.Nodes)
	for i := range probes {
		probes[i] = &probe{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i].run(workCtx, cl.ClientAddrs(groupPartProbe, i), fmt.Sprintf("/nemesis/probe%d", i), ProbeTimeout)
		}()
	}

	select {
	case <-time.After(cfg.Calm):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	l := cl.Leader(ctx)
	if l < 0 {
		return res, errors.New("partition: no leader before the fault")
	}
	start := time.Now()
	f0 := cfg.Shape.apply(cl, l)
	logf("%v on %d nodes: leader n%d, F0 n%d", cfg.Shape, cfg.Nodes, l+1, f0+1)
	// The old leader's step-down, watched directly (not through the cut
	// proxies).
	stepDown := make(chan time.Duration, 1)
	go func() {
		c, err := client.New(workCtx, client.Config{Endpoints: []string{cl.Direct()[l]}, DialTimeout: 200 * time.Millisecond})
		if err != nil {
			stepDown <- 0
			return
		}
		defer c.Close(context.Background())
		for time.Since(start) < cfg.Hold {
			cctx, cancel := context.WithTimeout(workCtx, 100*time.Millisecond)
			st, err := c.Status(cctx)
			cancel()
			if err == nil && st.State != "Leader" {
				stepDown <- time.Since(start)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		stepDown <- 0
	}()
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	end := time.Now()
	cl.Links.HealAll(false)
	res.StepDown = <-stepDown
	select {
	case <-time.After(cfg.After):
	case <-ctx.Done():
	}
	if _, err := cl.TimeToWrite(ctx, 2*cfg.Election+5*time.Second); err != nil {
		res.violate("recovery after heal: %v", err)
	}
	stopWork()
	wg.Wait()
	<-termsDone

	if r, f := cl.OwnerLookups(); r > 0 || cl.OwnerClosed() > 0 {
		logf("peer connections whose dialer needed a second look: %d (never found: %d) %v; closed before the look: %d", r, f, cl.OwnerMisses(), cl.OwnerClosed())
	}
	res.Elections, res.LeaderChanges = terms.between(start, end)
	res.ElectionsPerMin = float64(res.Elections) / end.Sub(start).Minutes()
	if name, at := terms.leaderAfter(start, cl.Nodes[l].Name); name != "" {
		logf("new leader %s seen at +%v (status polled every 50 ms)", name, at.Round(time.Millisecond))
	}
	var all []time.Time
	for i, p := range probes {
		logf("probe n%d: %s", i+1, p.describe(start, end))
		ts := p.times()
		g, n := gap(ts, start, end)
		res.ClientGap = max(res.ClientGap, g)
		res.ProbeWrites += n
		all = append(all, ts...)
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	res.ClusterGap, _ = gap(all, start, end)

	ops, nops, unknown := settleOps(ctx, admin, rec.ops)
	res.Ops, res.Unknown = nops, unknown
	res.Linearizable, _ = CheckLinearizable(ops, cfg.CheckTimeout)
	if res.Linearizable != porcupine.Ok {
		res.violate("linearizability: %s over %d ops", res.Linearizable, nops)
	}
	if res.Failed() {
		logf("%v violations: %v\nlogs:\n%s", cfg.Shape, res.Violations, cl.Logs(3000))
	}
	return res, nil
}

// Failed reports whether a checker found a violation.
func (r PartitionResult) Failed() bool { return len(r.Violations) > 0 }

func (r PartitionResult) String() string {
	return fmt.Sprintf("%-26s nodes %d (election/heartbeat %v/%v): elections %d (%.1f/min), leader changes %d, step-down %v, writes resumed: cluster gap %v, worst client gap %v, %d probe writes; %d register ops (%d unknown) %s, violations %d",
		r.Shape, r.Nodes, r.Election, r.Heartbeat, r.Elections, r.ElectionsPerMin, r.LeaderChanges, r.StepDown.Round(time.Millisecond),
		r.ClusterGap.Round(time.Millisecond), r.ClientGap.Round(time.Millisecond), r.ProbeWrites, r.Ops, r.Unknown, r.Linearizable, len(r.Violations))
}
