package par

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// The piggybacked journal (O_DIRECT, read-modify-write of the tail sector)
// must leave exactly the records a buffered journal would: batches of odd
// sizes straddle sector boundaries, other record kinds go through the same
// descriptor, and a reopen replays everything.
func TestJournal_PiggybackedDirectWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Name: "n1", ParallelJournal: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Log.piggyback {
		s.Close()
		t.Skip("O_DIRECT or same-device check unavailable here: piggybacked mode off")
	}
	idx := uint64(1)
	for _, n := range []int{1, 7, 3, 9, 1, 16, 5} {
		var batch []*raft.Log
		for k := 0; k < n; k++ {
			batch = append(batch, &raft.Log{Index: idx, Term: 2, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d", idx))})
			idx++
		}
		if err := s.Log.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
	}
	last := idx - 1
	// A suffix truncation record through the same descriptor, then more.
	if err := s.Log.DeleteRange(last-1, last); err != nil {
		t.Fatal(err)
	}
	last -= 2
	if err := s.Log.StoreLogs([]*raft.Log{{Index: last + 1, Term: 3, Type: raft.LogCommand, Data: []byte("after")}}); err != nil {
		t.Fatal(err)
	}
	last++
	s.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	// 42 appends, one truncation, one append: 44 records, contiguous.
	if n := len(bytes.TrimRight(raw, "\x00")); (n+recSize-1)/recSize != 44 {
		t.Fatalf("journal holds %d bytes of records, want 44 records", n)
	}
	s, err = Open(Config{Dir: dir, Name: "n1", ParallelJournal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r := s.Report(); len(r.Faulty) != 0 || r.Adopted != 0 || r.TornDiscarded != 0 {
		t.Fatalf("report %+v after a clean reopen", r)
	}
	if got, _ := s.Log.LastIndex(); got != last {
		t.Fatalf("last %d, want %d", got, last)
	}
	for i := uint64(1); i <= last; i++ {
		var l raft.Log
		if err := s.Log.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if i == last && string(l.Data) != "after" {
			t.Fatalf("last entry %q", l.Data)
		}
	}
}
