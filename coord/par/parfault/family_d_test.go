package parfault

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"coord/coord"
	"coord/coord/par"
)

// dPicked are hand-picked family D cases that must take each repair path.
var dPicked = []struct {
	c    DCase
	want func(r DResult) bool
	what string
}{
	{DCase{ID: -1, State: [Nodes]int{DStateG, DStateT, DStateT}, Fault: [Nodes]int{DFaultChunk, DFaultNone, DFaultNone}},
		func(r DResult) bool { return r.ChunkRepairs == 1 && r.WholeRepairs == 0 && r.ChunksFetched == 1 }, "one chunk fetched from an identical snapshot"},
	{DCase{ID: -2, State: [Nodes]int{DStateG, DStateG, DStateL}, Fault: [Nodes]int{DFaultSidecarBoth, DFaultNone, DFaultNone}},
		func(r DResult) bool { return r.WholeRepairs == 1 && r.ChunkRepairs == 0 }, "a whole snapshot from a peer"},
	{DCase{ID: -3, State: [Nodes]int{DStateT, DStateG, DStateG}, Fault: [Nodes]int{DFaultMetaEdit, DFaultMetaBreak, DFaultNone}},
		func(r DResult) bool { return r.MetaRepaired == 2 && r.Quarantined == 0 }, "meta.json rewritten from the sidecar twice"},
	{DCase{ID: -4, State: [Nodes]int{DStateL, DStateG, DStateG}, Fault: [Nodes]int{DFaultEntry, DFaultNone, DFaultNone}},
		func(r DResult) bool { return r.WholeRepairs == 1 }, "rule 3: the entry is fetched as a peer's snapshot"},
	{DCase{ID: -5, State: [Nodes]int{DStateT, DStateL, DStateL}, Fault: [Nodes]int{DFaultEntry, DFaultEntry, DFaultNone}},
		func(r DResult) bool { return r.EntryRepairs+r.WholeRepairs == 1 }, "t compacts its covered entry locally; l fetches it (entry or snapshot)"},
	{DCase{ID: -7, State: [Nodes]int{DStateG, DStateL, DStateL}, Fault: [Nodes]int{DFaultChunk, DFaultNone, DFaultNone}},
		func(r DResult) bool { return (r.WholeRepairs == 1) != (r.GapFilled > 0) && r.ChunkRepairs == 0 },
		"the log-only peers snapshot on request (RequestSnapshot) if their raft already runs, else the gap is filled from their log"},
	{DCase{ID: -8, State: [Nodes]int{DStateG, DStateG, DStateL}, Fault: [Nodes]int{DFaultChunk, DFaultSidecarBoth, DFaultNone}},
		func(r DResult) bool { return r.GapFilled > 0 && r.WholeRepairs == 0 }, "both g nodes fill their gap from the log-only peer's log"},
	{DCase{ID: -6, State: [Nodes]int{DStateG, DStateG, DStateL}, Fault: [Nodes]int{DFaultChunk, DFaultSidecarBoth, DFaultEntry}},
		func(r DResult) bool { return true }, "nothing intact can rebuild the snapshot state: unavailable"},
}

