package nemesis

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// FaultKind is one kind of nemesis.
type FaultKind int

// Faults the schedule draws from.
const (
	KillLeader    FaultKind = iota // SIGKILL the leader, restart after Dur
	KillNode                       // SIGKILL a random node, restart after Dur
	PauseLeader                    // SIGSTOP the leader for Dur, then SIGCONT
	PauseNode                      // SIGSTOP a random node for Dur
	IsolateNode                    // cut every link of one node both ways
	SplitMajority                  // partition into a majority and a minority
	OneWay                         // cut one direction of one peer link
	ClientCut                      // cut the register clients from one node
	PauseLocker                    // a lock holder stalls (no keepalives) longer than its session
	numFaultKinds
)

func (k FaultKind) String() string {
	return [...]string{"kill-leader", "kill-node", "pause-leader", "pause-node",
		"isolate-node", "split-majority", "one-way", "client-cut", "pause-locker"}[k]
}

// Fault is one step of a schedule: apply at At, undo after Dur.
type Fault struct {
	Kind FaultKind
	At   time.Duration
	Dur  time.Duration
	// Node, Other: the nodes involved (-1: decided at apply time, e.g. the
	// leader).
	Node, Other int
	// Reset: on heal, close the connections that crossed the cut instead
	// of delivering the held bytes late.
	Reset bool
}

func (f Fault) String() string {
	return fmt.Sprintf("%v@%v for %v node=%d other=%d reset=%v", f.Kind, f.At.Round(time.Millisecond), f.Dur.Round(time.Millisecond), f.Node, f.Other, f.Reset)
}

// Schedule is a reproducible fault plan for one run.
type Schedule struct {
	Seed   uint64
	Nodes  int
	Length time.Duration // client traffic runs this long; faults heal by then
	Faults []Fault
}

func (s Schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed=%d nodes=%d length=%v", s.Seed, s.Nodes, s.Length)
	for _, f := range s.Faults {
		b.WriteString("\n  " + f.String())
	}
	return b.String()
}

// Generate draws a schedule from seed: faults one after another (never
// two at once, so each heal is exact), each starting after a short calm,
// lasting longer than the election timeout, the last healed by Length.
func Generate(seed uint64, nodes int, length time.Duration) Schedule {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := Schedule{Seed: seed, Nodes: nodes, Length: length}
	t := time.Duration(200+r.IntN(300)) * time.Millisecond
	for {
		k := FaultKind(r.IntN(int(numFaultKinds)))
		var dur time.Duration
		switch k {
		case PauseLocker:
			dur = SessionTimeout + time.Duration(500+r.IntN(500))*time.Millisecond
		case KillLeader, KillNode:
			dur = time.Duration(r.IntN(1200)) * time.Millisecond
		default:
			dur = ElectionTimeout*2 + time.Duration(r.IntN(1200))*time.Millisecond
		}
		if t+dur > length-300*time.Millisecond {
			break
		}
		f := Fault{Kind: k, At: t, Dur: dur, Node: r.IntN(nodes), Other: -1, Reset: r.IntN(2) == 0}
		switch k {
		case KillLeader, PauseLeader:
			f.Node = -1
		case OneWay:
			f.Other = (f.Node + 1 + r.IntN(nodes-1)) % nodes
		case PauseLocker:
			f.Node = r.IntN(lockers)
		}
		s.Faults = append(s.Faults, f)
		t += dur + time.Duration(100+r.IntN(500))*time.Millisecond
	}
	return s
}
