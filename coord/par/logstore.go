package par

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultRepairWait bounds how long GetLog waits for a runtime repair.
const DefaultRepairWait = 10 * time.Second

// Fetcher gets a verified copy of entry (index, term) from a peer: the
// envelope bytes of an intact copy whose checksum equals cksum. The repair
// client implements it; nil means no runtime repair.
type Fetcher interface {
	Fetch(ctx context.Context, index, term uint64, cksum uint32) ([]byte, error)
}

// Stats are the LogStore's counters (exported as metrics by the server).
type Stats struct {
	Faulty        int64 // entries currently known faulty
	Repairs       int64 // entries repaired from a peer
	RepairFails   int64 // runtime repairs that timed out or failed
	Truncations   int64 // suffixes discarded by the repair rules or as torn tails
	Adopted       int64 // identifiers re-derived at start-up
	RepairedBytes int64 // envelope bytes received in repairs
	GapFilled     int64 // entries fetched from a peer's log to close a gap (gapfill.go)
	GapBytes      int64 // envelope bytes of those entries
	// Compactions: log prefix compactions started (one after each raft
	// snapshot, and start-up's finishing of an interrupted one);
	// CompactBusy and CompactPaused: their time in chunk transactions
	// (an append's wait for the gate included) and in the pauses between
	// chunks (DefaultCompactPace).
	Compactions                int64
	CompactBusy, CompactPaused time.Duration
}

// LogStore is a raft.LogStore that keeps each entry in the inner store as a
// checksummed envelope and its identifier in a separate append-only
// journal, and never hands raft bytes that do not verify.
type LogStore struct {
	inner raft.LogStore
	bolt  *boltLog // inner, when par opened raft.db itself (the write hook)
	j     *journal
	mu    sync.RWMutex // guards j (and its view)

	// parallel writes the identifiers concurrently with the bolt commit
	// (no added fsync latency; a crash can leave the last batch FAULTY
	// instead of torn, so it needs peers: multi-node clusters only).
	parallel bool
	// piggyback writes the identifiers with O_DIRECT before the bolt
	// commit, whose fdatasync makes them durable too (direct.go).
	piggyback bool

	fetcher    atomic.Pointer[fetcherBox]
	repairWait time.Duration
	repairMu   sync.Mutex // one runtime repair at a time

	faulty         sync.Map // index -> struct{}
	nFaulty        atomic.Int64
	repairs        atomic.Int64
	repairFails    atomic.Int64
	truncations    atomic.Int64
	adopted        atomic.Int64
	repairedBytes  atomic.Int64
	gapFilled      atomic.Int64
	gapFilledBytes atomic.Int64

	// compactGate lets appends go first while a compaction deletes its
	// prefix from raft.db in chunks (compactPrefix): each chunk's bbolt
	// transaction runs under the read lock, StoreLogs and the conflict
	// truncation under the write lock, and sync.RWMutex blocks new readers
	// once a writer waits, so an append waits for at most the one chunk in
	// progress (bbolt's own writer lock is a plain mutex, which the
	// compaction's next chunk can take again before the woken append runs).
	compactGate sync.RWMutex
	// compactChunk is the most keys one compaction transaction deletes
	// (0: DefaultCompactChunk; tests and the benchmark set it; math.MaxInt
	// deletes the whole prefix in one transaction, as before chunking).
	compactChunk int
	// compactHook, when set (tests), runs after each committed chunk of a
	// compaction with the chunk's number (1, 2, ...); an error stops the
	// compaction there, as a crash between two chunks would.
	compactHook func(chunk int) error
	// compactPace is how long a compaction pauses after a chunk, as a
	// multiple of that chunk's transaction (0: DefaultCompactPace;
	// negative: no pause, back to back as before pacing — the benchmark's
	// "before"). compactBusy and compactPaused add up the compaction's
	// time in its transactions and in its pauses (tests, benchmark).
	compactPace                float64
	compactBusy, compactPaused atomic.Int64
	compactions                atomic.Int64

	lastAppend              atomic.Int64 // unix nanos of the last StoreLogs (the scrubber backs off)
	journalWait             atomic.Int64 // nanoseconds StoreLogs waited for the overlapped journal write (bench)
	scrubPos, scrubLast     atomic.Uint64
	scrubPasses, scrubFound atomic.Int64
}

