package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"coord/lease/internal/core"
)

func durationOf(ns int64) time.Duration { return time.Duration(ns) }

// Config is one simulated run. Faults are drawn from Seed; the knobs select
// deliberately broken protocol variants for teeth tests.
type Config struct {
	Seed      uint64
	Nodes     int           // 3 or 5
	Resources int           // 1..4
	Duration  time.Duration // virtual true time
	Timing    core.Timing
	Knobs     core.Knobs
	// GST, if set, is when faults stop (global stabilisation): no more
	// loss, duplication, long delays, crashes, pauses or partitions; down
	// nodes restart. A probe then acquires a fresh resource (Result.Probe).
	GST time.Duration
	// ClockError, if set, replaces ε as the bound on the simulated clocks'
	// offsets while the guard still vouches for them: a teeth knob for
	// "clock beyond ε with the guard disabled".
	ClockError time.Duration
}

// TestTiming is the fast profile used by the simulator and the tests:
// LeaseDuration 300ms, ε 5ms, RoundTimeout 30ms.
func TestTiming() core.Timing {
	return core.Timing{
		LeaseDuration: 300 * time.Millisecond,
		MaxClockError: 5 * time.Millisecond,
		RoundTimeout:  30 * time.Millisecond,
		RenewAfter:    150 * time.Millisecond,
		MaxMessageAge: 60 * time.Millisecond,
		BackoffBase:   2 * time.Millisecond,
		MaxAttempts:   3,
		MaxDriftPPM:   200,
	}
}

// Result is the outcome of one run.
type Result struct {
	Violations []string
	Events     int // simulator events processed
	Tenures    int // distinct validity intervals observed
	Acquired   int // EvAcquired events
	Crashes    int
	Faults     string // the drawn fault schedule, for reproduction
	// Probe is the true time from the post-GST probe's Acquire to its
	// EvAcquired (-1: never acquired; 0: no GST set).
	Probe time.Duration
}

type evKind uint8

const (
	evDeliver evKind = iota
	evTimer
	evApp
	evCrash
	evRestart
	evPause
	evRelease // scheduled quick release after an acquisition
	evGST     // faults stop
	evProbe   // post-GST liveness probe
)

const probeRes = "probe"

type event struct {
	at   int64
	seq  uint64
	kind evKind
	node int
	gen  uint64
	msg  core.Message
}

type node struct {
	idx      int
	up       bool
	inc      uint64
	clock    clockModel
	acc      *core.Acceptor
	mem      *core.Member
	paused   int64 // true time the current pause ends
	timerGen uint64
	timerAt  int64
}

type faults struct {
	drop, dup   float64
	delayMax    int64 // typical one-way delay bound
	tail        float64
	crashEvery  int64 // mean true time between crashes per node (0: none)
	downMax     int64
	pauseEvery  int64
	pauseMax    int64
	cut         [][]bool // cut[i][j]: link i→j partitioned
	cutEvery    int64
	quickRel    float64 // probability of releasing right after acquiring
	workloadGap int64
}

type sim struct {
	cfg   Config
	rng   *rand.Rand
	now   int64
	seq   uint64
	q     []event // binary min-heap on (at, seq)
	nodes []*node
	res   []string
	f     faults
	chk   *checker
	out   Result
	incs  uint64
	calm  bool  // after GST
	probe int64 // true time the probe was issued
}

// Run executes one seeded run and checks it.
func Run(cfg Config) Result {
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), chk: newChecker()}
	s.setup()
	end := int64(cfg.Duration)
	for len(s.q) > 0 {
		e := s.pop()
		if e.at > end {
			break
		}
		s.now = e.at
		s.out.Events++
		s.handle(e)
	}
	s.now = end
	for i := range s.nodes {
		for ri := range s.res {
			s.chk.closeAt(i, ri, end)
		}
	}
	s.out.Violations = s.chk.verify()
	s.out.Tenures = len(s.chk.tenures)
	return s.out
}

