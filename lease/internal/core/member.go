package core

import (
	"math/rand/v2"
	"time"
)

// MemberConfig configures the proposer side of one group member.
type MemberConfig struct {
	Self   NodeID
	Index  int    // Self's index in the group's member list
	N      int    // group size, 1..64
	Inc    uint64 // incarnation: random per process start
	Timing Timing
	Knobs  Knobs
	Rand   *rand.Rand // backoff jitter and ballot jumps; seeded by the host
	Learn  bool       // broadcast Learn hints on ownership changes
}

// Output is what one call into a Member produced. Its slices are reused by
// the next call: the host consumes them first.
type Output struct {
	Msgs   []Message
	Events []Event
}

// Holding is a lease this member holds.
type Holding struct {
	Value        Value
	WallDeadline int64         // valid while wall < this (Expiry − ε)
	MonoDeadline time.Duration // and mono < this (decision + (D−ε)(1−ρ))
	AutoRenew    bool
	RenewAt      time.Duration // mono instant of the next automatic renewal
}

// Valid reports whether the holder may use the lease at now.
func (h *Holding) Valid(now Instant) bool {
	return now.ClockOK && now.Wall < h.WallDeadline && now.Mono < h.MonoDeadline
}

type round struct {
	active    bool
	op        Op
	ballot    Ballot
	accepting bool
	deadline  time.Duration
	acks      uint64 // bitmask of member indices
	n         int
	best      Ballot // highest accepted ballot among prepare acks
	cur       Value  // its value
	eMax      uint64 // highest epoch among all prepare acks
	chosen    Value
	decided   Instant
}

type cell struct {
	res                              string
	wantAcquire, wantTry, wantQuery  bool
	wantRelease, renewNow, autoRenew bool
	releaseEpoch                     uint64
	held                             *Holding
	r                                round
	lastRound, maxSeen               uint64
	notBefore                        time.Duration
	attempts                         int
	learned                          Value
}

// Member is the proposer side of one group member over all resources, plus
// the holder state. It is pure: no goroutines, no clock reads, no I/O; the
// host feeds it Instants, replies and ticks and carries out its Output.
type Member struct {
	cfg          MemberConfig
	quorum       int
	recoverUntil time.Duration
	cells        map[string]*cell
	order        []*cell // creation order: deterministic iteration
	out          Output
}

// NewMember returns a member started at start: it proposes nothing before
// start.Mono + RestartWait.
func NewMember(cfg MemberConfig, start Instant) *Member {
	m := &Member{cfg: cfg, quorum: cfg.N/2 + 1, cells: make(map[string]*cell)}
	if !cfg.Knobs.NoRestartWait && !cfg.Knobs.SelfVotesWhileRecovering {
		m.recoverUntil = start.Mono + cfg.Timing.RestartWait()
	}
	return m
}

// Recovering reports whether the restart wait is running at now.
func (m *Member) Recovering(now Instant) bool { return now.Mono < m.recoverUntil }

// RecoverUntil is the monotonic instant the restart wait ends.
func (m *Member) RecoverUntil() time.Duration { return m.recoverUntil }

func (m *Member) cell(res string) *cell {
	c := m.cells[res]
	if c == nil {
		c = &cell{res: res}
		m.cells[res] = c
		m.order = append(m.order, c)
	}
	return c
}

func (m *Member) begin() {
	m.out.Msgs = m.out.Msgs[:0]
	m.out.Events = m.out.Events[:0]
}

func (m *Member) emit(e Event) { m.out.Events = append(m.out.Events, e) }

// Holding returns the lease held on res, if any (it may be past its deadline
// until the next Tick; use Holding.Valid).
func (m *Member) Holding(res string) (Holding, bool) {
	if c := m.cells[res]; c != nil && c.held != nil {
		return *c.held, true
	}
	return Holding{}, false
}

// Learned returns the newest committed value seen for res (may be stale).
func (m *Member) Learned(res string) Value {
	if c := m.cells[res]; c != nil {
		return c.learned
	}
	return Value{}
}

