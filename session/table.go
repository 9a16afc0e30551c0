package session

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrUnknown: the session is not in the table (never opened, closed or
// expired).
var ErrUnknown = errors.New("session does not exist or has expired")

// Defaults for the negotiated timeout range.
const (
	DefaultMinTimeout = 2 * time.Second
	DefaultMaxTimeout = 60 * time.Second
	DefaultTimeout    = 10 * time.Second
)

// Limits is the [Min, Max] range requested timeouts are negotiated into.
type Limits struct {
	Min, Max, Default time.Duration
}

// DefaultLimits returns 2 s .. 60 s with 10 s when none is asked for.
func DefaultLimits() Limits {
	return Limits{Min: DefaultMinTimeout, Max: DefaultMaxTimeout, Default: DefaultTimeout}
}

// Validate reports every problem with the limits.
func (l Limits) Validate() error {
	var errs []error
	if l.Min <= 0 {
		errs = append(errs, fmt.Errorf("session min timeout %v must be positive", l.Min))
	}
	if l.Max < l.Min {
		errs = append(errs, fmt.Errorf("session max timeout %v must be >= min %v", l.Max, l.Min))
	}
	if l.Default < l.Min || l.Default > l.Max {
		errs = append(errs, fmt.Errorf("session default timeout %v must lie in [%v, %v]", l.Default, l.Min, l.Max))
	}
	return errors.Join(errs...)
}

// Negotiate clamps a requested timeout (0 = default) into the range.
func (l Limits) Negotiate(requested time.Duration) time.Duration {
	switch {
	case requested <= 0:
		return l.Default
	case requested < l.Min:
		return l.Min
	case requested > l.Max:
		return l.Max
	}
	return requested
}

// Info is a replicated session as the table needs it.
type Info struct {
	ID      uint64
	Timeout time.Duration
}

type entry struct {
	timeout  time.Duration
	deadline time.Time // in the session time of its source (see Guard)
	heard    time.Time // last keepalive counted (or grace start), in loop time
	via      string    // source of the last keepalive (Direct or a follower)
}

// Table holds each live session's deadline on the leader, and the expiry
// guard's clocks (guard.go).
type Table struct {
	m map[uint64]entry
	g Guard
	c clocks
}

// NewTable returns an empty table without a guard (plain deadlines).
func NewTable() *Table { return &Table{m: make(map[uint64]entry)} }

// NewGuardedTable returns an empty table with the guard g; g must be valid
// (Guard.Validate).
func NewGuardedTable(g Guard) *Table { return &Table{m: make(map[uint64]entry), g: g} }

// Len is the number of sessions held.
func (t *Table) Len() int { return len(t.m) }

// fresh is a new entry for s at now (real time), not heard yet, in group
// group (unheard: carried over by Reset; opened: added after it).
func (t *Table) fresh(s Info, group string, now time.Time) entry {
	via := t.c.canon(group)
	t.c.source(via)
	return entry{timeout: s.Timeout, deadline: t.c.sess(via, now).Add(s.Timeout), heard: t.c.loop(now), via: via}
}

// put stores e, moving its expected keepalive rate to its source.
func (t *Table) put(id uint64, e entry) {
	if old, ok := t.m[id]; ok {
		t.unrate(old)
	}
	t.m[id] = e
	t.rate(e, 1)
}

// rate adds (sign 1) or removes (-1) e's expected keepalives to the total
// and its source.
func (t *Table) rate(e entry, sign int) {
	r := float64(sign) * t.g.expectedRate(e.timeout)
	src := t.c.source(e.via)
	t.c.total.rate += r
	t.c.total.n += sign
	src.rate += r
	src.n += sign
}

func (t *Table) unrate(e entry) { t.rate(e, -1) }

// Reset replaces the table with the replicated sessions, each given the
// grace period now+timeout (used when this node becomes leader). The
// guard's clocks and intake window start afresh.
func (t *Table) Reset(sessions []Info, now time.Time) {
	t.m = make(map[uint64]entry, len(sessions))
	t.c = clocks{}
	t.Advance(now)
	for _, s := range sessions {
		t.put(s.ID, t.fresh(s, unheard, now))
	}
}

// Sync brings the table in step with the replicated set: sessions new to
// the table start with deadline now+timeout; sessions no longer replicated
// are dropped. Existing deadlines are kept.
func (t *Table) Sync(sessions []Info, now time.Time) {
	live := make(map[uint64]struct{}, len(sessions))
	for _, s := range sessions {
		live[s.ID] = struct{}{}
		if _, ok := t.m[s.ID]; !ok {
			t.put(s.ID, t.fresh(s, opened, now))
		}
	}
	for id := range t.m {
		if _, ok := live[id]; !ok {
			t.Remove(id)
		}
	}
}

// Add registers one session (opened through raft on this leader).
func (t *Table) Add(s Info, now time.Time) {
	t.put(s.ID, t.fresh(s, opened, now))
}

// Remove forgets a session (closed or expired).
func (t *Table) Remove(id uint64) {
	if e, ok := t.m[id]; ok {
		t.unrate(e)
		delete(t.m, id)
	}
}

// Touch records a keepalive the leader received itself (TouchVia Direct).
func (t *Table) Touch(id uint64, now time.Time) (time.Duration, error) {
	return t.TouchVia(id, Direct, now)
}

// TouchVia records a keepalive that reached the leader through source via
// (a follower's relay, named after the follower; Direct for the leader's
// own): the keepalive counts toward the guard's intake, in total and for
// the group the session was in; the session joins via's group with its
// deadline at now+timeout in that group's session time. Within one group
// it never moves a deadline backwards.
func (t *Table) TouchVia(id uint64, via string, now time.Time) (time.Duration, error) {
	e, ok := t.m[id]
	if !ok {
		return 0, ErrUnknown
	}
	via = t.c.canon(via)
	t.c.total.received++
	t.c.source(e.via).received++ // the group it was in was heard
	d := t.c.sess(via, now).Add(e.timeout)
	if e.via != via {
		t.unrate(e)
		e.via = via
		e.deadline = d
		t.rate(e, 1)
	} else if d.After(e.deadline) {
		e.deadline = d
	}
	if h := t.c.loop(now); h.After(e.heard) {
		e.heard = h
	}
	t.m[id] = e
	return e.timeout, nil
}

// Deadline returns a session's deadline, in session time (the real time
// when the guard never held nor saw a pause).
func (t *Table) Deadline(id uint64) (time.Time, bool) {
	e, ok := t.m[id]
	return e.deadline, ok
}

// Expired lists every session due at now (past its deadline or the
// guard's hard bound), sorted by id, without the rate limit (Expire
// applies it). They stay in the table until Remove, so a failed proposal
// is retried on the next call.
func (t *Table) Expired(now time.Time) []uint64 {
	var out []uint64
	lNow := t.c.loop(now)
	for id, e := range t.m {
		if _, due := t.overdue(e, t.c.sess(e.via, now), lNow); due {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
