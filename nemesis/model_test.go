package nemesis

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func op(client int, in Input, out Output, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func TestRegisterModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"set then read", []porcupine.Operation{
			op(0, Input{Kind: OpSet, Key: 0, Val: "a"}, Output{OK: true, Ver: 1}, 0, 10),
			op(1, Input{Kind: OpGet, Key: 0}, Output{OK: true, Val: "a", Ver: 1}, 20, 30),
		}, porcupine.Ok},
		{"stale read after an acknowledged write", []porcupine.Operation{
			op(0, Input{Kind: OpSet, Key: 0, Val: "a"}, Output{OK: true, Ver: 1}, 0, 10),
			op(1, Input{Kind: OpGet, Key: 0}, Output{OK: true, Val: "", Ver: 0}, 20, 30),
		}, porcupine.Illegal},
		{"unknown write may have happened", []porcupine.Operation{
			op(0, Input{Kind: OpSet, Key: 1, Val: "x"}, Output{Unknown: true}, 0, Infinity),
			op(1, Input{Kind: OpGet, Key: 1}, Output{OK: true, Val: "x", Ver: 1}, 20, 30),
		}, porcupine.Ok},
		{"unknown write may not have happened", []porcupine.Operation{
			op(0, Input{Kind: OpSet, Key: 1, Val: "x"}, Output{Unknown: true}, 0, Infinity),
			op(1, Input{Kind: OpGet, Key: 1}, Output{OK: true, Val: "", Ver: 0}, 20, 30),
		}, porcupine.Ok},
		{"cas on a stale version must fail", []porcupine.Operation{
			op(0, Input{Kind: OpSet, Key: 0, Val: "a"}, Output{OK: true, Ver: 1}, 0, 10),
			op(1, Input{Kind: OpCAS, Key: 0, Val: "b", Ver: 0}, Output{OK: true, Ver: 1}, 20, 30),
		}, porcupine.Illegal},
		{"multi applies only when its check holds", []porcupine.Operation{
			op(0, Input{Kind: OpMulti, Key: 0, Ver: 0, Key2: 2, Val: "m"}, Output{OK: true, Ver: 1}, 0, 10),
			op(1, Input{Kind: OpGet, Key: 2}, Output{OK: true, Val: "m", Ver: 1}, 20, 30),
			op(1, Input{Kind: OpMulti, Key: 2, Ver: 0, Key2: 1, Val: "n"}, Output{OK: false}, 40, 50),
		}, porcupine.Ok},
		{"lost acknowledged write", []porcupine.Operation{
			op(0, Input{Kind: OpSet, Key: 0, Val: "a"}, Output{OK: true, Ver: 1}, 0, 10),
			op(0, Input{Kind: OpSet, Key: 0, Val: "b"}, Output{OK: true, Ver: 1}, 20, 30),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := CheckLinearizable(tc.ops, 10*time.Second); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestGenerate_Reproducible(t *testing.T) {
	a, b := Generate(42, 3, 4*time.Second), Generate(42, 3, 4*time.Second)
	if a.String() != b.String() {
		t.Fatalf("same seed, different schedules:\n%s\n%s", a, b)
	}
	if len(a.Faults) == 0 {
		t.Fatal("no faults in a 4 s schedule")
	}
	if c := Generate(43, 3, 4*time.Second); c.String() == a.String() {
		t.Fatal("different seeds, same schedule")
	}
	kinds := map[FaultKind]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		s := Generate(seed, 5, 4*time.Second)
		var end time.Duration
		for _, f := range s.Faults {
			kinds[f.Kind] = true
			if f.At < end {
				t.Fatalf("seed %d: faults overlap: %s", seed, s)
			}
			end = f.At + f.Dur
			if end > s.Length {
				t.Fatalf("seed %d: fault outlasts the schedule: %s", seed, s)
			}
		}
	}
	if len(kinds) != int(numFaultKinds) {
		t.Fatalf("200 seeds drew %d of %d fault kinds", len(kinds), numFaultKinds)
	}
}

func TestResolveUnknown(t *testing.T) {
	ops := []porcupine.Operation{
		op(0, Input{Kind: OpSet, Key: 0, Val: "a"}, Output{OK: true, Ver: 1}, 0, 10),
		op(1, Input{Kind: OpSet, Key: 0, Val: "lost"}, Output{Unknown: true}, 5, Infinity),
		op(2, Input{Kind: OpSet, Key: 1, Val: "seen"}, Output{Unknown: true}, 5, Infinity),
		op(3, Input{Kind: OpGet, Key: 1}, Output{OK: true, Val: "seen", Ver: 1}, 20, 30),
		op(2, Input{Kind: OpCAS, Key: 2, Ver: 0, Val: "maybe"}, Output{Unknown: true}, 40, Infinity),
	}
	// Key 0 ended at version 1 (only "a"), key 1 at 1, key 2 at 1 (the
	// unobserved CAS must have happened: it stays).
	got := ResolveUnknown(ops, map[int]int64{0: 1, 1: 1, 2: 1})
	if len(got) != 4 {
		t.Fatalf("kept %d ops, want 4 (the unobserved write on key 0 dropped)", len(got))
	}
	for _, o := range got {
		switch o.Input.(Input).Val {
		case "lost":
			t.Fatal("an unknown write that cannot have happened was kept")
		case "seen":
			if o.Return != 30 {
				t.Fatalf("observed write returns at %d, want the get's 30", o.Return)
			}
		case "maybe":
			if o.Return != Infinity {
				t.Fatal("an unknown write that may have happened got a return time")
			}
		}
	}
	if r, _ := CheckLinearizable(got, 10*time.Second); r != porcupine.Ok {
		t.Fatalf("resolved history: %s", r)
	}
}
