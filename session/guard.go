package session

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Guard configures the expiry guard: the rules that keep a leader whose
// keepalive intake collapsed from turning that into an expiry storm, while
// a session whose client really died still expires in bounded time.
//
// # Why
//
// A session expires when the leader has not counted a keepalive for its
// timeout. The leader counts only what reaches it; when the leader itself
// is starved or descheduled, or a follower that relays keepalives is, the
// leader stops counting keepalives that clients did send (a follower
// already answered them "alive"). Expiring those sessions deletes their
// ephemerals and wakes every watcher and lock waiter at once: the load that
// starved the leader grows, which is how a slow leader becomes a metastable
// failure.
//
// # The rules (what the best systems do)
//
// The table keeps two clocks beside the real one, both starting with it:
//
//   - loop time: real time minus the pauses of the leader's session loop.
//     When the loop runs late by more than PauseAfter (the process was
//     descheduled, stopped or starved), only one Tick of the gap counts: no
//     keepalive could be counted meanwhile, so the gap is no evidence that
//     any client died. (Pause compensation; in the same spirit Chubby's
//     new master does not count its fail-over against session leases.)
//
//   - session time: loop time that stands still while intake has
//     collapsed. Every Advance compares the keepalives counted over the
//     last Window with the keepalives live sessions are expected to send
//     (KeepAlivesPerTimeout per session timeout: coord's client sends one
//     every [0.75, 1] × timeout/3, so 3 per timeout is a lower bound). When
//     fewer than MinIntake of the expected arrived (and at least
//     MinExpected were expected, so that a handful of sessions, one of
//     them dead, never look like a collapse), session time does not
//     advance: the leader cannot tell a dead client from a keepalive it
//     failed to receive, so nobody's timeout runs down. The window notices
//     a collapse only once most of it is below MinIntake; on noticing, the
//     session time that ran since intake fell (the latest Advance steps
//     below MinIntake) is given back, so detection costs no margin.
//
//   - per source: sessions are grouped by the source their last keepalive
//     came through — the leader's own (Direct), each follower's relay, or
//     none yet (sessions this leader has not heard since it took over or
//     since they opened) — and the same rule runs for each group: its
//     members' keepalives (through any source) against what they should
//     send, each group with its own session time. A follower that answers
//     its clients "alive" but cannot relay (it is starved or cut from the
//     leader) is one source among three: total intake may stay above
//     MinIntake while its group's falls to zero. That group is then held
//     (its deadlines are in its session time), the others run on. A
//     keepalive through another source moves the session to that group
//     with a fresh deadline. The guard cannot tell a stalled relay from
//     every client of one follower dying at once: it resolves the doubt
//     toward keeping the sessions, up to the hard bound.
//
//   - catch-up: a session heard leaves the group of sessions not heard
//     yet, so that group's intake measures its backlog draining, not the
//     health of the members left. While any of them was heard within the
//     window (after a takeover the dead leader's clients redial, a
//     starved worker's keepalives trickle in), its session time stands
//     still; once none has been for a window it runs again. (A
//     10,000-session failover lost 225 live sessions that reached the new
//     leader just after their post-takeover grace while this group's
//     intake stayed at 0.61.) A client that died with the old leader ends
//     its timeout after the drain, within the hard bound.
//
// A session's deadline is in its group's session time: keepalive +
// timeout. The hard bound is in loop time: a session never lives more
// than MaxLife × its timeout of loop time past the last keepalive this
// leader counted (or the start of its leadership), guard or not, so a dead
// client's session still ends while intake stays collapsed. (Loop time
// leaves out the leader's own pauses: a leader that keeps pausing for
// longer than PauseAfter stretches the bound in real time; such a leader
// normally loses its raft lease first.) Finally at most ExpiryRate sessions
// expire per second (burst ExpiryBurst), most overdue first (etcd's
// leaseRevokeRate): a true mass expiry is spread out, and the caller
// re-checks each one with Due just before it proposes the close.
//
// The zero Guard turns every rule off (plain deadlines, no limit).
type Guard struct {
	// Tick is the session loop's period; a paused gap counts as one Tick.
	Tick time.Duration
	// PauseAfter: a gap between two Advance calls above it is a pause
	// (0: pause compensation off).
	PauseAfter time.Duration
	// Window is the span the keepalive intake is measured over (at least:
	// the sessions' mean keepalive interval when that is longer).
	Window time.Duration
	// MinIntake is the fraction of the expected keepalives below which
	// session time stands still (0: the intake rule is off).
	MinIntake float64
	// MinExpected is the number of keepalives that must be expected over
	// the window for the intake rule to apply.
	MinExpected float64
	// KeepAlivesPerTimeout is how many keepalives a live client sends per
	// session timeout, at least.
	KeepAlivesPerTimeout float64
	// MaxLife bounds a session's life past its last counted keepalive, in
	// multiples of its timeout of loop time (0: no bound beyond the
	// deadline; required when MinIntake > 0).
	MaxLife float64
	// ExpiryRate is the most sessions expired per second (0: no limit).
	ExpiryRate float64
	// ExpiryBurst is the most expiries allowed at once.
	ExpiryBurst int

	noDetectCredit bool // tests: the guard without the detection give-back
	noPerSource    bool // tests: the guard with the total intake rule only
	noCatchUp      bool // tests: the guard without the catch-up rule
}

