package core

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// group is a synchronous in-memory group for Member tests: messages are
// delivered FIFO at once unless the destination is down; all nodes share one
// clock offset by off[i].
type group struct {
	t      *testing.T
	now    time.Duration // true time since start
	off    []time.Duration
	up     []bool
	accs   []*Acceptor
	mems   []*Member
	events [][]Event
	queue  []Message
}

func newGroup(t *testing.T, n int, knobs Knobs) *group {
	g := &group{t: t, off: make([]time.Duration, n), up: make([]bool, n), events: make([][]Event, n)}
	tm := testTiming()
	for i := 0; i < n; i++ {
		start := Instant{Wall: 1_700_000_000e9 - int64(tm.RestartWait()), Mono: 0, ClockOK: true}
		g.accs = append(g.accs, NewAcceptor(i, tm, knobs, start))
		g.mems = append(g.mems, NewMember(MemberConfig{Self: NodeID(fmt.Sprint("n", i)), Index: i, N: n,
			Inc: uint64(i + 1), Timing: tm, Knobs: knobs, Rand: rand.New(rand.NewPCG(1, uint64(i))), Learn: true}, start))
		g.up[i] = true
	}
	g.now = tm.RestartWait()
	return g
}

func (g *group) at(i int) Instant {
	return Instant{Wall: 1_700_000_000e9 + int64(g.now+g.off[i]) - int64(testTiming().RestartWait()), Mono: g.now, ClockOK: true}
}

func (g *group) apply(i int, out Output) {
	g.queue = append(g.queue, out.Msgs...)
	g.events[i] = append(g.events[i], out.Events...)
	for len(g.queue) > 0 {
		m := g.queue[0]
		g.queue = g.queue[1:]
		if !g.up[m.To] || !g.up[m.From] {
			continue
		}
		switch m.Kind {
		case MsgPrepare, MsgAccept:
			if r, why := g.accs[m.To].Handle(g.at(m.To), m); why == Answered {
				g.queue = append(g.queue, r)
			}
		default:
			o := g.mems[m.To].Step(g.at(m.To), m)
			g.queue = append(g.queue, o.Msgs...)
			g.events[m.To] = append(g.events[m.To], o.Events...)
		}
	}
}

// advance moves true time by d, ticking every member each millisecond.
func (g *group) advance(d time.Duration) {
	for end := g.now + d; g.now < end; {
		g.now += time.Millisecond
		for i, m := range g.mems {
			if g.up[i] {
				g.apply(i, m.Tick(g.at(i)))
			}
		}
	}
}

// last returns the last event of kind k at node i (and whether there was one).
func (g *group) last(i int, k EventKind) (Event, bool) {
	for j := len(g.events[i]) - 1; j >= 0; j-- {
		if g.events[i][j].Kind == k {
			return g.events[i][j], true
		}
	}
	return Event{}, false
}

func TestMember_Acquire(t *testing.T) {
	g := newGroup(t, 3, Knobs{})
	g.apply(0, g.mems[0].Acquire(g.at(0), "r", true))
	ev, ok := g.last(0, EvAcquired)
	if !ok {
		t.Fatalf("no EvAcquired in a healthy group: %v", g.events[0])
	}
	if ev.Value.Owner != "n0" || ev.Value.OwnerInc != 1 || ev.Value.Epoch < uint64(g.at(0).Wall/1000) {
		t.Fatalf("acquired %+v", ev.Value)
	}
	h, _ := g.mems[0].Holding("r")
	if !h.Valid(g.at(0)) {
		t.Fatal("fresh lease not valid")
	}
	// A second member blocks until the holder stops renewing.
	g.apply(1, g.mems[1].Acquire(g.at(1), "r", true))
	if _, ok := g.last(1, EvAcquired); ok {
		t.Fatal("second member acquired a held lease")
	}
	g.advance(time.Second)
	if _, ok := g.last(1, EvAcquired); ok {
		t.Fatal("second member acquired while the holder kept renewing")
	}
	if _, ok := g.last(0, EvRenewed); !ok {
		t.Fatal("holder never renewed")
	}
	// Holder dies: the other takes over after expiry, with a higher epoch.
	g.up[0] = false
	g.advance(2 * testTiming().LeaseDuration)
	ev2, ok := g.last(1, EvAcquired)
	if !ok {
		t.Fatal("no takeover after the holder died")
	}
	if ev2.Value.Epoch <= ev.Value.Epoch {
		t.Fatalf("takeover epoch %d not above %d", ev2.Value.Epoch, ev.Value.Epoch)
	}
}

func TestMember_TryAcquire(t *testing.T) {
	g := newGroup(t, 3, Knobs{})
	g.apply(0, g.mems[0].TryAcquire(g.at(0), "r", false))
	if _, ok := g.last(0, EvAcquired); !ok {
		t.Fatalf("try on a free resource: %v", g.events[0])
	}
	g.apply(2, g.mems[2].TryAcquire(g.at(2), "r", false))
	ev, ok := g.last(2, EvHeld)
	if !ok || ev.Value.Owner != "n0" {
		t.Fatalf("try on a held resource: want EvHeld by n0, got %v", g.events[2])
	}
	// No quorum: two members down.
	g.up[0], g.up[1] = false, false
	g.apply(2, g.mems[2].TryAcquire(g.at(2), "q", false))
	g.advance(time.Second)
	if ev, ok := g.last(2, EvFailed); !ok || ev.Reason != ReasonNoQuorum {
		t.Fatalf("want EvFailed no-quorum, got %v", g.events[2])
	}
}

