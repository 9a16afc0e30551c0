package par

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"go.etcd.io/bbolt"
)

// BoltOptions are par's bbolt options for raft.db. Unlike plain storage
// (replica's etcd options), the free list is synced at every commit.
// Without a synced free list bbolt rebuilds it by walking the whole tree
// at open and after every rolled-back write transaction, and that walk
// panics in a goroutine of its own on a damaged page, out of guard's
// reach: a page damaged while the node runs, then a failed write (a
// repair's rewrite, say), killed the process (found by the parfault
// sample).
//
// The free list is an array, not a hash map: a synced map free list is
// enumerated and sorted at every commit, which after a log compaction (tens
// of thousands of free pages) cost 15-30x a commit's CPU and a quarter of
// the leader's (docs/RELIABILITY.md, Overload). The array is kept sorted,
// so its write is a copy. Either way a synced free list writes every free
// page id at every commit: after a compaction PAR's commits cost about
// twice plain storage's until bbolt reuses the freed pages (docs/PAR.md,
// "Session 7"). On a fresh log the two free lists measure alike.
func BoltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout:      time.Second,
		FreelistType: bbolt.FreelistArrayType,
	}
}

// checkBoltPages validates the bbolt pages that raft-boltdb touches
// before any walk is possible, against the newer valid meta page: the
// freelist page (flag, id, overflow and every free page id below the
// high-water mark) and the root bucket's root page (flag, id, overflow).
// Found by coordfault family I: a freelist page whose overflow field is
// garbage makes bbolt's first commit after open free billions of pages —
// an effective hang, not a panic guard() could catch.
func checkBoltPages(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	ps := int64(os.Getpagesize())
	var root, free, hwm, bestTx uint64
	found := false
	for k := int64(0); k < 2; k++ {
		b := make([]byte, 16+64)
		if _, err := f.ReadAt(b, k*ps); err != nil {
			continue
		}
		m := b[16:]
		if binary.LittleEndian.Uint32(m) != 0xED0CDAED || !metaChecksumOK(m) {
			continue
		}
		if k == 0 {
			ps = int64(binary.LittleEndian.Uint32(m[8:]))
		}
		if tx := binary.LittleEndian.Uint64(m[48:]); !found || tx > bestTx {
			found, bestTx = true, tx
			root, free, hwm = binary.LittleEndian.Uint64(m[16:]), binary.LittleEndian.Uint64(m[32:]), binary.LittleEndian.Uint64(m[40:])
		}
	}
	if !found {
		return fmt.Errorf("bbolt: both meta pages damaged")
	}
	if ps <= 0 || hwm*uint64(ps) > uint64(size) {
		return fmt.Errorf("bbolt: high-water page %d beyond the file", hwm)
	}
	page := func(id uint64, want uint16) (hdr []byte, err error) {
		if id < 2 || id >= hwm {
			return nil, fmt.Errorf("bbolt: page id %d outside [2,%d)", id, hwm)
		}
		hdr = make([]byte, 16)
		if _, err := f.ReadAt(hdr, int64(id)*ps); err != nil {
			return nil, fmt.Errorf("bbolt: read page %d: %w", id, err)
		}
		if got := binary.LittleEndian.Uint64(hdr); got != id {
			return nil, fmt.Errorf("bbolt: page %d says it is page %d", id, got)
		}
		if flags := binary.LittleEndian.Uint16(hdr[8:]); flags&want == 0 {
			return nil, fmt.Errorf("bbolt: page %d has flags %#x, want %#x", id, flags, want)
		}
		if ov := uint64(binary.LittleEndian.Uint32(hdr[12:])); id+ov >= hwm {
			return nil, fmt.Errorf("bbolt: page %d overflows %d pages past the high-water mark %d", id, ov, hwm)
		}
		return hdr, nil
	}
	if _, err := page(root, 0x01|0x02); err != nil { // branch or leaf
		return fmt.Errorf("root: %w", err)
	}
	if err := walkBoltTree(f, ps, root, hwm); err != nil {
		return err
	}
	if free == ^uint64(0) { // freelist not synced
		return nil
	}
	hdr, err := page(free, 0x10)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	count, off := uint64(binary.LittleEndian.Uint16(hdr[10:])), int64(free)*ps+16
	if count == 0xFFFF {
		b := make([]byte, 8)
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("freelist: %w", err)
		}
		count, off = binary.LittleEndian.Uint64(b), off+8
	}
	if count > hwm {
		return fmt.Errorf("bbolt: freelist lists %d pages, the file has %d", count, hwm)
	}
	ids := make([]byte, 8*count)
	if _, err := f.ReadAt(ids, off); err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	for i := uint64(0); i < count; i++ {
		if id := binary.LittleEndian.Uint64(ids[8*i:]); id < 2 || id >= hwm {
			return fmt.Errorf("bbolt: freelist lists page %d outside [2,%d)", id, hwm)
		}
	}
	return nil
}

