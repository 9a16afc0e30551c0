package par

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// recKind is the kind of an identifier journal record.
type recKind byte

const (
	recAppend         recKind = 1 // entry (index, term, type, cksum) is durably in bolt
	recTruncateSuffix recKind = 2 // entries >= index are being deleted (raft conflict / repair discard)
	recCompactPrefix  recKind = 3 // entries <= index are being deleted (compaction)
	recAdopt          recKind = 4 // identifier re-derived from a verified entry at start-up
	// recBackfill is the identifier of an entry fetched from a peer's log
	// to close a gap below the first index (gapfill.go). It is pending:
	// it takes effect only with the recBackfillDone that follows it.
	recBackfill recKind = 5
	// recBackfillDone commits the pending backfill [index, term] (the term
	// field holds the last backfilled index): when every index of the
	// range is pending and the range ends right below the first index, the
	// entries join the view and the log starts at index.
	recBackfillDone recKind = 6
)

// recSize is the fixed record size: 8 records per 512-byte sector, so no
// record straddles a sector boundary.
const recSize = 64

// record layout: kind u8 | type u8 | seq u64 | index u64 | term u64 |
// entryCksum u32 | pad | crc32c u32 (over bytes 0..59).
type record struct {
	kind   recKind
	typ    byte
	seq    uint64
	index  uint64
	term   uint64
	cksum  uint32
	offset int64 // slot offset in the file (not encoded)
}

func (r record) encode() []byte {
	b := make([]byte, recSize)
	r.encodeTo(b)
	return b
}

// encodeTo writes the record into b[:recSize], which must be zeroed.
func (r record) encodeTo(b []byte) {
	b[0] = byte(r.kind)
	b[1] = r.typ
	binary.BigEndian.PutUint64(b[2:], r.seq)
	binary.BigEndian.PutUint64(b[10:], r.index)
	binary.BigEndian.PutUint64(b[18:], r.term)
	binary.BigEndian.PutUint32(b[26:], r.cksum)
	binary.BigEndian.PutUint32(b[60:], crc(b[:60]))
}

// slotState is what a 64-byte slot holds.
type slotState int

const (
	slotEmpty   slotState = iota // all zeros: never written (or a lost write at the tail)
	slotValid                    // checksum verifies
	slotCorrupt                  // non-zero and failing its checksum
)

func decodeRecord(b []byte) (record, slotState) {
	zero := true
	for _, c := range b {
		if c != 0 {
			zero = false
			break
		}
	}
	if zero {
		return record{}, slotEmpty
	}
	if binary.BigEndian.Uint32(b[60:]) != crc(b[:60]) {
		return record{}, slotCorrupt
	}
	r := record{
		kind:  recKind(b[0]),
		typ:   b[1],
		seq:   binary.BigEndian.Uint64(b[2:]),
		index: binary.BigEndian.Uint64(b[10:]),
		term:  binary.BigEndian.Uint64(b[18:]),
		cksum: binary.BigEndian.Uint32(b[26:]),
	}
	if r.kind < recAppend || r.kind > recBackfillDone {
		return record{}, slotCorrupt
	}
	return r, slotValid
}

// ident is the redundant identifier of one entry.
type ident struct {
	term  uint64
	typ   byte
	cksum uint32
}

// idView is the in-memory replay of the journal.
type idView struct {
	ids       map[uint64]ident
	first     uint64 // 0 when empty
	last      uint64 // 0 when empty
	compacted uint64 // highest index removed by compaction
	// terms is the term-range table: (start index, term), kept after
	// compaction so "which term was at i" survives.
	terms []termRange
	// corrupt counts slots that failed their checksum; corruptAfter is
	// true when a valid record follows a corrupt one (so the damage is not
	// a torn tail).
	corrupt      int
	corruptSlots []int64
	// pending holds recBackfill identifiers until their recBackfillDone.
	pending map[uint64]ident
}

type termRange struct{ start, term uint64 }

func newView() *idView { return &idView{ids: map[uint64]ident{}} }

