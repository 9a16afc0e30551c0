package par

import (
	"fmt"
	"syscall"
)

// ReadFault is the fault-injecting read layer for par-owned files (design
// §5.3 "read error (EIO): par-owned files: a fault-injecting fsys layer").
// par consults it after every read of the identifier journal: a non-nil
// error is handled exactly as a failed read(2) would be. file is the base
// name (JournalFile); off and n the byte range read. Production leaves it
// nil. raft.db is read through bbolt's mmap, out of this layer's reach;
// its EIO is injected below the process instead, by a FUSE loopback mount
// (parfault family K, eiofs.go; the design's dm-dust target is not built).
type ReadFault func(file string, off int64, n int) error

// EIOSectors returns a ReadFault failing every read of file that touches
// one of the given 512-byte sectors with EIO.
func EIOSectors(file string, sectors ...int64) ReadFault {
	bad := map[int64]bool{}
	for _, s := range sectors {
		bad[s] = true
	}
	return func(f string, off int64, n int) error {
		if f != file {
			return nil
		}
		for s := off / 512; s <= (off+int64(n)-1)/512; s++ {
			if bad[s] {
				return fmt.Errorf("read %s at %d: %w", f, off, syscall.EIO)
			}
		}
		return nil
	}
}

// classifyRange is the index range start-up classification walks with
// identifier semantics: the journal's [first, last], extended down to
// bolt's first key when damaged records (corrupt or unreadable) precede
// the first valid one, and to bolt's whole range when no record is valid
// at all but some are damaged. Entries there have an identifier that
// existed and cannot be read: adopt if intact, else a double fault —
// never a silent gap before FirstIndex, never a torn-tail discard.
func classifyRange(v *idView, boltFirst, boltLast uint64) (lo, hi uint64) {
	lo, hi = v.first, v.last
	if v.corrupt == 0 || boltFirst == 0 || boltFirst <= v.compacted {
		return lo, hi
	}
	if v.first == 0 {
		return boltFirst, boltLast
	}
	if boltFirst < v.first {
		lo = boltFirst
	}
	return lo, hi
}
