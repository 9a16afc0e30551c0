package par

import (
	"fmt"
	"testing"
)

// The model check (design §5.6), reduced to one index by log matching: if
// (i, t) is discarded with its suffix, safety depends only on who holds
// (i, t) and who can still ack a leader that replicates it.
//
// World: the requester R holds (i, t) faulty; its last log term is tLast >= t.
// Each other voter j has a copy state at i (none, intact (i,t), faulty (i,t),
// other term at i), a durable term >= its own log term, and a reply mode
// (answers, answers UNKNOWN, down). The committed entry at i is none, (i,t)
// or (i,t') consistent with the copies (a committed entry is held by a
// quorum). Answers follow the responder rules of §4.4.
//
// Properties, for every world:
//
//	P1 no loss:  Discard => (i, t) is not committed.
//	P2 no stale commit: Discard => a different entry is committed at i, or
//	   fewer than a quorum can still hold or ack (i, t) for a leader of a
//	   term <= tLast (R's stale ack counts).
//	P3 exact repair: Fix only from a verified intact copy.

type copyState int

const (
	cNone copyState = iota
	cIntact
	cFaulty
	cOther
)

type mode int

const (
	mAnswer mode = iota
	mUnknown
	mDown
)

type peer struct {
	c    copyState
	term uint64 // durable term
	m    mode
}

type world struct {
	n         int
	t, tLast  uint64
	peers     []peer
	committed int // 0 none, 1 (i,t), 2 other
}

func (w world) replies() []Reply {
	var out []Reply
	for k, p := range w.peers {
		from := fmt.Sprint("p", k)
		if p.m == mDown {
			continue
		}
		r := Reply{From: from, DurableTerm: p.term}
		switch {
		case p.m == mUnknown:
			r.Status = StatusUnknown
		case p.c == cIntact:
			r.Status, r.Verified = StatusHave, true
		case p.c == cFaulty:
			r.Status = StatusHaveFaulty
		case p.c == cOther && w.committed == 2:
			r.Status = StatusConflictsCommitted
		default:
			r.Status = StatusDontHave
		}
		out = append(out, r)
	}
	return out
}

// violation returns a description if rules decide unsafely in w.
func (w world) violation(r Rules) string {
	act := Decide(r, w.n, w.tLast, w.replies())
	q := Quorum(w.n)
	switch act {
	case ActDiscard:
		if w.committed == 1 {
			return "P1: discarded a committed entry"
		}
		if w.committed == 2 {
			return ""
		}
		can := 1 // R's stale ack
		for _, p := range w.peers {
			if p.c == cIntact || p.c == cFaulty || p.term <= w.tLast {
				can++
			}
		}
		if can >= q {
			return fmt.Sprintf("P2: discarded while %d >= quorum %d can still commit it via a stale leader", can, q)
		}
	case ActFix:
		ok := false
		for _, p := range w.peers {
			ok = ok || (p.c == cIntact && p.m == mAnswer)
		}
		if !ok {
			return "P3: fixed without an intact copy"
		}
	}
	return ""
}

// enumerate calls f for every world with n voters, peers as a multiset
// (peers are symmetric), terms <= maxTerm. It returns the number of worlds.
func enumerate(n int, maxTerm uint64, f func(world) bool) int {
	var states []peer
	for c := cNone; c <= cOther; c++ {
		for term := uint64(1); term <= maxTerm; term++ {
			for m := mAnswer; m <= mDown; m++ {
				states = append(states, peer{c, term, m})
			}
		}
	}
	count := 0
	peers := make([]peer, n-1)
	var rec func(k, from int) bool
	rec = func(k, from int) bool {
		if k == n-1 {
			for t := uint64(1); t <= maxTerm; t++ {
				for tLast := t; tLast <= maxTerm; tLast++ {
					for committed := 0; committed <= 2; committed++ {
						w := world{n: n, t: t, tLast: tLast, peers: peers, committed: committed}
						if !w.consistent() {
							continue
						}
						count++
						if !f(w) {
							return false
						}
					}
				}
			}
			return true
		}
		for s := from; s < len(states); s++ {
			peers[k] = states[s]
			if !rec(k+1, s) {
				return false
			}
		}
		return true
	}
	rec(0, 0)
	return count
}