// Resources lists every resource the member has state for.
func (m *Member) Resources() []string {
	out := make([]string, 0, len(m.order))
	for _, c := range m.order {
		out = append(out, c.res)
	}
	return out
}

// Acquire asks for res until held (blocking acquire). If res is already held
// it reports EvAcquired at once.
func (m *Member) Acquire(now Instant, res string, autoRenew bool) Output {
	return m.request(now, res, OpAcquire, autoRenew)
}

// TryAcquire makes one acquisition attempt: EvAcquired, EvHeld or EvFailed.
func (m *Member) TryAcquire(now Instant, res string, autoRenew bool) Output {
	return m.request(now, res, OpTry, autoRenew)
}

// Query runs a linearizable read: EvHolder or EvFailed.
func (m *Member) Query(now Instant, res string) Output {
	return m.request(now, res, OpQuery, false)
}

func (m *Member) request(now Instant, res string, op Op, autoRenew bool) Output {
	m.begin()
	c := m.cell(res)
	m.check(now, c)
	if (op == OpAcquire || op == OpTry) && c.held != nil {
		c.held.AutoRenew = c.held.AutoRenew || autoRenew
		m.emit(Event{Kind: EvAcquired, Resource: res, Op: op, Value: c.held.Value})
		return m.out
	}
	switch op {
	case OpAcquire:
		c.wantAcquire, c.autoRenew = true, autoRenew
	case OpTry:
		c.wantTry, c.autoRenew = true, autoRenew
	case OpQuery:
		c.wantQuery = true
	}
	m.kick(now, c)
	return m.out
}

// Renew starts a renewal of the lease on res now (for leases without
// automatic renewal). The outcome is EvRenewed or EvLost.
func (m *Member) Renew(now Instant, res string) Output {
	m.begin()
	c := m.cell(res)
	m.check(now, c)
	if c.held != nil {
		c.renewNow = true
		m.kick(now, c)
	}
	return m.out
}

// Release invalidates the local lease at once and then writes a Released
// value (best effort). The outcome is EvReleased or EvFailed. A pending
// acquire of res is cancelled.
func (m *Member) Release(now Instant, res string) Output {
	m.begin()
	c := m.cell(res)
	c.wantAcquire, c.wantTry = false, false
	if c.held == nil {
		m.emit(Event{Kind: EvReleased, Resource: res, Op: OpRelease})
		return m.out
	}
	c.releaseEpoch = c.held.Value.Epoch
	c.held, c.renewNow = nil, false
	c.wantRelease = true
	c.notBefore = 0
	m.kick(now, c)
	return m.out
}

// Cancel withdraws a pending acquire or query on res (the caller gave up). A
// lease that commits afterwards is released, not handed out.
func (m *Member) Cancel(now Instant, res string, op Op) Output {
	m.begin()
	if c := m.cells[res]; c != nil {
		switch op {
		case OpAcquire:
			c.wantAcquire = false
		case OpTry:
			c.wantTry = false
		case OpQuery:
			c.wantQuery = false
		}
	}
	return m.out
}

// Step feeds one incoming reply or Learn hint.
func (m *Member) Step(now Instant, msg Message) Output {
	m.begin()
	c := m.cells[msg.Resource]
	if c == nil {
		if msg.Kind != MsgLearn {
			return m.out
		}
		c = m.cell(msg.Resource)
	}
	m.check(now, c)
	switch msg.Kind {
	case MsgPrepareReply, MsgAcceptReply:
		m.onReply(now, c, msg)
	case MsgLearn:
		m.learn(c, msg.Value)
		if msg.Value.Released && c.wantAcquire && !c.r.active {
			c.notBefore = now.Mono + m.jitter(m.cfg.Timing.RoundTimeout/8)
		}
	}
	m.kick(now, c)
	return m.out
}

// Tick fires due timers: holder deadlines, round timeouts, retries and
// renewals. Call it at NextWake (calling it more often is harmless).
func (m *Member) Tick(now Instant) Output {
	m.begin()
	for _, c := range m.order {
		m.check(now, c)
		if c.r.active && now.Mono >= c.r.deadline {
			m.abort(now, c)
		}
		m.kick(now, c)
	}
	return m.out
}