// DefaultGuard is the guard coord's leader runs with, for a session loop
// ticking every tick.
func DefaultGuard(tick time.Duration) Guard {
	return Guard{
		Tick:                 tick,
		PauseAfter:           10 * tick,
		Window:               time.Second,
		MinIntake:            0.5,
		MinExpected:          20,
		KeepAlivesPerTimeout: 3,
		MaxLife:              3,
		ExpiryRate:           1000,
		ExpiryBurst:          100,
	}
}

// Validate reports every problem with the guard.
func (g Guard) Validate() error {
	var errs []error
	if g.PauseAfter < 0 || g.Window < 0 || g.Tick < 0 {
		errs = append(errs, fmt.Errorf("session guard: negative duration (tick %v, pause %v, window %v)", g.Tick, g.PauseAfter, g.Window))
	}
	if g.PauseAfter > 0 && (g.Tick <= 0 || g.Tick > g.PauseAfter) {
		errs = append(errs, fmt.Errorf("session guard: tick %v must be positive and at most the pause threshold %v", g.Tick, g.PauseAfter))
	}
	if g.MinIntake < 0 || g.MinIntake > 1 {
		errs = append(errs, fmt.Errorf("session guard: min intake %v must lie in [0, 1]", g.MinIntake))
	}
	if g.MinIntake > 0 {
		if g.Window <= 0 || g.KeepAlivesPerTimeout <= 0 {
			errs = append(errs, fmt.Errorf("session guard: the intake rule needs a window (%v) and keepalives per timeout (%v)", g.Window, g.KeepAlivesPerTimeout))
		}
		if g.MaxLife < 1 {
			errs = append(errs, fmt.Errorf("session guard: the intake rule needs max life >= 1 timeout (have %v), or dead clients never expire", g.MaxLife))
		}
	}
	if g.MaxLife != 0 && g.MaxLife < 1 {
		errs = append(errs, fmt.Errorf("session guard: max life %v must be 0 or >= 1", g.MaxLife))
	}
	if g.ExpiryRate < 0 || (g.ExpiryRate > 0 && g.ExpiryBurst < 1) {
		errs = append(errs, fmt.Errorf("session guard: expiry rate %v/s needs a burst >= 1 (have %d)", g.ExpiryRate, g.ExpiryBurst))
	}
	return errors.Join(errs...)
}

// GuardStatus is what the guard decided at the last Advance and Expire.
type GuardStatus struct {
	// Holding: session time stood still for every session at the last
	// Advance (total intake collapsed, or the last gap was a pause).
	Holding bool
	// Paused: the last gap between Advance calls was a pause.
	Paused bool
	// SourcesHeld is how many sources' session time stood still at the
	// last Advance (total collapse holds them all).
	SourcesHeld int
	// Intake is received / expected keepalives over the window, all
	// sources together, or -1 when too few were expected to tell.
	Intake float64
	// Deferred is how many sessions are past their timeout in loop time
	// but held by the guard (at the last Expire).
	Deferred int
	// Limited is how many due sessions the rate limit held back at the
	// last Expire.
	Limited int
	// HeldFor is the total time the whole table's session time stood
	// still (total intake collapsed) since the table was reset.
	HeldFor time.Duration
	// PausedFor is the total pause time not counted.
	PausedFor time.Duration
}

