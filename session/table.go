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
	deadline time.Time
}

// Table holds each live session's deadline on the leader.
type Table struct {
	m map[uint64]entry
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{m: make(map[uint64]entry)} }

// Len is the number of sessions held.
func (t *Table) Len() int { return len(t.m) }

// Reset replaces the table with the replicated sessions, each given the
// grace period now+timeout (used when this node becomes leader).
func (t *Table) Reset(sessions []Info, now time.Time) {
	t.m = make(map[uint64]entry, len(sessions))
	for _, s := range sessions {
		t.m[s.ID] = entry{timeout: s.Timeout, deadline: now.Add(s.Timeout)}
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
			t.m[s.ID] = entry{timeout: s.Timeout, deadline: now.Add(s.Timeout)}
		}
	}
	for id := range t.m {
		if _, ok := live[id]; !ok {
			delete(t.m, id)
		}
	}
}

// Add registers one session (opened through raft on this leader).
func (t *Table) Add(s Info, now time.Time) {
	t.m[s.ID] = entry{timeout: s.Timeout, deadline: now.Add(s.Timeout)}
}

// Remove forgets a session (closed or expired).
func (t *Table) Remove(id uint64) { delete(t.m, id) }

// Touch records a keepalive: the deadline moves to now+timeout. It never
// moves a deadline backwards.
func (t *Table) Touch(id uint64, now time.Time) (time.Duration, error) {
	e, ok := t.m[id]
	if !ok {
		return 0, ErrUnknown
	}
	if d := now.Add(e.timeout); d.After(e.deadline) {
		e.deadline = d
		t.m[id] = e
	}
	return e.timeout, nil
}

// Deadline returns a session's deadline.
func (t *Table) Deadline(id uint64) (time.Time, bool) {
	e, ok := t.m[id]
	return e.deadline, ok
}

// Expired lists the sessions whose deadline is not after now, sorted by id.
// They stay in the table until Remove (after the close commits), so a
// failed proposal is retried on the next call.
func (t *Table) Expired(now time.Time) []uint64 {
	var out []uint64
	for id, e := range t.m {
		if !e.deadline.After(now) {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
