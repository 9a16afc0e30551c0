package parfault

import (
	"bytes"
	"path/filepath"

	"github.com/hashicorp/raft"

	"context"
	"coord/coord/par"
	"coord/proto/coordpb"
	"testing"
	"time"
)

// TestMatrixSample runs a fixed-seed sample of 218 cases (families A, B, C
// (all 7, C3 and C4 included), E-J; D and K have tests of their own) with PAR and asserts the pass criteria: 0 unsafe, every recoverable case
// correct, every unrecoverable case unavailable (never "correct by luck"),
// and C4 unavailable as the design expects (ByDesign). A smaller plain-storage sample shows what PAR prevents.
func TestMatrixSample(t *testing.T) {
	if testing.Short() {
		t.Skip("fault matrix sample skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var hs []*Harness
	for k := 0; k < 3; k++ {
		h, err := New(ctx, Options{Dir: t.TempDir(), RecoverTimeout: 1500 * time.Millisecond, Avail: 6 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	total := 0
	recoverable := map[bool]int{}
	var slow *Harness // reruns with a longer pre-start budget (below)
	for _, fam := range []struct {
		name  string
		count int
	}{{"A", 90}, {"E", 30}, {"F", 30}, {"G", 24}, {"J", 9}, {"B", 15}, {"I", 12}, {"C", 7}, {"H", 1}} {
		start := time.Now()
		for _, h := range hs {
			// The follow-up is exercised by the other families here (A's
			// 90 cases would add ~15 s, ~40 s under -race); coordfault
			// runs it on every family.
			h.opt.NoFollowUp = fam.name == "A"
		}
		tally, results := RunParallel(ctx, hs, Cases(fam.name, 42, fam.count, 4))
		t.Logf("par %s: %+v (%v)", fam.name, tally, time.Since(start).Round(time.Millisecond))
		if tally.Total != fam.count {
			t.Fatalf("family %s ran %d of %d cases", fam.name, tally.Total, fam.count)
		}
		total += tally.Total
		for _, r := range results {
			switch {
			case r.Outcome == Unsafe:
				t.Errorf("UNSAFE %s: %s", r.Case, r.Detail)
			case r.ByDesign:
				// C4: the conservative-mode stall of design §4.4 must
				// show (a Correct outcome would mean a rule changed).
				if r.Outcome != Unavailable {
					t.Errorf("%s: the design expects the conservative-mode stall, got %s: %s", r.Case, r.Outcome, r.Detail)
				}
			case r.Recoverable && r.Outcome != Correct:
				// The 1.5 s pre-start budget keeps unrecoverable cases
				// short; on a starved machine a node whose repair source is
				// itself still starting can miss it. Such a case must come
				// out Correct when rerun once with 8 s (production: 60 s).
				if slow == nil {
					var err error
					if slow, err = New(ctx, Options{Dir: t.TempDir(), RecoverTimeout: 8 * time.Second, Avail: 10 * time.Second}); err != nil {
						t.Fatal(err)
					}
				}
				slow.opt.NoFollowUp = fam.name == "A"
				r2 := slow.Run(ctx, r.Case)
				if !r2.Recoverable || r2.Outcome != Correct {
					t.Errorf("recoverable case %s was %s: %s (rerun with an 8 s budget: %s: %s)", r.Case, r.Outcome, r.Detail, r2.Outcome, r2.Detail)
				} else {
					t.Logf("recoverable case %s was %s with the 1.5 s budget (%s), Correct with 8 s", r.Case, r.Outcome, r.Detail)
				}
			case !r.Recoverable && r.Outcome == Correct:
				t.Errorf("unrecoverable case %s came out correct", r.Case)
			}
			if r.Case.Family == "B" || r.Case.Family == "I" {
				recoverable[r.Recoverable]++
			}
			if r.Case.Family == "G" && r.Repairs > 0 {
				lost := false
				for _, k := range r.Case.Crash {
					lost = lost || k == CrashLostEntry
				}
				if !lost {
					t.Errorf("crash case %s needed %d repairs from peers: a crash that lost only identifiers must recover locally", r.Case, r.Repairs)
				}
			}
		}
	}
	if recoverable[true] == 0 || recoverable[false] == 0 {
		t.Errorf("B/I sample oracle: %d recoverable, %d not: the sample must hold both kinds", recoverable[true], recoverable[false])
	}
	if total < 150 {
		t.Fatalf("ran %d cases, want >= 150", total)
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

// TestRuntimeRepair: an entry damaged under a running node (a latent fault
// found by a read that misses raft's cache) is verified, fetched from a
// peer and rewritten; GetLog returns the intact entry, never garbage.
func TestRuntimeRepair(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := New(ctx, Options{Dir: t.TempDir(), ScrubRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := copyDir(h.base, dir); err != nil {
		t.Fatal(err)
	}
	srvs, err := h.start(dir, nil)
	defer closeAll(srvs)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := flipEvery(filepath.Join(dir, h.names[0], par.BoltFile), h.values[2]); err != nil || n == 0 {
		t.Fatalf("inject: %d %v", n, err)
	}
	ls := srvs[0].PAR().Log
	last, _ := ls.LastIndex()
	found := false
	for i := uint64(1); i <= last; i++ {
		var l raft.Log
		if err := ls.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		found = found || bytes.Contains(l.Data, h.values[2])
	}
	if st := ls.Stats(); !found || st.Repairs != 1 || st.Faulty != 0 {
		t.Fatalf("found intact value=%v stats=%+v, want one runtime repair", found, st)
	}
}

// TestScrubberFindsLatentFault: the background scrubber finds an entry
// damaged under a running node and repairs it with no raft read involved.
func TestScrubberFindsLatentFault(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := New(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := copyDir(h.base, dir); err != nil {
		t.Fatal(err)
	}
	srvs, err := h.start(dir, nil)
	defer closeAll(srvs)
	if err != nil {
		t.Fatal(err)
	}
	// Raft replays every committed entry through GetLog after a restart:
	// damage injected before node 1 replayed would be found by that read
	// instead of the scrubber (a flake on a loaded machine).
	cc, err := h.dialLeader(ctx, srvs)
	if err != nil {
		t.Fatal(err)
	}
	r, err := coordpb.NewCoordClient(cc).Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/barrier", Data: []byte("b")}})
	cc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := srvs[1].Replica().WaitApplied(ctx, r.Header.GetZxid()); err != nil {
		t.Fatal(err)
	}
	if n, err := flipEvery(filepath.Join(dir, h.names[1], par.BoltFile), h.values[0]); err != nil || n == 0 {
		t.Fatalf("inject: %d %v", n, err)
	}
	ls := srvs[1].PAR().Log
	deadline := time.Now().Add(10 * time.Second)
	for ls.Stats().Repairs == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if st, sc := ls.Stats(), ls.ScrubStats(); st.Repairs != 1 || sc.Found != 1 || st.Faulty != 0 {
		t.Fatalf("stats %+v scrub %+v, want the scrubber to find and repair one entry", st, sc)
	}
}
