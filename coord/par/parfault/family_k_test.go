package parfault

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"coord/coord/par"
)

func TestMain(m *testing.M) {
	ServeEIOFSIfChild()
	os.Exit(m.Run())
}

// TestEIOOnBoltStore: one PAR store whose data dir is the EIO mount. An
// EIO under bbolt's mmap at runtime must come back from GetLog as an
// error (par's guard catches the SIGBUS), and the next Open must
// quarantine raft.db (the pread walk sees the EIO) and mark every entry
// faulty for the peers to repair.
func TestEIOOnBoltStore(t *testing.T) {
	if err := EIOAvailable(); err != nil {
		t.Skip("family K needs FUSE: ", err)
	}
	back, mnt := filepath.Join(t.TempDir(), "back"), filepath.Join(t.TempDir(), "mnt")
	for _, d := range []string{back, mnt} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m, err := mountEIO(back, mnt)
	if err != nil {
		t.Skip("family K cannot mount FUSE here: ", err)
	}
	defer m.close()
	s, err := par.Open(par.Config{Dir: mnt, Name: "k", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("EIO-MARKER-0123456789")
	var logs []*raft.Log
	for i := uint64(1); i <= 20; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Data: append(append([]byte{}, marker...), byte(i))})
	}
	if err := s.Log.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(back, par.BoltFile))
	if err != nil {
		t.Fatal(err)
	}
	off := bytes.Index(b, marker)
	if off < 0 {
		t.Fatal("marker not in raft.db")
	}
	page := int64(off) / 4096 * 4096
	if err := m.arm(par.BoltFile, page, 4096); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	err = s.Log.GetLog(5, &l)
	t.Logf("GetLog after EIO: %v (EIO hits %d)", err, m.hits())
	if !errors.Is(err, par.ErrEntryUnavailable) {
		t.Fatalf("GetLog = %v, want ErrEntryUnavailable", err)
	}
	// bbolt must read the same leaf page to append after it: the write
	// fails (an error, not a crash) until raft.db is rebuilt.
	err = s.Log.StoreLogs([]*raft.Log{{Index: 21, Term: 1, Data: marker}})
	t.Logf("StoreLogs after EIO: %v", err)
	if err == nil {
		t.Fatal("StoreLogs into an unreadable page succeeded")
	}
	if err := s.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	s, err = par.Open(par.Config{Dir: mnt, Name: "k", NoSync: true})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	rep := s.Report()
	t.Logf("reopen report: %+v", rep)
	if !rep.BoltRebuilt {
		t.Fatal("raft.db with an unreadable page was not quarantined")
	}
}

// TestFamilyK runs two family-K cases (EIO on raft.db through a FUSE
// mount; coordfault --family K runs all 12) with PAR: a fault under a
// running node (the mmap path) and faults on two nodes at start (the pread
// path, two rebuilds from one intact node). Each must end Correct.
func TestFamilyK(t *testing.T) {
	if err := EIOAvailable(); err != nil {
		t.Skip("family K needs FUSE: ", err)
	}
	if testing.Short() {
		t.Skip("family K skipped in -short")
	}
	probe := t.TempDir()
	m, err := mountEIO(probe, t.TempDir())
	if err != nil {
		t.Skip("family K cannot mount FUSE here: ", err)
	}
	if err := m.close(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := New(ctx, Options{Dir: t.TempDir(), RecoverTimeout: 3 * time.Second, Avail: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range Cases("K", 0, 0, 4) {
		if c.ID != KRunPage*Nodes+1 && c.ID != KStartTwo*Nodes {
			continue
		}
		r := h.Run(ctx, c)
		t.Logf("%s: %s %s (%v, repairs %d)", c, r.Outcome, r.Detail, r.Took.Round(time.Millisecond), r.Repairs)
		if r.Outcome != Correct {
			t.Errorf("%s was %s: %s", c, r.Outcome, r.Detail)
		}
	}
}