func (s *sim) setup() {
	t := s.cfg.Timing
	eps := int64(t.MaxClockError)
	d := int64(t.LeaseDuration)
	r := s.rng
	// Faults, drawn per seed.
	s.f.drop = []float64{0, 0, 0.05, 0.2, 0.4}[r.IntN(5)]
	s.f.dup = []float64{0, 0.05, 0.1}[r.IntN(3)]
	s.f.delayMax = int64(t.RoundTimeout) / []int64{30, 10, 4, 2}[r.IntN(4)]
	s.f.tail = []float64{0, 0.01}[r.IntN(2)]
	if r.IntN(4) != 0 {
		s.f.crashEvery = d * int64(1+r.IntN(4))
		s.f.downMax = d * int64(1+r.IntN(2)) / 2
	}
	if r.IntN(3) == 0 {
		s.f.pauseEvery = d * int64(2+r.IntN(4))
		s.f.pauseMax = 2 * d
	}
	if r.IntN(3) == 0 {
		s.f.cutEvery = d * int64(1+r.IntN(3))
	}
	s.f.quickRel = []float64{0, 0.3}[r.IntN(2)]
	s.f.workloadGap = d / int64(1+r.IntN(4))
	s.out.Faults = fmt.Sprintf("drop=%.2f dup=%.2f delay≤%v tail=%.2f crash/%v down≤%v pause/%v cut/%v quickrel=%.1f",
		s.f.drop, s.f.dup, time.Duration(s.f.delayMax), s.f.tail, time.Duration(s.f.crashEvery),
		time.Duration(s.f.downMax), time.Duration(s.f.pauseEvery), time.Duration(s.f.cutEvery), s.f.quickRel)

	n := s.cfg.Nodes
	s.f.cut = make([][]bool, n)
	for i := range s.f.cut {
		s.f.cut[i] = make([]bool, n)
	}
	for i := 0; i < s.cfg.Resources; i++ {
		s.res = append(s.res, fmt.Sprintf("r%d", i))
	}
	// Clocks: offsets often at the extremes of what ε allows, minus the
	// drift the run can accumulate.
	ppmMax := int64(t.MaxDriftPPM)
	driftMax := int64(s.cfg.Duration) / 1_000_000 * ppmMax
	if s.cfg.ClockError > 0 {
		eps = int64(s.cfg.ClockError)
	}
	offMax := eps - driftMax - 1
	for i := 0; i < n; i++ {
		var off int64
		switch r.IntN(3) {
		case 0:
			off = offMax
		case 1:
			off = -offMax
		default:
			off = r.Int64N(2*offMax+1) - offMax
		}
		nd := &node{idx: i, clock: clockModel{off: off, ppm: r.Int64N(2*ppmMax+1) - ppmMax, monoBase: r.Int64N(1e12)}}
		s.nodes = append(s.nodes, nd)
		// Nodes have been up for longer than the restart wait at T=0.
		s.boot(nd, -int64(t.RestartWait())-1)
		s.push(event{at: r.Int64N(s.f.workloadGap + 1), kind: evApp, node: i})
		if s.f.crashEvery > 0 {
			s.push(event{at: r.Int64N(2 * s.f.crashEvery), kind: evCrash, node: i})
		}
		if s.f.pauseEvery > 0 {
			s.push(event{at: r.Int64N(2 * s.f.pauseEvery), kind: evPause, node: i})
		}
	}
	if s.f.cutEvery > 0 {
		s.push(event{at: r.Int64N(s.f.cutEvery), kind: evPause, node: -1})
	}
	if s.cfg.GST > 0 {
		s.push(event{at: int64(s.cfg.GST), kind: evGST})
		// Every restart wait and pause begun before GST is over by then.
		s.push(event{at: int64(s.cfg.GST) + int64(t.RestartWait()) + 2*d + 1, kind: evProbe})
		s.out.Probe = -1
	}
}

// boot starts a fresh incarnation of nd (amnesia) as if started at true time t0.
func (s *sim) boot(nd *node, t0 int64) {
	s.incs++
	nd.inc = s.incs<<32 | uint64(s.rng.Uint32())
	nd.up = true
	nd.timerAt = -1
	start := nd.clock.instant(t0)
	nd.acc = core.NewAcceptor(nd.idx, s.cfg.Timing, s.cfg.Knobs, start)
	nd.mem = core.NewMember(core.MemberConfig{
		Self: core.NodeID(fmt.Sprintf("n%d", nd.idx)), Index: nd.idx, N: s.cfg.Nodes, Inc: nd.inc,
		Timing: s.cfg.Timing, Knobs: s.cfg.Knobs, Learn: true,
		Rand: rand.New(rand.NewPCG(s.rng.Uint64(), s.rng.Uint64())),
	}, start)
}