// NextWake returns the monotonic instant of the next timer, if any.
func (m *Member) NextWake(now Instant) (time.Duration, bool) {
	var next time.Duration
	ok := false
	at := func(t time.Duration) {
		if !ok || t < next {
			next, ok = t, true
		}
	}
	for _, c := range m.order {
		if c.held != nil {
			at(c.held.MonoDeadline)
			at(now.Mono + time.Duration(c.held.WallDeadline-now.Wall))
		}
		if c.r.active {
			at(c.r.deadline)
			continue
		}
		if c.wantRelease || c.wantTry || c.wantAcquire || c.wantQuery || c.renewNow {
			at(max(c.notBefore, now.Mono))
		} else if c.held != nil && c.held.AutoRenew {
			at(max(c.notBefore, c.held.RenewAt))
		}
	}
	return next, ok
}

// check ends the holding of c if it is no longer valid at now.
func (m *Member) check(now Instant, c *cell) {
	if c.held == nil {
		return
	}
	switch {
	case !now.ClockOK:
		m.lose(c, ReasonClockUnsafe)
	case !c.held.Valid(now):
		m.lose(c, ReasonExpired)
	}
}

func (m *Member) lose(c *cell, why Reason) {
	m.emit(Event{Kind: EvLost, Resource: c.res, Op: OpRenew, Value: c.held.Value, Reason: why})
	c.held, c.renewNow = nil, false
}

// kick starts the next due round of c, if it is idle.
func (m *Member) kick(now Instant, c *cell) {
	if c.r.active || now.Mono < c.notBefore {
		return
	}
	var op Op
	switch {
	case c.wantRelease:
		op = OpRelease
	case c.held != nil && (c.renewNow || (c.held.AutoRenew && now.Mono >= c.held.RenewAt)):
		op = OpRenew
	case c.wantTry:
		op = OpTry
	case c.wantAcquire:
		op = OpAcquire
	case c.wantQuery:
		op = OpQuery
	default:
		return
	}
	m.start(now, c, op)
}

func (m *Member) fail(c *cell, op Op, why Reason) {
	switch op {
	case OpTry:
		c.wantTry = false
	case OpQuery:
		c.wantQuery = false
	case OpRelease:
		c.wantRelease = false
	}
	c.attempts = 0
	m.emit(Event{Kind: EvFailed, Resource: c.res, Op: op, Reason: why})
}

func (m *Member) start(now Instant, c *cell, op Op) {
	t := m.cfg.Timing
	if m.Recovering(now) {
		if op == OpAcquire {
			c.notBefore = m.recoverUntil
		} else {
			m.fail(c, op, ReasonRecovering)
		}
		return
	}
	if !now.ClockOK {
		if op == OpAcquire {
			c.notBefore = now.Mono + t.RoundTimeout
		} else {
			m.fail(c, op, ReasonClockUnsafe)
		}
		return
	}
	rnd := max(c.lastRound+1, c.maxSeen+1+uint64(m.cfg.Rand.IntN(4)), uint64(now.Wall/1e6))
	c.lastRound = rnd
	b := Ballot{Round: rnd, Proposer: uint32(m.cfg.Index), Inc: uint32(m.cfg.Inc)}
	c.r = round{active: true, op: op, ballot: b, deadline: now.Mono + t.RoundTimeout}
	for i := 0; i < m.cfg.N; i++ {
		m.out.Msgs = append(m.out.Msgs, Message{Kind: MsgPrepare, From: m.cfg.Index, To: i,
			Resource: c.res, Ballot: b, Sent: now.Wall})
	}
}

