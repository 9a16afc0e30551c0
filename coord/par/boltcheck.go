package par

import (
	"encoding/binary"
	"fmt"
	"os"
)

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

// metaChecksumOK checks a meta page body's FNV-64a checksum.
func metaChecksumOK(m []byte) bool {
	h := uint64(14695981039346656037)
	for _, c := range m[:56] {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h == binary.LittleEndian.Uint64(m[56:])
}
