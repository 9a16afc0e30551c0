package client

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// Client-side throttling (Google SRE book, "Handling Overload": adaptive
// throttling). When the servers shed, a request they would shed still
// costs both sides a round trip; so each client keeps, over the last
// throttleWindow, how many requests it attempted and how many the servers
// accepted (answered with anything but OVERLOADED), and rejects a new
// attempt locally with probability
//
//	max(0, (requests − throttleK × accepts) / (requests + 1))
//
// which is 0 while the servers accept more than 1/throttleK of what is
// sent, and otherwise sends about throttleK × what they accept. Locally
// rejected attempts count as requests, as in the book. Only attempts that
// reached a server with a verdict are counted (a down cluster is not an
// overloaded one), and session traffic is never throttled.
//
// One departure from the book: the throttle is off unless a server shed
// one of this client's requests within the last throttleQuiet. Counting
// local rejections as requests otherwise keeps the probability up by
// itself for several windows after the load drops (measured: 5 s of
// needless rejections in the overload proof); with the rule, once what
// the client sends stops being shed, it stops rejecting.
const (
	throttleK      = 1.5
	throttleWindow = 3 // seconds, kept in one-second slots
	throttleQuiet  = time.Second
)

type throttle struct {
	mu     sync.Mutex
	now    func() time.Time
	stamps [throttleWindow]int64
	reqs   [throttleWindow]int64
	accs   [throttleWindow]int64
	shedAt time.Time // the last OVERLOADED verdict
}

func newThrottle(now func() time.Time) *throttle { return &throttle{now: now} }

// slot returns the current second's slot, cleared if stale (t.mu held).
func (t *throttle) slot() int {
	sec := t.now().Unix()
	i := int(sec % throttleWindow)
	if t.stamps[i] != sec {
		t.stamps[i], t.reqs[i], t.accs[i] = sec, 0, 0
	}
	return i
}

// probability is the chance a new attempt is rejected locally (t.mu held).
func (t *throttle) probability() float64 {
	now := t.now()
	if now.Sub(t.shedAt) > throttleQuiet {
		return 0
	}
	sec := now.Unix()
	var req, acc int64
	for i := range t.stamps {
		if sec-t.stamps[i] < throttleWindow {
			req += t.reqs[i]
			acc += t.accs[i]
		}
	}
	return max(0, (float64(req)-throttleK*float64(acc))/float64(req+1))
}

// admit reports whether to send an attempt; a local rejection is counted
// as a request. It returns the rejection probability for the error text.
func (t *throttle) admit() (bool, float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.probability()
	if p > 0 && rand.Float64() < p {
		t.reqs[t.slot()]++
		return false, p
	}
	return true, p
}

// record counts an attempt that reached a server: accepted unless the
// server shed it.
func (t *throttle) record(accepted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.slot()
	t.reqs[i]++
	if accepted {
		t.accs[i]++
	} else {
		t.shedAt = t.now()
	}
}

// OverloadStats counts a client's overload events since it was made.
type OverloadStats struct {
	// Shed: attempts a server answered OVERLOADED (each retry counts).
	Shed int64
	// Throttled: attempts the client's adaptive throttle rejected
	// without sending (the call fails with ErrThrottled).
	Throttled int64
	// Retried: retries made after a server shed an attempt (each waits
	// out the server's retry-after hint first).
	Retried int64
}

type overloadCounters struct {
	shed, throttled, retried atomic.Int64
}

// OverloadStats returns the client's overload counters: how much of its
// traffic the servers shed, how much its own throttle rejected, and how
// many retries the sheds cost.
func (c *Client) OverloadStats() OverloadStats {
	return OverloadStats{Shed: c.overload.shed.Load(), Throttled: c.overload.throttled.Load(), Retried: c.overload.retried.Load()}
}