// apply folds one valid record into the view.
func (v *idView) apply(r record) {
	switch r.kind {
	case recAdopt:
		// Re-derived identifier: fills a hole or extends the tail, never
		// truncates.
		v.ids[r.index] = ident{term: r.term, typ: r.typ, cksum: r.cksum}
		if v.first == 0 || r.index < v.first {
			v.first = r.index
		}
		if r.index > v.last {
			v.last = r.index
			if n := len(v.terms); n == 0 || v.terms[n-1].term != r.term {
				v.terms = append(v.terms, termRange{start: r.index, term: r.term})
			}
		}
	case recAppend:
		if v.last != 0 && r.index <= v.last {
			v.truncateFrom(r.index)
		}
		v.ids[r.index] = ident{term: r.term, typ: r.typ, cksum: r.cksum}
		if v.first == 0 {
			v.first = r.index
		}
		if r.index > v.last {
			v.last = r.index
		}
		if n := len(v.terms); n == 0 || v.terms[n-1].term != r.term {
			v.terms = append(v.terms, termRange{start: r.index, term: r.term})
		}
	case recTruncateSuffix:
		v.truncateFrom(r.index)
	case recBackfill:
		if v.pending == nil {
			v.pending = map[uint64]ident{}
		}
		v.pending[r.index] = ident{term: r.term, typ: r.typ, cksum: r.cksum}
	case recBackfillDone:
		v.commitBackfill(r.index, r.term)
		v.pending = nil
	case recCompactPrefix:
		for i := v.first; i <= r.index && i <= v.last && i != 0; i++ {
			delete(v.ids, i)
		}
		if r.index > v.compacted {
			v.compacted = r.index
		}
		if r.index >= v.last {
			v.first, v.last = 0, 0
		} else if r.index >= v.first {
			v.first = r.index + 1
		}
	}
}

// commitBackfill makes the pending identifiers lo..hi part of the log when
// they are all there and hi+1 is the first index (else nothing changes: a
// torn backfill is ignored, and start-up deletes its entries from bolt as
// an unfinished compaction). Indexes below lo stay compacted (they are in
// the snapshot the backfill was aligned to).
func (v *idView) commitBackfill(lo, hi uint64) {
	if lo == 0 || lo > hi || v.first != hi+1 {
		return
	}
	for i := lo; i <= hi; i++ {
		if _, ok := v.pending[i]; !ok {
			return
		}
	}
	var terms []termRange
	add := func(start, term uint64) {
		if n := len(terms); n == 0 || terms[n-1].term != term {
			terms = append(terms, termRange{start: start, term: term})
		}
	}
	for _, tr := range v.terms {
		if tr.start < lo {
			add(tr.start, tr.term)
		}
	}
	for i := lo; i <= hi; i++ {
		v.ids[i] = v.pending[i]
		add(i, v.pending[i].term)
	}
	add(hi+1, v.ids[hi+1].term)
	for _, tr := range v.terms {
		if tr.start > hi+1 {
			add(tr.start, tr.term)
		}
	}
	v.terms = terms
	v.first = lo
	v.compacted = lo - 1
}

func (v *idView) truncateFrom(from uint64) {
	if v.last == 0 || from > v.last {
		return
	}
	for i := max(from, v.first); i <= v.last; i++ {
		delete(v.ids, i)
	}
	if from <= v.first {
		v.first, v.last = 0, 0
	} else {
		v.last = from - 1
	}
	for len(v.terms) > 0 && v.terms[len(v.terms)-1].start >= from {
		v.terms = v.terms[:len(v.terms)-1]
	}
}

// termAt reports the term the view knows for index i (live or compacted).
func (v *idView) termAt(i uint64) (uint64, bool) {
	if id, ok := v.ids[i]; ok {
		return id.term, true
	}
	for k := len(v.terms) - 1; k >= 0; k-- {
		if v.terms[k].start <= i {
			if i > v.last && v.last != 0 {
				return 0, false
			}
			return v.terms[k].term, true
		}
	}
	return 0, false
}

// journal is the append-only identifier journal file.
type journal struct {
	wmu  sync.Mutex // serialises writes to the file tail
	f    *os.File
	next int64  // offset of the next slot
	size int64  // file size (zeros preallocated beyond next)
	seq  uint64 // next sequence number
	view *idView
	// noSync skips fdatasync (tests and the fault tool's fast mode only).
	noSync bool
	fault  ReadFault
	// direct, when set, takes every write (direct.go); tail mirrors the
	// file's partial last sector.
	direct *os.File
	tail   []byte
	dbuf   []byte // reused aligned buffer of direct writes (under wmu)
}

// openJournal opens (creating) path and replays it. fault, when set,
// injects read errors (ReadFault).
func openJournal(path string, fault ReadFault) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %w", ErrJournal, path, err)
	}
	j := &journal{f: f, view: newView(), fault: fault}
	if err := j.replay(); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