func (m *Member) onReply(now Instant, c *cell, msg Message) {
	r := &c.r
	if !r.active || msg.Ballot != r.ballot || msg.From < 0 || msg.From >= 64 {
		return
	}
	if (msg.Kind == MsgAcceptReply) != r.accepting {
		return
	}
	if !msg.OK {
		c.maxSeen = max(c.maxSeen, msg.Promised.Round)
		m.abort(now, c)
		return
	}
	bit := uint64(1) << uint(msg.From)
	if r.acks&bit != 0 {
		return // duplicate
	}
	r.acks |= bit
	r.n++
	if !r.accepting {
		if r.best.Less(msg.Accepted) {
			r.best, r.cur = msg.Accepted, msg.Value
		}
		r.eMax = max(r.eMax, msg.Value.Epoch)
	}
	if r.n < m.quorum {
		return
	}
	if r.accepting {
		m.commit(now, c)
	} else {
		m.decide(now, c)
	}
}

// abort ends the active round after a nack or timeout and arms a backoff.
func (m *Member) abort(now Instant, c *cell) {
	op := c.r.op
	c.r.active = false
	c.attempts++
	t := m.cfg.Timing
	d := min(t.BackoffBase<<min(c.attempts, 16), t.RoundTimeout)
	c.notBefore = now.Mono + m.jitter(d)
	if c.attempts >= t.MaxAttempts {
		switch op {
		case OpTry, OpQuery, OpRelease:
			m.fail(c, op, ReasonNoQuorum)
		}
	}
}

func (m *Member) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(m.cfg.Rand.Int64N(int64(d) + 1))
}

func (m *Member) mine(v Value) bool {
	return v.Owner == m.cfg.Self && v.OwnerInc == m.cfg.Inc
}

func (m *Member) eps() int64 {
	if m.cfg.Knobs.NoClockMargin {
		return 0
	}
	return int64(m.cfg.Timing.MaxClockError)
}

// newEpoch is max(eMax+1, wall µs): strictly above every epoch the read saw,
// and above every epoch of a tenure a forgetful quorum may have lost.
func (m *Member) newEpoch(eMax uint64, now Instant) uint64 {
	wall := uint64(now.Wall / 1000)
	switch {
	case m.cfg.Knobs.EpochIgnoresMax:
		return wall
	case m.cfg.Knobs.EpochIgnoresWall:
		return eMax + 1
	}
	return max(eMax+1, wall)
}

// decide runs after a committed read: it picks the value to write, or ends
// the round without a write.
func (m *Member) decide(now Instant, c *cell) {
	r := &c.r
	m.check(now, c)
	if !now.ClockOK {
		r.active = false
		if r.op == OpAcquire {
			c.notBefore = now.Mono + m.cfg.Timing.RoundTimeout
		} else if r.op != OpRenew {
			m.fail(c, r.op, ReasonClockUnsafe)
		}
		return
	}
	cur, eps := r.cur, m.eps()
	m.learn(c, cur)
	free := cur.Free() || now.Wall-eps > cur.Expiry
	valid := !cur.Free() && now.Wall+eps < cur.Expiry // surely valid everywhere
	mine := m.mine(cur) && valid
	var v Value
	switch r.op {
	case OpAcquire, OpTry:
		if !free && !mine {
			r.active, c.attempts = false, 0
			if r.op == OpTry {
				c.wantTry = false
				m.emit(Event{Kind: EvHeld, Resource: c.res, Op: OpTry, Value: cur})
				return
			}
			// Wait until the lease is surely expired everywhere.
			wait := time.Duration(cur.Expiry+eps-now.Wall) + 1
			c.notBefore = now.Mono + wait + m.jitter(m.cfg.Timing.RoundTimeout/4)
			return
		}
		v = Value{Owner: m.cfg.Self, OwnerInc: m.cfg.Inc, Expiry: now.Wall + int64(m.cfg.Timing.LeaseDuration),
			Epoch: m.newEpoch(r.eMax, now)}
	case OpRenew:
		if c.held == nil {
			r.active = false
			return
		}
		if !mine || cur.Epoch != c.held.Value.Epoch {
			r.active = false
			m.lose(c, ReasonRenewFailed)
			return
		}
		v = cur
		v.Expiry = now.Wall + int64(m.cfg.Timing.LeaseDuration)
	case OpRelease:
		if !m.mine(cur) || cur.Released || cur.Epoch != c.releaseEpoch {
			r.active, c.wantRelease, c.attempts = false, false, 0
			m.emit(Event{Kind: EvReleased, Resource: c.res, Op: OpRelease, Value: cur})
			return
		}
		v = cur
		v.Released = true
	case OpQuery:
		if cur.IsZero() {
			r.active, c.wantQuery, c.attempts = false, false, 0
			m.emit(Event{Kind: EvHolder, Resource: c.res, Op: OpQuery})
			return
		}
		v = cur
	}
	r.chosen, r.decided = v, now
	r.accepting, r.acks, r.n = true, 0, 0
	r.deadline = now.Mono + m.cfg.Timing.RoundTimeout
	for i := 0; i < m.cfg.N; i++ {
		m.out.Msgs = append(m.out.Msgs, Message{Kind: MsgAccept, From: m.cfg.Index, To: i,
			Resource: c.res, Ballot: r.ballot, Sent: now.Wall, Value: v})
	}
}