// Direct is the source of keepalives the leader received itself; a
// follower's relay is the source named after the follower (TouchVia).
const Direct = ""

// unheard is the group of sessions this leader took over (Reset) and has
// not heard from yet: the one group the catch-up rule holds while it
// drains.
const unheard = "\x00unheard"

// opened is the group of sessions added after Reset (opened, or applied
// later) and not heard from yet. It is kept apart from unheard so that new
// sessions being heard for the first time — a locker reopening its session
// every few seconds — do not count as a takeover still draining: with
// one group, that churn held the catch-up rule on and kept a cut-off
// client's session past its timeout (nemesis TestFencedLockUnderPauses,
// 2.53 s against a 2.5 s bound).
const opened = "\x00opened"

// maxSources bounds the relay sources tracked; further names share one.
const maxSources = 64

// intakeSample is one Advance step of an intake window.
type intakeSample struct {
	elapsed  time.Duration
	received float64
	expected float64
	held     bool // session time stood still for it (or was given back)
}

// intake measures one source's keepalives (or all of them) against what
// its sessions should send.
type intake struct {
	received float64 // keepalives counted since the last Advance
	rate     float64 // keepalives expected per second
	n        int     // sessions
	window   []intakeSample
	held     bool          // collapsed at the last Advance
	lag      time.Duration // session time of this source = real - lag
	ratio    float64       // intake over the window at the last Advance (-1: too few expected)
	recv     float64       // keepalives counted over the window at the last Advance
}

// span is how far back intake is measured: the guard's Window, or the
// sessions' mean keepalive interval if longer, so that every live client
// counts at least once and clients in step do not make it flicker.
func (in *intake) span(g Guard) time.Duration {
	w := g.Window
	if in.rate > 0 && in.n > 0 {
		w = max(w, time.Duration(float64(in.n)/in.rate*float64(time.Second)))
	}
	return w
}

// step closes one Advance step of counted time and reports whether intake
// over the window is below MinIntake, the ratio (-1: too few expected) and
// the detection credit: the time the latest steps before this one, not
// held already, were below MinIntake on their own.
func (in *intake) step(g Guard, counted time.Duration) (collapsed bool, ratio float64, credit time.Duration) {
	ratio = -1
	defer func() { in.ratio = ratio }()
	in.window = append(in.window, intakeSample{elapsed: counted, received: in.received, expected: in.rate * counted.Seconds()})
	in.received = 0
	var span time.Duration
	var rec, exp float64
	for _, s := range in.window {
		span += s.elapsed
		rec += s.received
		exp += s.expected
	}
	w := in.span(g)
	for len(in.window) > 1 && span-in.window[0].elapsed >= w {
		span -= in.window[0].elapsed
		rec -= in.window[0].received
		exp -= in.window[0].expected
		in.window = in.window[1:]
	}
	in.recv = rec
	if exp < g.MinExpected || exp <= 0 {
		return false, ratio, 0
	}
	ratio = rec / exp
	if ratio >= g.MinIntake {
		return false, ratio, 0
	}
	// The window notices a collapse only once most of it is below
	// MinIntake: the latest steps below it before this one ran while
	// intake had already collapsed. A step held (or given back) before is
	// never given back again.
	for i := len(in.window) - 2; i >= 0 && !g.noDetectCredit; i-- {
		s := in.window[i]
		if s.held || s.received >= g.MinIntake*s.expected {
			break
		}
		credit += s.elapsed
	}
	return true, ratio, credit
}

// hold marks the last step held and gives back up to extra of the steps
// before it (not held already); it returns the time to add to the lag.
func (in *intake) hold(extra time.Duration) time.Duration {
	last := len(in.window) - 1
	if last < 0 {
		return 0
	}
	in.window[last].held = true
	d := in.window[last].elapsed
	for i := last - 1; i >= 0 && extra > 0; i-- {
		s := &in.window[i]
		if s.held {
			break
		}
		s.held = true
		d += s.elapsed
		extra -= s.elapsed
	}
	return d
}

// clocks is the guard's state inside a Table.
type clocks struct {
	last    time.Time     // real time of the last Advance (zero: none yet)
	loopLag time.Duration // loop time = real - loopLag
	total   intake        // all sources together
	sources map[string]*intake
	tokens  float64
	status  GuardStatus
}