type fetcherBox struct{ f Fetcher }

var _ raft.LogStore = (*LogStore)(nil)

// newLogStore wraps inner with the journal at path.
func newLogStore(inner raft.LogStore, journalPath string, noSync bool, fault ReadFault) (*LogStore, error) {
	j, err := openJournal(journalPath, fault)
	if err != nil {
		return nil, err
	}
	j.noSync = noSync
	return &LogStore{inner: inner, j: j, repairWait: DefaultRepairWait}, nil
}

// SetFetcher installs the runtime repair source (nil disables).
func (s *LogStore) SetFetcher(f Fetcher) { s.fetcher.Store(&fetcherBox{f}) }

// Stats returns the counters.
func (s *LogStore) Stats() Stats {
	return Stats{
		Faulty: s.nFaulty.Load(), Repairs: s.repairs.Load(), RepairFails: s.repairFails.Load(),
		Truncations: s.truncations.Load(), Adopted: s.adopted.Load(), RepairedBytes: s.repairedBytes.Load(),
		GapFilled: s.gapFilled.Load(), GapBytes: s.gapFilledBytes.Load(),
		Compactions: s.compactions.Load(), CompactBusy: time.Duration(s.compactBusy.Load()),
		CompactPaused: time.Duration(s.compactPaused.Load()),
	}
}

// FirstIndex reports the identifier view's first index, not bolt's.
func (s *LogStore) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.j.view.first, nil
}

// LastIndex reports the identifier view's last index, so an entry lost at
// the tail stays visible to elections as a held (faulty) entry.
func (s *LogStore) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.j.view.last, nil
}

// ident returns the identifier of index i.
func (s *LogStore) ident(i uint64) (ident, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.j.view.ids[i]
	return id, ok
}

// GetLog returns entry idx after verifying it against its envelope and its
// identifier. A faulty entry is repaired from a peer if possible, else the
// call fails with a *FaultError (errors.Is ErrEntryUnavailable).
func (s *LogStore) GetLog(idx uint64, out *raft.Log) error {
	id, ok := s.ident(idx)
	if !ok {
		return raft.ErrLogNotFound
	}
	l, _, err := s.readVerified(idx, id)
	if err == nil {
		*out = *l
		return nil
	}
	s.markFaulty(idx)
	if l, rerr := s.repairNow(idx, id); rerr == nil {
		*out = *l
		return nil
	}
	s.repairFails.Add(1)
	return &FaultError{Index: idx, Term: id.term, Reason: err.Error()}
}

// readVerified reads idx from the inner store and checks it against id.
// It returns the entry and its envelope bytes.
func (s *LogStore) readVerified(idx uint64, id ident) (*raft.Log, []byte, error) {
	var raw raft.Log
	if err := guard(func() error { return s.inner.GetLog(idx, &raw) }); err != nil {
		return nil, nil, err
	}
	l, c, err := decodeEnvelope(raw.Data)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case l.Index != idx || raw.Index != idx:
		return nil, nil, fmt.Errorf("%w: envelope index %d at key %d", ErrBadEnvelope, l.Index, idx)
	case l.Term != id.term || raw.Term != id.term:
		return nil, nil, fmt.Errorf("%w: envelope term %d, identifier term %d", ErrBadEnvelope, l.Term, id.term)
	case c != id.cksum:
		return nil, nil, fmt.Errorf("%w: checksum %08x, identifier says %08x", ErrBadEnvelope, c, id.cksum)
	}
	return l, raw.Data, nil
}

// guard runs an inner-store call so that a SIGBUS on its mmap or a bbolt
// page panic becomes an error.
func guard(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("inner store panicked: %v", r)
		}
	}()
	return f()
}

func (s *LogStore) markFaulty(idx uint64) {
	if _, loaded := s.faulty.LoadOrStore(idx, struct{}{}); !loaded {
		s.nFaulty.Add(1)
	}
}

