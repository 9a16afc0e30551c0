package par

import (
	"fmt"
	"path/filepath"
	"unsafe"
)

// Piggybacked identifier durability (the write-overhead work, docs/PAR.md).
//
// The journal can be written with O_DIRECT: a direct write completes once
// the device holds the bytes (in its volatile cache at worst), with no
// page cache in between. Written *before* the bbolt commit, the records
// then become durable with bbolt's own fdatasync of raft.db, which on the
// same block device issues a full cache flush after the direct write
// completed — so StoreLogs needs no fdatasync of its own and the
// identifiers are still durable before it returns. Conditions, checked at
// open: O_DIRECT accepted, raft.db and par-ids.log on the same device, and
// syncing enabled; otherwise the journal is fdatasync'ed as before. It
// relies on the file system issuing a cache flush for fdatasync (ext4 and
// xfs with barriers, their default). The journal file is preallocated with
// written zeros, so a direct overwrite changes no file-system metadata.
//
// Every journal write goes through the direct descriptor in this mode
// (sector-aligned read-modify-write of the tail sector, kept in memory),
// so the buffered and direct views never disagree. Sector atomicity of
// 512-byte writes is assumed, as for the records themselves (design §6).

const sectorSize = 512

// alignedBuf returns n zeroed bytes aligned to 4096 (O_DIRECT's buffer
// alignment).
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	off := (4096 - int(uintptr(unsafe.Pointer(&b[0]))&4095)) & 4095
	return b[off : off+n : off+n]
}

// enableDirect switches j to direct writes; tail is loaded from the file.
func (j *journal) enableDirect(path string) bool {
	f := openDirect(path)
	if f == nil {
		return false
	}
	j.tail = make([]byte, sectorSize)
	if start := j.next &^ (sectorSize - 1); start != j.next {
		if _, err := j.f.ReadAt(j.tail, start); err != nil {
			f.Close()
			return false
		}
		clear(j.tail[j.next-start:]) // slots after the tail are overwritten
	}
	j.direct = f
	return true
}

// writeDirect writes buf (whole records) at j.next through the direct
// descriptor, rewriting the partial tail sector from memory; with sync it
// also fdatasyncs. Caller holds wmu and has preallocated.
func (j *journal) writeDirect(buf []byte, sync bool) error {
	start := j.next &^ (sectorSize - 1)
	end := (j.next + int64(len(buf)) + sectorSize - 1) &^ (sectorSize - 1)
	n := int(end - start)
	if cap(j.dbuf) < n {
		j.dbuf = alignedBuf(max(n, 8*sectorSize))
	}
	region := j.dbuf[:n]
	copy(region, j.tail[:j.next-start])
	copy(region[j.next-start:], buf)
	clear(region[j.next-start+int64(len(buf)):]) // the rest of the last sector: empty slots
	if _, err := j.direct.WriteAt(region, start); err != nil {
		return fmt.Errorf("%w: direct write at %d: %w", ErrJournal, start, err)
	}
	if sync {
		if err := fdatasync(j.direct); err != nil {
			return fmt.Errorf("%w: sync: %w", ErrJournal, err)
		}
	}
	newNext := j.next + int64(len(buf))
	ts := newNext &^ (sectorSize - 1)
	clear(j.tail)
	if ts < end {
		copy(j.tail, region[ts-start:])
	}
	return nil
}

func (j *journal) closeDirect() error {
	if j.direct == nil {
		return nil
	}
	return j.direct.Close()
}

var filepathJoin = filepath.Join

// enablePiggyback turns the piggybacked mode on when its conditions hold.
func enablePiggyback(j *journal, cfg Config) bool {
	if cfg.NoSync || cfg.FsyncJournal {
		return false
	}
	jp, bp := j.f.Name(), filepathJoin(cfg.Dir, BoltFile)
	if !sameDevice(jp, bp) {
		return false
	}
	return j.enableDirect(jp)
}
