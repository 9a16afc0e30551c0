package parfault

import (
	"context"
	"testing"
	"time"
)

// TestMatrixSample runs a fixed-seed sample of 150 cases (families A and E)
// with PAR and asserts the pass criteria: 0 unsafe, every recoverable case
// correct, every unrecoverable case unavailable (never "correct by luck").
// A smaller plain-storage sample shows what PAR prevents.
func TestMatrixSample(t *testing.T) {
	if testing.Short() {
		t.Skip("fault matrix sample skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	h, err := New(ctx, Options{Dir: t.TempDir(), RecoverTimeout: 800 * time.Millisecond, Avail: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range []struct {
		name  string
		count int
	}{{"A", 110}, {"E", 40}} {
		tally, results := h.RunAll(ctx, Cases(fam.name, 42, fam.count, 4), nil)
		t.Logf("par %s: %+v", fam.name, tally)
		if tally.Total != fam.count {
			t.Fatalf("family %s ran %d of %d cases", fam.name, tally.Total, fam.count)
		}
		for _, r := range results {
			switch {
			case r.Outcome == Unsafe:
				t.Errorf("UNSAFE %s: %s", r.Case, r.Detail)
			case r.Recoverable && r.Outcome != Correct:
				t.Errorf("recoverable case %s was %s: %s", r.Case, r.Outcome, r.Detail)
			case !r.Recoverable && r.Outcome == Correct:
				t.Errorf("unrecoverable case %s came out correct", r.Case)
			}
		}
	}

	plain, err := New(ctx, Options{Dir: t.TempDir(), Plain: true, Avail: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tally, _ := plain.RunAll(ctx, Cases("A", 42, 10, 4), nil)
	t.Logf("plain A: %+v", tally)
	if tally.Unsafe == 0 {
		t.Errorf("plain raft-boltdb served no corrupted value in 10 corrupted-entry cases: the injection is not reaching the log")
	}
}

// TestRepairMovesOneEntry: one corrupted entry on one node is repaired from
// a peer by moving that entry's envelope only (design: "about one entry's
// bytes", not a re-replication of the log).
func TestRepairMovesOneEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := New(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := h.Run(ctx, Case{Family: "A", ID: -1, Mask: [Nodes]uint{0b0010, 0, 0}})
	if r.Outcome != Correct {
		t.Fatalf("outcome %s: %s", r.Outcome, r.Detail)
	}
	entry := int64(len(h.values[1]))
	if r.Repairs != 1 || r.RepairedBytes < entry || r.RepairedBytes > entry+256 {
		t.Fatalf("repairs=%d bytes=%d, want 1 repair of about %d bytes", r.Repairs, r.RepairedBytes, entry)
	}
	t.Logf("repaired 1 entry moving %d bytes (value %d bytes)", r.RepairedBytes, entry)
}