func TestMember_Release(t *testing.T) {
	g := newGroup(t, 3, Knobs{})
	g.apply(0, g.mems[0].Acquire(g.at(0), "r", true))
	acq, _ := g.last(0, EvAcquired)
	g.apply(1, g.mems[1].Acquire(g.at(1), "r", true))
	g.apply(0, g.mems[0].Release(g.at(0), "r"))
	if _, held := g.mems[0].Holding("r"); held {
		t.Fatal("release did not drop the local lease at once")
	}
	if _, ok := g.last(0, EvReleased); !ok {
		t.Fatal("no EvReleased")
	}
	// The waiter hears the Learn hint and acquires well before expiry.
	g.advance(20 * time.Millisecond)
	ev, ok := g.last(1, EvAcquired)
	if !ok {
		t.Fatal("waiter did not acquire promptly after release")
	}
	if ev.Value.Epoch <= acq.Value.Epoch {
		t.Fatalf("epoch after release %d not above %d", ev.Value.Epoch, acq.Value.Epoch)
	}
}

func TestMember_Renew(t *testing.T) {
	g := newGroup(t, 3, Knobs{})
	g.apply(0, g.mems[0].Acquire(g.at(0), "r", false))
	acq, _ := g.last(0, EvAcquired)
	g.advance(100 * time.Millisecond)
	if _, ok := g.last(0, EvRenewed); ok {
		t.Fatal("renewed without auto-renew")
	}
	g.apply(0, g.mems[0].Renew(g.at(0), "r"))
	ev, ok := g.last(0, EvRenewed)
	if !ok || ev.Value.Epoch != acq.Value.Epoch || ev.Value.Expiry <= acq.Value.Expiry {
		t.Fatalf("manual renew: %v (acquired %+v)", g.events[0], acq.Value)
	}
	// Without renewals the lease is lost at its deadline (expiry − ε).
	g.advance(testTiming().LeaseDuration)
	lost, ok := g.last(0, EvLost)
	if !ok || lost.Reason != ReasonExpired {
		t.Fatalf("want EvLost expired, got %v", g.events[0])
	}
}

func TestMember_ClockUnsafe(t *testing.T) {
	g := newGroup(t, 3, Knobs{})
	g.apply(0, g.mems[0].Acquire(g.at(0), "r", true))
	bad := g.at(0)
	bad.ClockOK = false
	g.apply(0, g.mems[0].Tick(bad))
	if ev, ok := g.last(0, EvLost); !ok || ev.Reason != ReasonClockUnsafe {
		t.Fatalf("want EvLost clock-unsafe, got %v", g.events[0])
	}
	g.apply(0, g.mems[0].TryAcquire(bad, "s", false))
	if ev, ok := g.last(0, EvFailed); !ok || ev.Reason != ReasonClockUnsafe {
		t.Fatalf("try with unsafe clock: %v", g.events[0])
	}
}

func TestMember_Recovering(t *testing.T) {
	tm := testTiming()
	m := NewMember(MemberConfig{Self: "a", N: 3, Inc: 1, Timing: tm, Rand: rand.New(rand.NewPCG(1, 1))}, at(0, 0))
	out := m.TryAcquire(at(1, 1), "r", false)
	if len(out.Msgs) != 0 || len(out.Events) != 1 || out.Events[0].Reason != ReasonRecovering {
		t.Fatalf("proposer acted inside its restart wait: %+v", out)
	}
	out = m.Acquire(at(1, 1), "r", false)
	if len(out.Msgs) != 0 {
		t.Fatal("blocking acquire sent messages inside the restart wait")
	}
	if wake, ok := m.NextWake(at(1, 1)); !ok || wake != tm.RestartWait() {
		t.Fatalf("next wake %v, want end of restart wait %v", wake, tm.RestartWait())
	}
	out = m.Tick(at(int64(tm.RestartWait()), tm.RestartWait()))
	if len(out.Msgs) != 3 || out.Msgs[0].Kind != MsgPrepare {
		t.Fatalf("after the wait: %+v", out)
	}
}

func TestMember_NewEpoch(t *testing.T) {
	now := at(0, 0)
	wall := uint64(now.Wall / 1000)
	for _, tc := range []struct {
		name  string
		knobs Knobs
		eMax  uint64
		want  uint64
	}{
		{"wall term dominates after amnesia", Knobs{}, 5, wall},
		{"max term dominates on fast handover", Knobs{}, wall + 10, wall + 11},
		{"teeth: ignores max", Knobs{EpochIgnoresMax: true}, wall + 10, wall},
		{"teeth: ignores wall", Knobs{EpochIgnoresWall: true}, 5, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Member{cfg: MemberConfig{Knobs: tc.knobs}}
			if got := m.newEpoch(tc.eMax, now); got != tc.want {
				t.Fatalf("newEpoch(%d) = %d, want %d", tc.eMax, got, tc.want)
			}
		})
	}
}

func TestHolding_Valid(t *testing.T) {
	h := Holding{WallDeadline: 1_700_000_000e9 + 100, MonoDeadline: 50}
	for _, tc := range []struct {
		name string
		now  Instant
		want bool
	}{
		{"before both deadlines", at(99, 49), true},
		{"wall deadline", at(100, 10), false},
		{"mono deadline (wall stepped back)", at(0, 50), false},
		{"clock unsafe", Instant{Wall: 1_700_000_000e9, Mono: 1}, false},
	} {
		if got := h.Valid(tc.now); got != tc.want {
			t.Errorf("%s: Valid = %v, want %v", tc.name, got, tc.want)
		}
	}
}
