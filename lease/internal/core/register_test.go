package core

import "testing"

func b(round uint64, p uint32) Ballot { return Ballot{Round: round, Proposer: p, Inc: 1} }

func TestBallot_Less(t *testing.T) {
	for _, tc := range []struct {
		a, b Ballot
		want bool
	}{
		{Ballot{1, 0, 0}, Ballot{2, 0, 0}, true},
		{Ballot{2, 0, 0}, Ballot{1, 5, 5}, false},
		{Ballot{1, 0, 9}, Ballot{1, 1, 0}, true},
		{Ballot{1, 1, 1}, Ballot{1, 1, 2}, true},
		{Ballot{1, 1, 2}, Ballot{1, 1, 2}, false},
		{Ballot{}, Ballot{0, 0, 1}, true},
	} {
		if got := tc.a.Less(tc.b); got != tc.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRegister_Prepare(t *testing.T) {
	v := Value{Owner: "a", Epoch: 7}
	for _, tc := range []struct {
		name         string
		reg          Register
		ballot       Ballot
		ok           bool
		wantPromised Ballot // register state after
		nackWith     Ballot
	}{
		{"fresh", Register{}, b(1, 0), true, b(1, 0), Ballot{}},
		{"higher than promise", Register{Promised: b(1, 0)}, b(2, 0), true, b(2, 0), Ballot{}},
		{"equal to promise nacks", Register{Promised: b(2, 0)}, b(2, 0), false, b(2, 0), b(2, 0)},
		{"lower than promise nacks", Register{Promised: b(3, 0)}, b(2, 1), false, b(3, 0), b(3, 0)},
		{"equal to accepted nacks", Register{Promised: b(2, 0), Accepted: b(2, 0), Value: v}, b(2, 0), false, b(2, 0), b(2, 0)},
		{"returns accepted value", Register{Promised: b(2, 0), Accepted: b(2, 0), Value: v}, b(3, 1), true, b(3, 1), Ballot{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.reg
			res := r.Prepare(tc.ballot)
			if res.OK != tc.ok {
				t.Fatalf("ok = %v, want %v", res.OK, tc.ok)
			}
			if r.Promised != tc.wantPromised {
				t.Errorf("promised = %v, want %v", r.Promised, tc.wantPromised)
			}
			if !tc.ok && res.Promised != tc.nackWith {
				t.Errorf("nack carries %v, want %v", res.Promised, tc.nackWith)
			}
			if tc.ok && (res.Accepted != tc.reg.Accepted || res.Value != tc.reg.Value) {
				t.Errorf("ack returned (%v,%v), want (%v,%v)", res.Accepted, res.Value, tc.reg.Accepted, tc.reg.Value)
			}
		})
	}
}

func TestRegister_Accept(t *testing.T) {
	v := Value{Owner: "b", Epoch: 3}
	for _, tc := range []struct {
		name    string
		reg     Register
		ballot  Ballot
		lowerOK bool
		ok      bool
	}{
		{"fresh", Register{}, b(1, 0), false, true},
		{"equal to promise accepts (asymmetry with read)", Register{Promised: b(2, 0)}, b(2, 0), false, true},
		{"lower than promise nacks", Register{Promised: b(3, 0)}, b(2, 0), false, false},
		{"lower than accepted nacks", Register{Promised: b(3, 0), Accepted: b(3, 0)}, b(2, 2), false, false},
		{"teeth knob accepts lower", Register{Promised: b(3, 0)}, b(2, 0), true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.reg
			ok, promised := r.Accept(tc.ballot, v, tc.lowerOK)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if ok && (r.Accepted != tc.ballot || r.Promised != tc.ballot || r.Value != v) {
				t.Errorf("after accept: %+v", r)
			}
			if !ok && (r != tc.reg || promised != maxBallot(tc.reg.Promised, tc.reg.Accepted)) {
				t.Errorf("nack changed state to %+v or carried %v", r, promised)
			}
		})
	}
}

// TestRegister_ReadWriteCommit checks lemma R3 on one cell: after read(k) or
// write(k) succeeds, no read(k') with k' ≤ k and no write(k”) with k” < k
// succeeds.
func TestRegister_ReadWriteCommit(t *testing.T) {
	for k := uint64(2); k < 6; k++ {
		var r Register
		if !r.Prepare(b(k, 1)).OK {
			t.Fatal("fresh prepare nacked")
		}
		for k2 := uint64(1); k2 <= k; k2++ {
			if r.Prepare(b(k2, 1)).OK {
				t.Errorf("read(%d) succeeded after read(%d)", k2, k)
			}
		}
		for k2 := uint64(1); k2 < k; k2++ {
			if ok, _ := r.Accept(b(k2, 1), Value{Epoch: 1}, false); ok {
				t.Errorf("write(%d) succeeded after read(%d)", k2, k)
			}
		}
	}
}