func (j *journal) replay() error {
	buf := make([]byte, recSize)
	var off int64
	lastValid := int64(-recSize)
	for {
		_, err := j.f.ReadAt(buf, off)
		if errors.Is(err, io.EOF) {
			break // a short final slot is a torn append: ignored, overwritten
		}
		if err == nil && j.fault != nil {
			err = j.fault(JournalFile, off, recSize)
		}
		r, st := decodeRecord(buf)
		if err != nil {
			// A read error (EIO on a bad sector) takes the corrupt-record
			// path: the slot's identifier is unknown, classification
			// decides from the entry (adopt, or double fault).
			st = slotCorrupt
		}
		switch st {
		case slotValid:
			j.view.apply(r)
			if r.seq >= j.seq {
				j.seq = r.seq + 1
			}
			lastValid = off
		case slotCorrupt:
			j.view.corrupt++
			j.view.corruptSlots = append(j.view.corruptSlots, off)
		}
		off += recSize
	}
	// Append after the last valid record: trailing corrupt or empty slots
	// are a torn or lost tail and are overwritten.
	j.next = lastValid + recSize
	j.size = off
	// Corrupt slots after the last valid record are not mid-journal damage.
	k := 0
	for _, s := range j.view.corruptSlots {
		if s < j.next {
			j.view.corruptSlots[k] = s
			k++
		}
	}
	j.view.corruptSlots = j.view.corruptSlots[:k]
	j.view.corrupt = k
	return nil
}

// write puts records at the tail and syncs them, without touching the
// view (the caller applies them once the entries are durable too).
func (j *journal) write(recs []record) error { return j.writeRecs(recs, !j.noSync) }

// writeRecs is write with the sync chosen by the caller: without it the
// records are durable only once a later flush of the device happens (the
// piggybacked mode, direct.go).
func (j *journal) writeRecs(recs []record, sync bool) error {
	if len(recs) == 0 {
		return nil
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	buf := make([]byte, len(recs)*recSize)
	for i := range recs {
		recs[i].seq = j.seq
		j.seq++
		recs[i].encodeTo(buf[i*recSize:])
	}
	if err := j.preallocate(j.next + int64(len(buf))); err != nil {
		return err
	}
	if j.direct != nil {
		if err := j.writeDirect(buf, sync); err != nil {
			return err
		}
		j.next += int64(len(buf))
		return nil
	}
	if _, err := j.f.WriteAt(buf, j.next); err != nil {
		return fmt.Errorf("%w: write at %d: %w", ErrJournal, j.next, err)
	}
	if sync {
		if err := fdatasync(j.f); err != nil {
			return fmt.Errorf("%w: sync: %w", ErrJournal, err)
		}
	}
	j.next += int64(len(buf))
	return nil
}

// preallocChunk is how far the journal is extended with written zeros at a
// time, so that record appends overwrite allocated blocks (no size change,
// so fdatasync need not commit file-system metadata) and a wrong file size
// is visible.
const preallocChunk = 1 << 20

// preallocate makes sure the file holds initialised zeros up to end.
func (j *journal) preallocate(end int64) error {
	if end <= j.size {
		return nil
	}
	zeros := make([]byte, preallocChunk)
	for j.size < end {
		if _, err := j.f.WriteAt(zeros, j.size); err != nil {
			return fmt.Errorf("%w: preallocate at %d: %w", ErrJournal, j.size, err)
		}
		j.size += preallocChunk
	}
	if !j.noSync {
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("%w: sync preallocation: %w", ErrJournal, err)
		}
	}
	return nil
}

// applyAll folds written records into the view (caller holds the view lock).
func (j *journal) applyAll(recs []record) {
	for _, r := range recs {
		j.view.apply(r)
	}
}

// sync makes every record written so far durable (fdatasync of the
// descriptor writes go through). It takes no lock: DeleteRange syncs its
// record outside the view lock and wmu, so appends are not held up by it.
func (j *journal) sync() error {
	if j.noSync {
		return nil
	}
	f := j.f
	if j.direct != nil {
		f = j.direct
	}
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("%w: sync: %w", ErrJournal, err)
	}
	return nil
}

// append writes records and applies them to the view.
func (j *journal) append(recs ...record) error {
	if err := j.write(recs); err != nil {
		return err
	}
	j.applyAll(recs)
	return nil
}

func (j *journal) close() error { return errors.Join(j.closeDirect(), j.f.Close()) }