// TestFamilyDSample runs hand-picked cases (each repair path) plus a
// fixed-seed sample of family D with PAR and asserts the pass criteria: 0
// unsafe, every recoverable case correct, no unrecoverable case correct.
func TestFamilyDSample(t *testing.T) {
	if testing.Short() {
		t.Skip("fault matrix sample skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ds []*DHarness
	for k := 0; k < 2; k++ {
		d, err := NewD(ctx, Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	cases := DCases(42, 10)
	for _, p := range dPicked {
		cases = append(cases, p.c)
	}
	start := time.Now()
	tally, results := RunParallelD(ctx, ds, cases)
	t.Logf("par D: %+v (%v)", tally, time.Since(start).Round(time.Millisecond))
	var slow *DHarness // reruns with a longer pre-start budget (below)
	for i, r := range results {
		t.Logf("%s recoverable=%v %s chunk=%d whole=%d meta=%d quarantined=%d entry=%d gap=%d %s", r.Case, r.Recoverable, r.Outcome,
			r.ChunkRepairs, r.WholeRepairs, r.MetaRepaired, r.Quarantined, r.EntryRepairs, r.GapFilled, r.Detail)
		switch {
		case r.Outcome == Unsafe:
			t.Errorf("UNSAFE %s: %s", r.Case, r.Detail)
		case r.Recoverable && r.Outcome != Correct:
			// As in TestMatrixSample: the 1.5 s pre-start budget keeps
			// unrecoverable cases short, and on a starved machine a node
			// whose repair source is itself still starting can miss it.
			// The case must then come out Correct when rerun once with
			// 8 s (production: 60 s), and the rerun is what the
			// hand-picked checks below look at.
			if slow == nil {
				var err error
				if slow, err = NewD(ctx, Options{Dir: t.TempDir(), RecoverTimeout: 8 * time.Second, Avail: 10 * time.Second}); err != nil {
					t.Fatal(err)
				}
			}
			r2 := slow.RunD(ctx, r.Case)
			if !r2.Recoverable || r2.Outcome != Correct {
				t.Errorf("recoverable case %s was %s: %s (rerun with an 8 s budget: %s: %s)", r.Case, r.Outcome, r.Detail, r2.Outcome, r2.Detail)
			} else {
				t.Logf("recoverable case %s was %s with the 1.5 s budget (%s), Correct with 8 s", r.Case, r.Outcome, r.Detail)
			}
			r = r2
		case !r.Recoverable && r.Outcome == Correct:
			t.Errorf("unrecoverable case %s came out correct", r.Case)
		}
		if k := i - (len(cases) - len(dPicked)); k >= 0 && !dPicked[k].want(r) {
			t.Errorf("%s: want %s; got %+v", r.Case, dPicked[k].what, r)
		}
	}
}

func TestDCases_Enumeration(t *testing.T) {
	all := DCases(0, 0)
	if len(all) != 27*512 {
		t.Fatalf("%d cases, want 13824", len(all))
	}
	seen := map[[2][Nodes]int]bool{}
	rec := 0
	for i, c := range all {
		if c.ID != i {
			t.Fatalf("case %d has id %d", i, c.ID)
		}
		seen[[2][Nodes]int{c.State, c.Fault}] = true
		if c.Recoverable() {
			rec++
		}
	}
	if len(seen) != len(all) {
		t.Fatalf("%d distinct of %d", len(seen), len(all))
	}
	// Spot checks of the oracle.
	for _, tc := range []struct {
		c    DCase
		want bool
	}{
		{DCase{State: [Nodes]int{DStateG, DStateG, DStateG}, Fault: [Nodes]int{DFaultChunk, DFaultChunk, DFaultNone}}, true},
		{DCase{State: [Nodes]int{DStateG, DStateG, DStateG}, Fault: [Nodes]int{DFaultChunk, DFaultChunk, DFaultSidecarBoth}}, false},
		{DCase{State: [Nodes]int{DStateL, DStateL, DStateG}, Fault: [Nodes]int{DFaultEntry, DFaultEntry, DFaultChunk}}, false},
		{DCase{State: [Nodes]int{DStateL, DStateL, DStateT}, Fault: [Nodes]int{DFaultEntry, DFaultEntry, DFaultEntry}}, true},
	} {
		if got := tc.c.Recoverable(); got != tc.want {
			t.Errorf("%s: recoverable=%v, want %v", tc.c, got, tc.want)
		}
	}
	t.Logf("%d of %d recoverable", rec, len(all))
}

// TestInstallSnapshotGetsSidecar: a follower that fell behind a compacted
// leader receives raft's InstallSnapshot through par's store, so the
// snapshot gets its sidecar and survives the follower's restart
// verification (no quarantine), with every value intact.
func TestInstallSnapshotGetsSidecar(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := &Harness{opt: Options{RecoverTimeout: 2 * time.Second, Avail: 10 * time.Second}}
	var lns []net.Listener
	for i := 0; i < Nodes; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		h.addrs = append(h.addrs, ln.Addr().String())
		h.names = append(h.names, fmt.Sprintf("n%d", i+1))
	}
	dir := t.TempDir()
	srvs, err := h.start(dir, lns)
	defer func() { closeAll(srvs) }()
	if err != nil {
		t.Fatal(err)
	}
	startOne := func(i int) *coord.Server {
		cfg := h.config(dir, i)
		cfg.TrailingLogs = 2
		var ln net.Listener
		var err error
		for try := 0; try < 50; try++ {
			if ln, err = net.Listen("tcp", h.addrs[i]); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Error(err)
			return nil
		}
		s, err := coord.Start(cfg, ln)
		if err != nil {
			t.Error(err)
		}
		return s
	}
	// Restart the leader side with TrailingLogs 2 so a snapshot compacts.
	closeAll(srvs)
	srvs = []*coord.Server{nil, nil, nil}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); srvs[i] = startOne(i) }()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var last uint64
	for i := 0; i < 40; i++ {
		at, err := h.createAcked(ctx, srvs, fmt.Sprintf("/k%d", i), []byte(fmt.Sprint("v", i)))
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, at)
	}
	for _, s := range srvs[:2] {
		if err := s.Replica().WaitApplied(ctx, last); err != nil {
			t.Fatal(err)
		}
		if err := s.Replica().TakeSnapshot(); err != nil {
			t.Fatal(err)
		}
	}
	if srvs[2] = startOne(2); srvs[2] == nil {
		t.FailNow()
	}
	if err := srvs[2].Replica().WaitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	// raft records the installed snapshot just after the FSM restored it.
	for end := time.Now().Add(5 * time.Second); srvs[2].Replica().LastSnapshotIndex() == 0 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if si := srvs[2].Replica().LastSnapshotIndex(); si < 10 {
		t.Fatalf("follower's snapshot index %d: it did not catch up through InstallSnapshot; stats %v; par %+v", si, srvs[2].Replica().Info(), srvs[2].PAR().Snapshots().Stats())
	}
	st := srvs[2].PAR().Snapshots().Stats()
	if st.Verified < 1 {
		t.Fatalf("follower's snapshot store %+v: the installed snapshot is not verified", st)
	}
	ids, _ := os.ReadDir(filepath.Join(dir, h.names[2], par.SnapMetaDir))
	if len(ids) < 2 {
		t.Fatalf("follower has %d sidecar files, want the installed snapshot's two copies", len(ids))
	}
	srvs[2].Close()
	if srvs[2] = startOne(2); srvs[2] == nil {
		t.FailNow()
	}
	if st := srvs[2].PAR().Snapshots().Stats(); st.Verified < 1 || st.Quarantined != 0 {
		t.Fatalf("after restart: %+v", st)
	}
	if err := srvs[2].Replica().WaitApplied(ctx, last); err != nil {
		t.Fatal(err)
	}
	tr, _ := srvs[2].Replica().State()
	for i := 0; i < 40; i++ {
		if v, _, err := tr.Get(fmt.Sprintf("/k%d", i)); err != nil || string(v) != fmt.Sprint("v", i) {
			t.Fatalf("/k%d = %q, %v", i, v, err)
		}
	}
}