func (s *LogStore) clearFaulty(idx uint64) {
	if _, ok := s.faulty.LoadAndDelete(idx); ok {
		s.nFaulty.Add(-1)
	}
}

// repairNow fetches idx from a peer (rule 1: any intact holder) and
// rewrites it, waiting at most repairWait.
func (s *LogStore) repairNow(idx uint64, id ident) (*raft.Log, error) {
	box := s.fetcher.Load()
	if box == nil || box.f == nil {
		return nil, errors.New("no repair source")
	}
	s.repairMu.Lock()
	defer s.repairMu.Unlock()
	// Another caller may have repaired it meanwhile.
	if l, _, err := s.readVerified(idx, id); err == nil {
		return l, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.repairWait)
	defer cancel()
	env, err := box.f.Fetch(ctx, idx, id.term, id.cksum)
	if err != nil {
		return nil, err
	}
	return s.installRepaired(idx, id, env)
}

// installRepaired verifies env against our own identifier and rewrites the
// entry in the inner store (no journal record: the identifier is unchanged).
func (s *LogStore) installRepaired(idx uint64, id ident, env []byte) (*raft.Log, error) {
	l, c, err := decodeEnvelope(env)
	if err != nil {
		return nil, err
	}
	if l.Index != idx || l.Term != id.term || c != id.cksum {
		return nil, fmt.Errorf("%w: repaired copy (%d,%d,%08x) does not match identifier (%d,%d,%08x)",
			ErrBadEnvelope, l.Index, l.Term, c, idx, id.term, id.cksum)
	}
	rec := &raft.Log{Index: idx, Term: l.Term, Type: l.Type, Data: env}
	if err := guard(func() error { return s.inner.StoreLogs([]*raft.Log{rec}) }); err != nil {
		return nil, fmt.Errorf("rewrite repaired entry %d: %w", idx, err)
	}
	s.clearFaulty(idx)
	s.repairs.Add(1)
	s.repairedBytes.Add(int64(len(env)))
	return l, nil
}