func (s *sim) handle(e event) {
	switch e.kind {
	case evGST:
		s.calm = true
		for i := range s.f.cut {
			clear(s.f.cut[i])
		}
		for _, nd := range s.nodes {
			if !nd.up {
				s.boot(nd, s.now)
				s.schedule(nd)
			}
		}
		return
	case evProbe:
		nd := s.nodes[0]
		s.probe = s.now
		s.apply(nd, nd.mem.Acquire(nd.clock.instant(s.now), probeRes, true))
		return
	}
	if s.calm && (e.kind == evCrash || e.kind == evPause || e.kind == evRestart) {
		return
	}
	if e.node < 0 { // partition change
		s.repartition()
		s.push(event{at: s.now + s.rng.Int64N(2*s.f.cutEvery+1), kind: evPause, node: -1})
		return
	}
	nd := s.nodes[e.node]
	switch e.kind {
	case evCrash:
		if nd.up {
			s.crash(nd)
		}
		return
	case evRestart:
		s.boot(nd, s.now)
		s.push(event{at: s.now + s.rng.Int64N(2*s.f.crashEvery+1), kind: evCrash, node: nd.idx})
		s.schedule(nd)
		return
	}
	if !nd.up {
		if e.kind == evApp {
			s.push(event{at: s.now + s.f.workloadGap, kind: evApp, node: e.node})
		}
		return
	}
	if s.now < nd.paused { // a paused process handles nothing until it resumes
		e.at = nd.paused
		s.push(e)
		return
	}
	now := nd.clock.instant(s.now)
	switch e.kind {
	case evDeliver:
		m := e.msg
		switch m.Kind {
		case core.MsgPrepare, core.MsgAccept:
			if reply, why := nd.acc.Handle(now, m); why == core.Answered {
				s.send(nd, reply)
			}
			return
		default:
			s.apply(nd, nd.mem.Step(now, m))
		}
	case evTimer:
		if e.gen != nd.timerGen {
			return
		}
		nd.timerAt = -1
		s.apply(nd, nd.mem.Tick(now))
	case evApp:
		s.app(nd, now)
		s.push(event{at: s.now + s.rng.Int64N(2*s.f.workloadGap+1), kind: evApp, node: e.node})
	case evPause:
		if s.f.pauseEvery > 0 {
			nd.paused = s.now + s.rng.Int64N(s.f.pauseMax+1)
			s.push(event{at: s.now + s.rng.Int64N(2*s.f.pauseEvery+1), kind: evPause, node: e.node})
		}
		return
	case evRelease:
		if e.gen == nd.inc {
			s.apply(nd, nd.mem.Release(now, e.msg.Resource))
		}
	}
}

func (s *sim) crash(nd *node) {
	nd.up = false
	nd.paused = 0
	s.out.Crashes++
	for ri := range s.res {
		s.chk.closeAt(nd.idx, ri, s.now)
	}
	s.push(event{at: s.now + s.rng.Int64N(s.f.downMax+1), kind: evRestart, node: nd.idx})
}

func (s *sim) repartition() {
	n := len(s.nodes)
	for i := range s.f.cut {
		for j := range s.f.cut[i] {
			s.f.cut[i][j] = false
		}
	}
	switch s.rng.IntN(3) {
	case 0: // heal
	case 1: // isolate one node (symmetric)
		x := s.rng.IntN(n)
		for j := 0; j < n; j++ {
			if j != x {
				s.f.cut[x][j], s.f.cut[j][x] = true, true
			}
		}
	case 2: // one random direction of one link
		a, b := s.rng.IntN(n), s.rng.IntN(n)
		if a != b {
			s.f.cut[a][b] = true
		}
	}
}

// app performs one random workload action on nd.
func (s *sim) app(nd *node, now core.Instant) {
	r := s.rng
	res := s.res[r.IntN(len(s.res))]
	if s.calm && r.IntN(2) == 0 {
		return // lighter load after GST
	}
	var out core.Output
	switch x := r.IntN(100); {
	case x < 40:
		out = nd.mem.Acquire(now, res, r.IntN(5) != 0)
	case x < 55:
		out = nd.mem.TryAcquire(now, res, r.IntN(5) != 0)
	case x < 75:
		out = nd.mem.Release(now, res)
	case x < 85:
		out = nd.mem.Query(now, res)
	case x < 92:
		out = nd.mem.Renew(now, res)
	default:
		out = nd.mem.Cancel(now, res, core.OpAcquire)
	}
	s.apply(nd, out)
}