// consistent: durable terms >= own log terms, committed entries held by a
// quorum.
func (w world) consistent() bool {
	holdT, holdOther := 1, 0 // R holds (i,t)
	for _, p := range w.peers {
		switch p.c {
		case cIntact, cFaulty:
			if p.term < w.t {
				return false
			}
			holdT++
		case cOther:
			holdOther++
		}
	}
	q := Quorum(w.n)
	switch w.committed {
	case 1:
		return holdT >= q
	case 2:
		return holdOther >= q
	}
	return true
}

func checkRules(t *testing.T, r Rules) (worlds int, first string) {
	t.Helper()
	for _, n := range []int{3, 5} {
		worlds += enumerate(n, 3, func(w world) bool {
			if v := w.violation(r); v != "" {
				first = fmt.Sprintf("n=%d t=%d tLast=%d committed=%d peers=%+v: %s", w.n, w.t, w.tLast, w.committed, w.peers, v)
				return false
			}
			return true
		})
	}
	return worlds, first
}

func TestDecide_ModelCheck(t *testing.T) {
	worlds, v := checkRules(t, DefaultRules)
	if v != "" {
		t.Fatalf("default rules unsafe: %s", v)
	}
	if worlds < 100000 {
		t.Fatalf("explored only %d worlds", worlds)
	}
	t.Logf("explored %d worlds, no violation", worlds)
}

// The check must fail when a rule is weakened (design §5.6).
func TestDecide_ModelCheckCatchesWeakenedRules(t *testing.T) {
	weak := map[string]Rules{
		"threshold n-q":  {NackThreshold: func(n int) int { return n - Quorum(n) }, RequireNewerTerm: true},
		"no term check":  {NackThreshold: DefaultRules.NackThreshold, RequireNewerTerm: false},
		"faulty is nack": {NackThreshold: DefaultRules.NackThreshold, RequireNewerTerm: true, FaultyIsNack: true},
	}
	for name, r := range weak {
		t.Run(name, func(t *testing.T) {
			_, v := checkRules(t, r)
			if v == "" {
				t.Fatalf("weakened rule %q passed the model check", name)
			}
			t.Logf("caught: %s", v)
		})
	}
}

func TestDecide_Table(t *testing.T) {
	hi, lo := uint64(9), uint64(1)
	tests := []struct {
		name    string
		voters  int
		replies []Reply
		want    Action
	}{
		{"verified have fixes", 3, []Reply{{From: "a", Status: StatusHave, Verified: true}}, ActFix},
		{"unverified have waits", 3, []Reply{{From: "a", Status: StatusHave}}, ActWait},
		{"conflicts committed discards", 3, []Reply{{From: "a", Status: StatusConflictsCommitted}}, ActDiscard},
		{"compacted fetches snapshot", 3, []Reply{{From: "a", Status: StatusCommittedCompacted}}, ActFetchSnapshot},
		{"two new nacks of 3 discard", 3, []Reply{{From: "a", Status: StatusDontHave, DurableTerm: hi}, {From: "b", Status: StatusDontHave, DurableTerm: hi}}, ActDiscard},
		{"one nack of 3 waits", 3, []Reply{{From: "a", Status: StatusDontHave, DurableTerm: hi}}, ActWait},
		{"old-term nacks wait", 3, []Reply{{From: "a", Status: StatusDontHave, DurableTerm: lo}, {From: "b", Status: StatusDontHave, DurableTerm: lo}}, ActWait},
		{"duplicate nacker counts once", 3, []Reply{{From: "a", Status: StatusDontHave, DurableTerm: hi}, {From: "a", Status: StatusDontHave, DurableTerm: hi}}, ActWait},
		{"faulty is no nack", 3, []Reply{{From: "a", Status: StatusDontHave, DurableTerm: hi}, {From: "b", Status: StatusHaveFaulty, DurableTerm: hi}}, ActWait},
		{"three nacks of 5 discard", 5, []Reply{{From: "a", Status: StatusDontHave, DurableTerm: hi}, {From: "b", Status: StatusDontHave, DurableTerm: hi}, {From: "c", Status: StatusDontHave, DurableTerm: hi}}, ActDiscard},
		{"unknowns wait", 3, []Reply{{From: "a", Status: StatusUnknown}, {From: "b", Status: StatusUnknown}}, ActWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(DefaultRules, tt.voters, 5, tt.replies); got != tt.want {
				t.Fatalf("Decide = %v, want %v", got, tt.want)
			}
		})
	}
}
