package client

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// The budget lets a fresh client fail over, then caps retries at the
// ratio of recent requests plus the per-second minimum, and forgets
// earnings older than the window.
func TestRetryBudget_CapsRetriesAtAShareOfRequests(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	b := newRetryBudget(clk.now)
	// The reserve: one window of the minimum rate.
	reserve := 0
	for b.tryRetry() {
		reserve++
	}
	if want := retryBudgetMinPerSec * int(retryBudgetSlots); reserve != want {
		t.Fatalf("a fresh client may retry %d times, want %d", reserve, want)
	}
	// 1000 requests earn 200 retries (ratio 0.2), no more.
	for i := 0; i < 1000; i++ {
		b.request()
	}
	got := 0
	for b.tryRetry() {
		got++
	}
	if got != 200 {
		t.Fatalf("after 1000 requests: %d retries, want 200", got)
	}
	// One second later the reserve has refilled by the minimum rate.
	clk.t = clk.t.Add(time.Second)
	got = 0
	for b.tryRetry() {
		got++
	}
	if got != retryBudgetMinPerSec {
		t.Fatalf("a second later: %d retries, want %d", got, retryBudgetMinPerSec)
	}
	// Earnings expire with the window.
	for i := 0; i < 1000; i++ {
		b.request()
	}
	clk.t = clk.t.Add(retryBudgetWindow + time.Second)
	got = 0
	for b.tryRetry() {
		got++
	}
	if want := retryBudgetMinPerSec * int(retryBudgetSlots); got != want {
		t.Fatalf("after the window: %d retries (only the refilled reserve, %d, should be left)", got, want)
	}
}

func TestJitter_Bounds(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if d := fullJitter(100 * time.Millisecond); d < 0 || d > 100*time.Millisecond {
			t.Fatalf("fullJitter = %v", d)
		}
		if d := jitterTick(3 * time.Second); d < 2250*time.Millisecond || d > 3*time.Second {
			t.Fatalf("jitterTick = %v", d)
		}
	}
	if fullJitter(0) != 0 {
		t.Fatal("fullJitter(0) != 0")
	}
}

// A call whose retries the budget refuses returns at once with the last
// error, marked Unavailable.
func TestCall_RetryBudgetSpentFailsFast(t *testing.T) {
	c := newTestClient(t, Config{Endpoints: []string{deadAddr(t)}})
	clk := &fakeClock{t: time.Unix(2_000_000, 0)}
	c.budget = newRetryBudget(clk.now)
	for c.budget.tryRetry() {
	}
	start := time.Now()
	_, _, err := c.Get(testCtx(t), "/x", nil)
	var be *budgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("get with a spent budget: %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v: the call should not have kept retrying", el)
	}
}

// A shed request maps to ErrOverloaded with the server's hint, and the
// pause before its retry honours the hint with full jitter over as much
// again.
func TestOverloaded_RetryAfter(t *testing.T) {
	st, err := status.New(codes.ResourceExhausted, "overloaded: write requests shed (queue full)").
		WithDetails(&coordpb.ErrorDetail{Code: coordpb.ErrorCode_OVERLOADED, FailedOp: -1, RetryAfterMs: 40})
	if err != nil {
		t.Fatal(err)
	}
	mapped, transport := mapError(st.Err())
	var e *Error
	if transport || !errors.Is(mapped, ErrOverloaded) || !errors.As(mapped, &e) || e.RetryAfter != 40*time.Millisecond {
		t.Fatalf("mapped %v (transport %v)", mapped, transport)
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		p := overloadPause(mapped, time.Second)
		lo, hi = min(lo, p), max(hi, p)
	}
	if lo < 40*time.Millisecond || hi > 80*time.Millisecond || hi-lo < 30*time.Millisecond {
		t.Fatalf("pauses in [%v, %v], want spread over [40ms, 80ms]", lo, hi)
	}
	// No hint: full jitter over the backoff.
	if p := overloadPause(&Error{err: ErrOverloaded}, 10*time.Millisecond); p > 10*time.Millisecond {
		t.Fatalf("pause %v without a hint", p)
	}
}