// walkBoltTree reads every page reachable from the root bucket's root
// page with pread, so that an unreadable page (EIO) is an error here
// rather than a SIGBUS later under bbolt's mmap, and checks what bbolt's
// own free-page scan would report by panicking in a goroutine of its own:
// every page id inside [2, hwm), no page referenced twice, only branch and
// leaf pages, and element offsets inside their page. Sub-buckets are
// followed, inline ones included.
func walkBoltTree(f *os.File, ps int64, root, hwm uint64) error {
	const hdrSize, elemSize = 16, 16
	seen := map[uint64]bool{}
	var walkPage func(id uint64, depth int) error
	var walkNodes func(p []byte, what string, depth int) error
	walkPage = func(id uint64, depth int) error {
		if depth > 64 {
			return fmt.Errorf("bbolt: tree deeper than 64 at page %d", id)
		}
		if id < 2 || id >= hwm {
			return fmt.Errorf("bbolt: page id %d outside [2,%d)", id, hwm)
		}
		hdr := make([]byte, hdrSize)
		if _, err := f.ReadAt(hdr, int64(id)*ps); err != nil {
			return fmt.Errorf("bbolt: read page %d: %w", id, err)
		}
		if got := binary.LittleEndian.Uint64(hdr); got != id {
			return fmt.Errorf("bbolt: page %d says it is page %d", id, got)
		}
		ov := uint64(binary.LittleEndian.Uint32(hdr[12:]))
		if id+ov >= hwm {
			return fmt.Errorf("bbolt: page %d overflows %d pages past the high-water mark %d", id, ov, hwm)
		}
		for i := uint64(0); i <= ov; i++ {
			if seen[id+i] {
				return fmt.Errorf("bbolt: page %d: multiple references", id+i)
			}
			seen[id+i] = true
		}
		p := make([]byte, int64(ov+1)*ps)
		if _, err := f.ReadAt(p, int64(id)*ps); err != nil {
			return fmt.Errorf("bbolt: read page %d: %w", id, err)
		}
		return walkNodes(p, fmt.Sprintf("page %d", id), depth)
	}
	walkNodes = func(p []byte, what string, depth int) error {
		if len(p) < hdrSize {
			return fmt.Errorf("bbolt: %s: %d bytes", what, len(p))
		}
		flags := binary.LittleEndian.Uint16(p[8:])
		count := int(binary.LittleEndian.Uint16(p[10:]))
		if flags&0x03 == 0 {
			return fmt.Errorf("bbolt: %s has flags %#x, want a branch or leaf", what, flags)
		}
		if hdrSize+count*elemSize > len(p) {
			return fmt.Errorf("bbolt: %s: %d elements do not fit", what, count)
		}
		for i := 0; i < count; i++ {
			e := hdrSize + i*elemSize
			switch {
			case flags&0x01 != 0: // branch: pos, ksize, pgid
				pos, ks := int(binary.LittleEndian.Uint32(p[e:])), int(binary.LittleEndian.Uint32(p[e+4:]))
				if e+pos+ks > len(p) {
					return fmt.Errorf("bbolt: %s: branch element %d out of the page", what, i)
				}
				if err := walkPage(binary.LittleEndian.Uint64(p[e+8:]), depth+1); err != nil {
					return err
				}
			case flags&0x02 != 0: // leaf: flags, pos, ksize, vsize
				lf := binary.LittleEndian.Uint32(p[e:])
				pos, ks, vs := int(binary.LittleEndian.Uint32(p[e+4:])), int(binary.LittleEndian.Uint32(p[e+8:])), int(binary.LittleEndian.Uint32(p[e+12:]))
				if pos < 0 || ks < 0 || vs < 0 || e+pos+ks+vs > len(p) {
					return fmt.Errorf("bbolt: %s: leaf element %d out of the page", what, i)
				}
				if lf&0x01 == 0 { // a key/value, not a sub-bucket
					continue
				}
				v := p[e+pos+ks : e+pos+ks+vs]
				if len(v) < 16 {
					return fmt.Errorf("bbolt: %s: bucket header of %d bytes", what, len(v))
				}
				var err error
				if r := binary.LittleEndian.Uint64(v); r == 0 {
					err = walkNodes(v[16:], what+" (inline bucket)", depth+1)
				} else {
					err = walkPage(r, depth+1)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walkPage(root, 0)
}

// metaChecksumOK checks a meta page body's FNV-64a checksum.
func metaChecksumOK(m []byte) bool {
	h := uint64(14695981039346656037)
	for _, c := range m[:56] {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h == binary.LittleEndian.Uint64(m[56:])
}