// commit runs when a majority accepted the chosen value.
func (m *Member) commit(now Instant, c *cell) {
	r := &c.r
	r.active, c.attempts = false, 0
	m.check(now, c)
	v := r.chosen
	m.learn(c, v)
	switch r.op {
	case OpAcquire, OpTry:
		if !c.wantAcquire && !c.wantTry {
			// Cancelled while in flight: give it back.
			c.wantRelease, c.releaseEpoch = true, v.Epoch
			return
		}
		h := m.holding(v, r.decided)
		if !h.Valid(now) {
			// Committed too late to be usable (a pause): try again.
			if r.op == OpTry {
				m.fail(c, OpTry, ReasonExpired)
			}
			return
		}
		h.AutoRenew = c.autoRenew
		c.held = &h
		c.wantAcquire, c.wantTry = false, false
		m.emit(Event{Kind: EvAcquired, Resource: c.res, Op: r.op, Value: v})
		m.broadcastLearn(now, c.res, v)
	case OpRenew:
		if c.held == nil || c.held.Value.Epoch != v.Epoch {
			return // lost meanwhile; never resurrect
		}
		h := m.holding(v, r.decided)
		h.AutoRenew = c.held.AutoRenew
		c.held = &h
		c.renewNow = false
		m.emit(Event{Kind: EvRenewed, Resource: c.res, Op: OpRenew, Value: v})
	case OpRelease:
		c.wantRelease = false
		m.emit(Event{Kind: EvReleased, Resource: c.res, Op: OpRelease, Value: v})
		m.broadcastLearn(now, c.res, v)
	case OpQuery:
		c.wantQuery = false
		m.emit(Event{Kind: EvHolder, Resource: c.res, Op: OpQuery, Value: v})
	}
}

func (m *Member) holding(v Value, decided Instant) Holding {
	t := m.cfg.Timing
	h := Holding{Value: v, WallDeadline: v.Expiry - m.eps(), RenewAt: decided.Mono + t.RenewAfter}
	if m.cfg.Knobs.NoClockMargin {
		h.MonoDeadline = decided.Mono + t.LeaseDuration
	} else {
		h.MonoDeadline = decided.Mono + t.holderSpan(time.Duration(v.Expiry-decided.Wall))
	}
	return h
}

func (m *Member) broadcastLearn(now Instant, res string, v Value) {
	if !m.cfg.Learn {
		return
	}
	for i := 0; i < m.cfg.N; i++ {
		if i != m.cfg.Index {
			m.out.Msgs = append(m.out.Msgs, Message{Kind: MsgLearn, From: m.cfg.Index, To: i,
				Resource: res, Sent: now.Wall, Value: v})
		}
	}
}

// learn records v if it is newer than what c has seen.
func (m *Member) learn(c *cell, v Value) {
	if v.IsZero() {
		return
	}
	l := c.learned
	if v.Epoch > l.Epoch || (v.Epoch == l.Epoch && (v.Expiry > l.Expiry || v.Released && !l.Released)) {
		c.learned = v
		m.emit(Event{Kind: EvLearned, Resource: c.res, Value: v})
	}
}
