package par

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// An unreadable (EIO) sector of the identifier journal takes the same path
// as a corrupt one: the entries it identified are intact, so their
// identifiers are re-adopted; with their entries damaged too it is a
// double fault, never a silent loss.
func TestJournal_EIOSector(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 20, 1) // 20 records: sectors 0..2
	s.Close()
	s, err := Open(Config{Dir: dir, Name: "n1", NoSync: true, ReadFault: EIOSectors(JournalFile, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Report(); r.Adopted != 8 || len(r.Faulty) != 0 {
		t.Fatalf("report %+v, want the 8 identifiers of sector 1 adopted", r)
	}
	var l raft.Log
	for i := uint64(1); i <= 20; i++ {
		if err := s.Log.GetLog(i, &l); err != nil || l.Index != i {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
	}
	s.Close()

	// Sector 0 unreadable and entry 3 gone from bolt: a double fault.
	dir = t.TempDir()
	s = openTestStore(t, dir)
	storeN(t, s, 1, 20, 1)
	if err := s.bolt.DeleteRange(3, 3); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(Config{Dir: dir, Name: "n1", NoSync: true, ReadFault: EIOSectors(JournalFile, 0)})
	if !errors.Is(err, ErrDoubleFault) {
		t.Fatalf("err %v, want ErrDoubleFault", err)
	}
}
