package core

import (
	"math/rand/v2"
	"testing"
)

// TestRegister_QuorumSafety drives three registers with interleaved,
// partially delivered (lossy) reads and writes from several proposers and
// checks the lemma the lease chain rests on (R3 with majority
// intersection): for every committed read(k) and every committed write(k”)
// with k” < k — in whichever order they committed — the read returned a
// value accepted at a ballot ≥ k”.
func TestRegister_QuorumSafety(t *testing.T) {
	for seed := uint64(0); seed < 3000; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		regs := make([]Register, 3)
		type op struct {
			write   bool
			ballot  Ballot
			value   Value
			pending []int // registers not yet delivered
			acks    int
			best    Ballot // read: highest accepted ballot among acks
		}
		var ops []*op
		type read struct{ ballot, best Ballot }
		var reads []read
		var writes []Ballot
		round := uint64(0)
		for step := 0; step < 200; step++ {
			if len(ops) == 0 || rng.IntN(4) == 0 {
				round += uint64(rng.IntN(3))
				b := Ballot{Round: round + 1, Proposer: uint32(rng.IntN(3)), Inc: 1}
				o := &op{write: rng.IntN(2) == 0, ballot: b, value: Value{Epoch: uint64(step + 1)}, pending: []int{0, 1, 2}}
				ops = append(ops, o)
				continue
			}
			i := rng.IntN(len(ops))
			o := ops[i]
			j := rng.IntN(len(o.pending))
			r := o.pending[j]
			o.pending = append(o.pending[:j], o.pending[j+1:]...)
			if rng.IntN(5) == 0 { // lost
				goto done
			}
			if o.write {
				if ok, _ := regs[r].Accept(o.ballot, o.value, false); ok {
					o.acks++
				}
				if o.acks == 2 {
					writes = append(writes, o.ballot)
				}
			} else {
				res := regs[r].Prepare(o.ballot)
				if res.OK {
					o.acks++
					o.best = maxBallot(o.best, res.Accepted)
				}
				if o.acks == 2 {
					reads = append(reads, read{o.ballot, o.best})
				}
			}
		done:
			if len(o.pending) == 0 {
				ops = append(ops[:i], ops[i+1:]...)
			}
		}
		for _, r := range reads {
			for _, w := range writes {
				if w.Less(r.ballot) && r.best.Less(w) {
					t.Fatalf("seed %d: read %v returned ballot %v below committed write %v", seed, r.ballot, r.best, w)
				}
			}
		}
		if seed == 0 && (len(reads) == 0 || len(writes) == 0) {
			t.Fatalf("seed 0 committed %d reads and %d writes: the test exercises nothing", len(reads), len(writes))
		}
	}
}
