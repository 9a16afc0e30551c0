package client

import (
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// Retries must not turn an outage into a retry storm: every client
// retrying every request in lockstep multiplies the load a recovering
// cluster sees, which can keep it down after the trigger is gone (the
// metastable-failure pattern). Two rules bound them:
//
//   - Full jitter: a pause between retry rounds is uniform in [0, backoff],
//     backoff doubling from retryBackoffMin to retryBackoffMax, so clients
//     that failed together spread out instead of retrying together.
//   - A retry budget (as Finagle's RetryBudget): retries may add at most
//     retryBudgetRatio of the requests made over the last retryBudgetWindow,
//     plus retryBudgetMinPerSec retries a second so a quiet client can
//     still fail over. A retry beyond the budget is not made: the call
//     returns its last error at once.

const (
	retryBudgetRatio     = 0.2
	retryBudgetMinPerSec = 10
	retryBudgetWindow    = 10 * time.Second
)

// fullJitter returns a pause uniform in [0, d].
func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// retryBudget is fed by requests and drained by retries. What requests
// earn expires after retryBudgetWindow (kept in one-second slots, spent
// oldest first), so a client that was busy an hour ago has no retries
// banked; a reserve refilled at retryBudgetMinPerSec (capped at one
// window's worth) lets a quiet client fail over. Amounts are in
// thousandths of a retry.
type retryBudget struct {
	mu      sync.Mutex
	now     func() time.Time
	slots   [10]int64 // earned per second, slot = unix second % 10
	stamps  [10]int64 // the unix second each slot holds
	reserve int64
	last    time.Time
}

const retryBudgetSlots = int64(retryBudgetWindow / time.Second)

func newRetryBudget(now func() time.Time) *retryBudget {
	b := &retryBudget{now: now, last: now()}
	b.reserve = b.reserveCap() // start full: a fresh client may fail over at once
	return b
}

func (b *retryBudget) reserveCap() int64 {
	return retryBudgetMinPerSec * retryBudgetSlots * 1000
}

// refill tops up the reserve for the time since the last call.
func (b *retryBudget) refill(t time.Time) {
	if el := t.Sub(b.last); el > 0 {
		b.reserve = min(b.reserveCap(), b.reserve+int64(el.Seconds()*retryBudgetMinPerSec*1000))
		b.last = t
	}
}

// live reports whether slot i holds earnings from inside the window.
func (b *retryBudget) live(i int, sec int64) bool {
	return sec-b.stamps[i] < retryBudgetSlots
}

// request records a first attempt: it earns retryBudgetRatio of a retry.
func (b *retryBudget) request() {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	b.refill(t)
	sec := t.Unix()
	i := int(sec % retryBudgetSlots)
	if b.stamps[i] != sec {
		b.slots[i], b.stamps[i] = 0, sec
	}
	b.slots[i] += int64(retryBudgetRatio * 1000)
}

// tryRetry spends one retry if the budget has it: earnings first (oldest
// slot first), then the reserve.
func (b *retryBudget) tryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	b.refill(t)
	sec := t.Unix()
	var earned int64
	for i := range b.slots {
		if b.live(i, sec) {
			earned += b.slots[i]
		}
	}
	if earned+b.reserve < 1000 {
		return false
	}
	need := int64(1000)
	for s := sec - retryBudgetSlots + 1; s <= sec && need > 0; s++ {
		i := int(s % retryBudgetSlots)
		if b.stamps[i] != s {
			continue
		}
		take := min(need, b.slots[i])
		b.slots[i] -= take
		need -= take
	}
	b.reserve -= need
	return true
}

// jitterTick returns a keepalive interval in [0.75, 1] × d, drawn anew for
// each tick, so sessions opened together (after a failover, or a fleet
// restart) do not keep sending their keepalives together.
func jitterTick(d time.Duration) time.Duration {
	return d - rand.N(d/4+1)
}

// overloadPause is the wait before retrying a request the server shed:
// its retry-after hint plus full jitter over as much again (uniform in
// [hint, 2×hint]), so clients shed together come back spread out; without
// a hint, full jitter over the current backoff.
func overloadPause(err error, backoff time.Duration) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter + fullJitter(e.RetryAfter)
	}
	return fullJitter(backoff)
}