// StoreLog stores one entry.
func (s *LogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs writes the envelopes to the inner store (one durable commit),
// then the identifiers to the journal (fdatasync), then returns. It never
// mutates the caller's logs.
func (s *LogStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.compactGate.Lock() // ahead of a running compaction's next chunk
	defer s.compactGate.Unlock()
	s.lastAppend.Store(time.Now().UnixNano())
	// One allocation each for the envelopes, the copies and the records
	// (the inner store encodes the values into its own buffers).
	n := 0
	for _, l := range logs {
		n += envelopeLen(l)
	}
	envs := make([]byte, n)
	copies := make([]*raft.Log, len(logs))
	backing := make([]raft.Log, len(logs))
	recs := make([]record, len(logs))
	for i, l := range logs {
		m := envelopeLen(l)
		env := envs[:m:m]
		envs = envs[m:]
		c := encodeEnvelopeTo(env, l)
		backing[i] = raft.Log{Index: l.Index, Term: l.Term, Type: l.Type, Data: env}
		copies[i] = &backing[i]
		recs[i] = record{kind: recAppend, typ: byte(l.Type), index: l.Index, term: l.Term, cksum: c}
	}
	if s.piggyback && s.bolt != nil {
		// The identifiers' direct write runs while the entries are
		// encoded into the bolt transaction; the commit starts only once
		// it completed, so bbolt's fdatasync of raft.db flushes it too.
		// Same durability as below, without the write's latency on top.
		jerrc := make(chan error, 1)
		go func() { jerrc <- s.j.writeRecs(recs, false) }()
		var jerr error
		waited := false
		berr := guard(func() error {
			return s.bolt.storeLogs(copies, func() error {
				waited = true
				t0 := time.Now()
				jerr = <-jerrc
				s.journalWait.Add(int64(time.Since(t0)))
				return jerr
			})
		})
		if !waited {
			jerr = <-jerrc
		}
		if jerr != nil { // nothing committed: the hook aborted the commit, or bolt failed first
			if berr != nil && !errors.Is(berr, jerr) {
				return errors.Join(berr, jerr)
			}
			return jerr
		}
		if berr != nil {
			// Identifiers written for entries bolt does not hold:
			// retract them before raft retries.
			s.mu.Lock()
			s.j.applyAll(recs)
			_ = s.j.append(record{kind: recTruncateSuffix, index: logs[0].Index})
			s.mu.Unlock()
			return berr
		}
	} else if s.piggyback {
		// Identifiers first (a direct write, no flush), then the bolt
		// commit, whose fdatasync flushes the device after the journal
		// write completed: both durable before returning, one flush
		// sequence. A crash in between leaves identifiers without entries
		// (FAULTY, decided by peers), as in the parallel mode.
		if err := s.j.writeRecs(recs, false); err != nil {
			return err
		}
		if err := guard(func() error { return s.inner.StoreLogs(copies) }); err != nil {
			s.mu.Lock()
			s.j.applyAll(recs)
			_ = s.j.append(record{kind: recTruncateSuffix, index: logs[0].Index})
			s.mu.Unlock()
			return err
		}
	} else if s.parallel {
		// The paper's ordering: entry and identifier written concurrently,
		// both durable before returning. A crash between them leaves either
		// an intact entry without identifier (re-adopted at start-up) or an
		// identifier whose entry is missing: FAULTY, resolved by peers.
		errc := make(chan error, 1)
		go func() { errc <- s.j.write(recs) }()
		berr := guard(func() error { return s.inner.StoreLogs(copies) })
		jerr := <-errc
		if berr != nil || jerr != nil {
			if jerr == nil {
				// Identifiers are durable for entries bolt may not hold:
				// retract them before raft retries.
				s.mu.Lock()
				s.j.applyAll(recs)
				_ = s.j.append(record{kind: recTruncateSuffix, index: logs[0].Index})
				s.mu.Unlock()
			}
			return errors.Join(berr, jerr)
		}
	} else {
		// Entry durable first, then its identifier: a present identifier
		// always means the entry reached a durable bbolt commit.
		if err := guard(func() error { return s.inner.StoreLogs(copies) }); err != nil {
			return err
		}
		if err := s.j.write(recs); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.j.applyAll(recs)
	s.mu.Unlock()
	return nil
}

// DefaultCompactChunk is the most raft.db keys one compaction transaction
// deletes. A compaction of 65,536 entries (coord/replica's snapshot
// threshold) in one bbolt write transaction took 40-65 ms in
// BenchmarkCompactionStall (90,000: 80-130 ms), and every StoreLogs waited
// for all of it (bbolt has one writer at a time); in chunks of this size
// an append waits for one chunk at most (docs/PAR.md, "Compaction in
// chunks").
const DefaultCompactChunk = 2048

// compactChunkBytes also bounds a compaction transaction, by the bytes of
// the keys and values it deletes (the pages it frees): 2,048 coord entries
// are ~0.4 MiB, so this only shortens chunks of large entries.
const compactChunkBytes = 1 << 20

// DefaultCompactPace: after each chunk a compaction pauses as long as
// the chunk's transaction took (up to maxCompactPause), so it uses at
// most about half of the time — of the CPU, of the disk's syncs — while
// it runs. A compaction is background work (raft's snapshot goroutine;
// nothing waits for it), and run back to back its ~27 chunks of a
// 65,536-entry snapshot held the node's core and disk for their whole
// length (docs/PAR.md, "Compaction in chunks": pacing).
const DefaultCompactPace = 1.0

// maxCompactPause bounds one pause, so a chunk slowed by a stalled disk
// does not stretch the compaction by as much again.
const maxCompactPause = 50 * time.Millisecond

// compactPause is the pause after a chunk whose transaction took busy.
func compactPause(busy time.Duration, pace float64) time.Duration {
	if pace == 0 {
		pace = DefaultCompactPace
	}
	if pace < 0 {
		return 0
	}
	return min(time.Duration(float64(busy)*pace), maxCompactPause)
}

// DeleteRange removes [min, max]. A suffix (raft's conflict path) is
// journalled before the delete; so is a prefix (compaction).
//
// A prefix is then deleted from raft.db in chunks (compactPrefix), with
// appends running between them: raft calls DeleteRange for a compaction
// from its snapshot goroutine while the leader keeps appending. Once the
// COMPACT_PREFIX record is durable nothing reads the prefix any more (the
// view starts above it), and a crash between chunks leaves raft.db with a
// partly deleted prefix below the journal's first index, which start-up
// (classify) and the next compaction finish.
//
// A suffix stays one transaction: it is the uncommitted tail, which raft
// truncates from the goroutine that appends next (nothing of raft's would
// run between chunks), and one transaction leaves raft.db's tail without
// a hole at every commit. It takes the gate's write side like an append.
func (s *LogStore) DeleteRange(min, max uint64) error {
	// The record is written between appends (the gate's read side): a
	// journal write issued while an append's bbolt commit flushes the
	// device waited several milliseconds for it, and held that append up
	// as long (BenchmarkCompactionStall, the append at the compaction's
	// start).
	s.compactGate.RLock()
	s.mu.Lock()
	v := s.j.view
	var rec record
	suffix := min > v.first && v.first != 0
	if suffix {
		rec = record{kind: recTruncateSuffix, index: min}
	} else {
		rec = record{kind: recCompactPrefix, index: max}
	}
	var err error
	if suffix {
		err = s.j.append(rec)
	} else {
		// A compaction's record is written and applied under the view
		// lock and made durable after it, so no StoreLogs waits for this
		// fdatasync; it is still durable before raft.db loses a key. With
		// piggybacked identifiers (direct.go) the record is an O_DIRECT
		// write that completed before the first chunk's bbolt transaction
		// began, and that commit's first fdatasync of raft.db (after the
		// pages, before the meta page that makes the delete visible)
		// flushes the device with it, as for StoreLogs: no fdatasync of
		// its own. (If the sync fails, the view already drops entries raft
		// asked to drop, which are in its snapshot, and bolt still holds
		// them: safe.)
		err = s.j.writeRecs([]record{rec}, false)
		if err == nil {
			s.j.applyAll([]record{rec})
		}
	}
	s.mu.Unlock()
	s.compactGate.RUnlock()
	if err == nil && !suffix && !(s.piggyback && s.bolt != nil) {
		err = s.j.sync()
	}
	if err != nil {
		return err
	}
	if s.nFaulty.Load() > 0 {
		s.faulty.Range(func(k, _ any) bool {
			if i := k.(uint64); i >= min && i <= max {
				s.clearFaulty(i)
			}
			return true
		})
	}
	if suffix || s.bolt == nil {
		s.compactGate.Lock()
		defer s.compactGate.Unlock()
		return guard(func() error { return s.inner.DeleteRange(min, max) })
	}
	_, err = s.compactPrefix(max)
	return err
}

// compactPrefix deletes every raft.db key <= max, DefaultCompactChunk (or
// compactChunk) keys per write transaction, lowest first, yielding to
// appends between transactions (compactGate). It returns how many keys it
// deleted.
func (s *LogStore) compactPrefix(max uint64) (int, error) {
	chunk, byteBudget := s.compactChunk, compactChunkBytes
	if chunk <= 0 {
		chunk = DefaultCompactChunk
	}
	if chunk == math.MaxInt {
		byteBudget = math.MaxInt // one transaction (the benchmark's "before")
	}
	s.compactions.Add(1)
	total := 0
	for k := 1; ; k++ {
		var n int
		var more bool
		t0 := time.Now()
		s.compactGate.RLock()
		err := guard(func() (err error) {
			n, more, err = s.bolt.deletePrefixChunk(max, chunk, byteBudget)
			return err
		})
		s.compactGate.RUnlock()
		busy := time.Since(t0)
		s.compactBusy.Add(int64(busy))
		total += n
		if err != nil {
			return total, fmt.Errorf("compact raft.db up to %d (chunk %d): %w", max, k, err)
		}
		if h := s.compactHook; h != nil {
			if err := h(k); err != nil {
				return total, err
			}
		}
		if !more {
			return total, nil
		}
		if d := compactPause(busy, s.compactPace); d > 0 {
			time.Sleep(d)
			s.compactPaused.Add(int64(d))
		}
	}
}

// Close closes the journal (the inner store is closed by its owner).
func (s *LogStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j.close()
}