// apply carries out a Member output: sends messages, feeds the checker,
// reschedules the node's timer.
func (s *sim) apply(nd *node, out core.Output) {
	for _, m := range out.Msgs {
		s.send(nd, m)
	}
	for _, ev := range out.Events {
		if ev.Kind == core.EvAcquired && ev.Resource == probeRes && s.out.Probe < 0 {
			s.out.Probe = time.Duration(s.now - s.probe)
		}
		if ev.Kind == core.EvAcquired {
			s.out.Acquired++
			if s.f.quickRel > 0 && s.rng.Float64() < s.f.quickRel {
				d := s.rng.Int64N(4*int64(s.cfg.Timing.MaxClockError)+1) * int64(s.rng.IntN(2))
				s.push(event{at: s.now + d, kind: evRelease, node: nd.idx, gen: nd.inc, msg: core.Message{Resource: ev.Resource}})
			}
		}
	}
	now := nd.clock.instant(s.now)
	for ri, res := range s.res {
		h, ok := nd.mem.Holding(res)
		if !ok || !h.Valid(now) {
			s.chk.closeAt(nd.idx, ri, s.now)
			continue
		}
		end := min(firstAt(nd.clock.wall, s.now, h.WallDeadline), firstAt(nd.clock.mono, s.now, int64(h.MonoDeadline)))
		s.chk.observe(nd.idx, ri, res, nd.inc, h.Value.Epoch, s.now, end)
	}
	s.schedule(nd)
}

func (s *sim) schedule(nd *node) {
	now := nd.clock.instant(s.now)
	wake, ok := nd.mem.NextWake(now)
	if !ok {
		return
	}
	at := firstAt(nd.clock.mono, s.now, int64(wake))
	if at == nd.timerAt {
		return
	}
	nd.timerGen++
	nd.timerAt = at
	s.push(event{at: at, kind: evTimer, node: nd.idx, gen: nd.timerGen})
}

func (s *sim) send(from *node, m core.Message) {
	if m.To == from.idx {
		s.push(event{at: s.now, kind: evDeliver, node: m.To, msg: m})
		return
	}
	if s.calm {
		s.push(event{at: s.now + s.rng.Int64N(s.f.delayMax+1), kind: evDeliver, node: m.To, msg: m})
		return
	}
	copies := 1
	if s.rng.Float64() < s.f.dup {
		copies = 2
	}
	for c := 0; c < copies; c++ {
		if s.f.cut[m.From][m.To] || s.rng.Float64() < s.f.drop {
			continue
		}
		d := s.rng.Int64N(s.f.delayMax + 1)
		if s.f.tail > 0 && s.rng.Float64() < s.f.tail {
			d = s.rng.Int64N(3*int64(s.cfg.Timing.LeaseDuration) + 1)
		}
		s.push(event{at: s.now + d, kind: evDeliver, node: m.To, msg: m})
	}
}

// heap on (at, seq)
func (s *sim) push(e event) {
	s.seq++
	e.seq = s.seq
	s.q = append(s.q, e)
	i := len(s.q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !less(&s.q[i], &s.q[p]) {
			break
		}
		s.q[i], s.q[p] = s.q[p], s.q[i]
		i = p
	}
}

func (s *sim) pop() event {
	top := s.q[0]
	n := len(s.q) - 1
	s.q[0] = s.q[n]
	s.q = s.q[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && less(&s.q[l], &s.q[m]) {
			m = l
		}
		if r < n && less(&s.q[r], &s.q[m]) {
			m = r
		}
		if m == i {
			break
		}
		s.q[i], s.q[m] = s.q[m], s.q[i]
		i = m
	}
	return top
}

func less(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

// String formats a result for a failure message.
func (r Result) String() string {
	return fmt.Sprintf("events=%d tenures=%d acquired=%d crashes=%d faults[%s]\n%s",
		r.Events, r.Tenures, r.Acquired, r.Crashes, r.Faults, strings.Join(r.Violations, "\n"))
}