func (c *clocks) loop(now time.Time) time.Time { return now.Add(-c.loopLag) }

// canon is the name a source is tracked under: its own, or one shared
// name once maxSources are tracked.
func (c *clocks) canon(via string) string {
	if _, ok := c.sources[via]; ok || len(c.sources) < maxSources-1 {
		return via
	}
	return "\x00other"
}

// source returns the intake of a canonical source, made on first use.
func (c *clocks) source(via string) *intake {
	if c.sources == nil {
		c.sources = map[string]*intake{}
	}
	in, ok := c.sources[via]
	if !ok {
		// A new source's session time starts at loop time.
		in = &intake{lag: c.loopLag, ratio: -1}
		c.sources[via] = in
	}
	return in
}

// sess is the session time of source via at now.
func (c *clocks) sess(via string, now time.Time) time.Time {
	if in, ok := c.sources[via]; ok {
		return now.Add(-in.lag)
	}
	return c.loop(now)
}

// expectedRate is the keepalives per second a session of timeout d sends
// at least.
func (g Guard) expectedRate(d time.Duration) float64 {
	if d <= 0 || g.KeepAlivesPerTimeout <= 0 {
		return 0
	}
	return g.KeepAlivesPerTimeout / d.Seconds()
}

// Advance moves the table's clocks to now; call it once per session loop
// tick, before Expire. It applies pause compensation and the intake rule,
// for all sources together and for each source.
func (t *Table) Advance(now time.Time) GuardStatus {
	c, g := &t.c, t.g
	if c.last.IsZero() {
		c.last = now
		c.tokens = float64(g.ExpiryBurst)
		c.status.Intake = -1
		return c.status
	}
	gap := now.Sub(c.last)
	if gap < 0 {
		gap = 0 // a clock step back: count nothing
	}
	c.last = now
	counted := gap
	c.status.Paused = g.PauseAfter > 0 && gap > g.PauseAfter
	if c.status.Paused {
		counted = g.Tick
		c.loopLag += gap - counted
		c.status.PausedFor += gap - counted
		for _, in := range c.sources {
			in.lag += gap - counted
		}
	}
	if g.ExpiryRate > 0 {
		c.tokens = min(c.tokens+g.ExpiryRate*gap.Seconds(), float64(g.ExpiryBurst))
	}
	c.status.Intake = -1
	c.status.SourcesHeld = 0
	if g.MinIntake <= 0 {
		c.status.Holding = c.status.Paused
		return c.status
	}
	all, ratio, allCredit := c.total.step(g, counted)
	c.status.Intake = ratio
	if all {
		c.status.HeldFor += c.total.hold(allCredit)
	}
	for name, in := range c.sources {
		own, _, credit := in.step(g, counted)
		own = own && !g.noPerSource
		if !own {
			credit = 0
		}
		if name == unheard && in.n > 0 && in.recv > 0 && !g.noCatchUp && !g.noPerSource {
			// Catch-up: a session heard leaves this group, so its intake
			// is the backlog draining, not the health of its remaining
			// members. While members are still being heard for the first
			// time (after a takeover, or an open), the leader is still
			// catching up and the rest are likely on their way (a client
			// of the dead node redialling, a starved relay): their
			// session time stands still. Once none has been heard for a
			// window, it runs again, so a dead client ends its timeout
			// after the drain, and never past the hard bound.
			own = true
		}
		if all {
			credit = max(credit, allCredit)
		}
		if all || own {
			// Session time of this source stands still for this step, and
			// gives back what ran before the collapse was noticed.
			in.lag += in.hold(credit)
			c.status.SourcesHeld++
		}
		in.held = all || own
	}
	c.total.held = all
	c.status.Holding = all || c.status.Paused
	return c.status
}

// Status returns the guard's last decisions.
func (t *Table) Status() GuardStatus { return t.c.status }

