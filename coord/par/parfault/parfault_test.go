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