// Expire returns the sessions to end now, most overdue first, and takes
// them from the rate budget: those whose deadline (session time) has
// passed and those past the hard bound (loop time). skip, when not nil,
// names sessions already being ended (they take no budget). The sessions
// stay in the table until Remove, so a failed close is retried.
func (t *Table) Expire(now time.Time, skip func(uint64) bool) []uint64 {
	c, g := &t.c, t.g
	lNow := c.loop(now)
	type due struct {
		id   uint64
		over time.Duration
	}
	var ds []due
	deferred := 0
	for id, e := range t.m {
		over, ok := t.overdue(e, c.sess(e.via, now), lNow)
		if !ok {
			if !e.heard.Add(e.timeout).After(lNow) {
				deferred++ // plain deadlines would end it now
			}
			continue
		}
		if skip != nil && skip(id) {
			continue
		}
		ds = append(ds, due{id, over})
	}
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].over != ds[j].over {
			return ds[i].over > ds[j].over
		}
		return ds[i].id < ds[j].id
	})
	c.status.Deferred = deferred
	c.status.Limited = 0
	if g.ExpiryRate > 0 {
		n := min(len(ds), int(c.tokens))
		c.status.Limited = len(ds) - n
		c.tokens -= float64(n)
		ds = ds[:n]
	}
	out := make([]uint64, len(ds))
	for i, d := range ds {
		out[i] = d.id
	}
	return out
}

// Due reports whether a session should end at now (re-checked just before
// its close is proposed: a keepalive may have arrived meanwhile).
func (t *Table) Due(id uint64, now time.Time) bool {
	e, ok := t.m[id]
	if !ok {
		return false
	}
	_, due := t.overdue(e, t.c.sess(e.via, now), t.c.loop(now))
	return due
}

// overdue says whether e is due at session time sNow (of its source) /
// loop time lNow, and by how long.
func (t *Table) overdue(e entry, sNow, lNow time.Time) (time.Duration, bool) {
	if !e.deadline.After(sNow) {
		return sNow.Sub(e.deadline), true
	}
	if t.g.MaxLife > 0 {
		hard := e.heard.Add(time.Duration(t.g.MaxLife * float64(e.timeout)))
		if !hard.After(lNow) {
			return lNow.Sub(hard), true
		}
	}
	return 0, false
}

// Reasons a session is due (Explanation.Reason).
const (
	// ReasonTimeout: no keepalive counted for its timeout of its group's
	// session time.
	ReasonTimeout = "timeout"
	// ReasonBound: past the hard bound (MaxLife timeouts of loop time).
	ReasonBound = "bound"
)

// Explanation is why a session is due, and the guard's state for its
// group at that moment (for the leader's log: every expiry decision must
// be attributable).
type Explanation struct {
	Reason string
	// Over is how far past its deadline (or bound) it is.
	Over time.Duration
	// Group is the source of its last keepalive ("leader", a follower's
	// name, "unheard": none counted by this leader yet).
	Group string
	// GroupSessions is how many sessions its group holds; GroupIntake
	// that group's keepalive intake ratio at the last Advance (-1: too
	// few expected to tell); GroupHeld whether its session time stood
	// still then.
	GroupSessions int
	GroupIntake   float64
	GroupHeld     bool
	// SinceHeard is the loop time since this leader last counted a
	// keepalive of it (or since its grace began).
	SinceHeard time.Duration
	// Timeout is the session's timeout.
	Timeout time.Duration
	// Status is the table-wide guard state.
	Status GuardStatus
}

// Explain reports why session id is due at now; false when it is not
// (or not in the table).
func (t *Table) Explain(id uint64, now time.Time) (Explanation, bool) {
	e, ok := t.m[id]
	if !ok {
		return Explanation{}, false
	}
	lNow := t.c.loop(now)
	over, due := t.overdue(e, t.c.sess(e.via, now), lNow)
	if !due {
		return Explanation{}, false
	}
	x := Explanation{Reason: ReasonTimeout, Over: over, Group: groupName(e.via), GroupIntake: -1,
		SinceHeard: lNow.Sub(e.heard), Timeout: e.timeout, Status: t.c.status}
	if e.deadline.After(t.c.sess(e.via, now)) {
		x.Reason = ReasonBound
	}
	if in, ok := t.c.sources[e.via]; ok {
		x.GroupSessions, x.GroupIntake, x.GroupHeld = in.n, in.ratio, in.held
	}
	return x, true
}

// groupName is a source's name for logs.
func groupName(via string) string {
	switch via {
	case Direct:
		return "leader"
	case unheard:
		return "unheard"
	case opened:
		return "opened"
	case "\x00other":
		return "other"
	}
	return via
}
