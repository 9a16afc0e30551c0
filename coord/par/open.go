package par

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// File names under the raft data dir.
const (
	BoltFile      = "raft.db"
	JournalFile   = "par-ids.log"
	MetaFileA     = "par-meta.a"
	MetaFileB     = "par-meta.b"
	QuarantineDir = "par-quarantine"
)

// Peer is another voter this node may ask for repairs.
type Peer struct{ Name, Addr string }

// Config configures Open.
type Config struct {
	// Dir is the node's data dir (raft.db and the par files live there).
	Dir string
	// Name is this node's server id.
	Name string
	// NoSync skips par's own fdatasyncs (tests only).
	NoSync bool
	// ParallelJournal writes each batch's identifiers concurrently with its
	// bolt commit instead of after it (see LogStore). Only for clusters of
	// more than one voter: a crash can leave the last batch to be decided
	// by peers.
	ParallelJournal bool
	// FsyncJournal keeps the parallel journal's own fdatasync instead of
	// piggybacking on bbolt's (direct.go); for file systems where
	// fdatasync may not flush the device cache.
	FsyncJournal bool
	// Logger; nil discards.
	Logger *slog.Logger
	// Addr is this node's address (needed by lost-node recovery to
	// re-add itself as a non-voter).
	Addr string
	// LostNode runs the lost-node procedure (design §4.8) in Recover: for
	// a node whose data dir was wiped or replaced (coordd --par-recover).
	LostNode bool
	// ReadFault injects read errors into par-owned files (fault tests
	// only; nil in production). See fsys.go.
	ReadFault ReadFault
	// CompactPace is how long a log compaction pauses after each chunk, as
	// a multiple of that chunk's transaction time (0: DefaultCompactPace;
	// negative: no pause, the chunks back to back; one pause is at most
	// 50 ms). Must be finite (CheckCompactPace).
	CompactPace float64
}

// CheckCompactPace refuses a compaction pace that is not a finite number.
func CheckCompactPace(pace float64) error {
	if math.IsNaN(pace) || math.IsInf(pace, 0) {
		return fmt.Errorf("compaction pace %v: must be a finite number (0: default %v; negative: no pause)", pace, DefaultCompactPace)
	}
	return nil
}

// Store is one node's PAR-protected raft storage.
type Store struct {
	Log    *LogStore
	Stable *StableStore
	snaps  *SnapshotStore // snapshot_repair.go
	bolt   *boltLog
	cfg    Config
	log    *slog.Logger

	commitFloor atomic.Pointer[func() uint64]
	report      Report
	closeOnce   sync.Once
	closeErr    error
	// The PeerRepair handlers' gate: Close refuses new handlers and waits
	// for running ones before it closes anything (enter, leave).
	gateMu   sync.Mutex
	closing  bool
	inflight sync.WaitGroup
	lost     lostState // identity, announcer, promoter (lostnode.go)
}

// Report is what start-up classification found.
type Report struct {
	Checked       int      // entries verified
	Faulty        []uint64 // indexes left for distributed repair
	Adopted       int      // identifiers re-derived
	TornDiscarded int      // torn-tail keys discarded
	Compacted     int      // interrupted compactions finished
	BoltRebuilt   bool     // raft.db failed its structural check and was quarantined
	Amnesic       bool     // both term/vote copies lost
}

// Open opens the stores under cfg.Dir and classifies every entry (design
// §4.3.3). Only local, always-safe actions happen here (adopt, torn tail,
// finish compaction); faulty entries wait for Recover.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckCompactPace(cfg.CompactPace); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("component", "par")}
	boltPath := filepath.Join(cfg.Dir, BoltFile)
	rebuilt, err := checkBolt(boltPath, filepath.Join(cfg.Dir, QuarantineDir))
	if err != nil {
		return nil, err
	}
	s.report.BoltRebuilt = rebuilt
	var bolt *boltLog
	openBolt := func() error {
		return guard(func() (err error) {
			bolt, err = openBoltLog(boltPath)
			return err
		})
	}
	if err := openBolt(); err != nil {
		// Damage the walk did not reach (the freelist): quarantine, start
		// an empty file and let the identifiers drive the rebuild.
		if qerr := quarantineFile(boltPath, filepath.Join(cfg.Dir, QuarantineDir), err); qerr != nil {
			return nil, qerr
		}
		s.report.BoltRebuilt = true
		if err := openBolt(); err != nil {
			return nil, fmt.Errorf("open raft log %s: %w", boltPath, err)
		}
	}
	s.bolt = bolt
	ls, err := newLogStore(bolt, filepath.Join(cfg.Dir, JournalFile), cfg.NoSync, cfg.ReadFault)
	if err != nil {
		bolt.Close()
		return nil, err
	}
	ls.bolt = bolt
	ls.parallel = cfg.ParallelJournal
	ls.piggyback = cfg.ParallelJournal && enablePiggyback(ls.j, cfg)
	ls.compactPace = cfg.CompactPace
	s.Log = ls
	hasData := ls.j.next > 0 || hasSnapshots(cfg.Dir)
	if bl, _ := bolt.LastIndex(); bl > 0 {
		hasData = true
	}
	st, err := openStable(filepath.Join(cfg.Dir, MetaFileA), filepath.Join(cfg.Dir, MetaFileB), hasData, cfg.NoSync)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Stable = st
	s.report.Amnesic = st.Amnesic()
	if t, ok := st.DurableTerm(); ok && t > 0 && !hasData && !cfg.LostNode && !promotionPending(cfg.Dir) {
		s.Close()
		return nil, fmt.Errorf("%s: durable term %d: %w", cfg.Dir, t, ErrLostLog)
	}
	if err := s.classify(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.openSnapshots(); err != nil { // snapshot_repair.go
		s.Close()
		return nil, err
	}
	s.report.Faulty = s.faultyList()
	if len(s.report.Faulty) > 0 || s.report.Adopted > 0 || s.report.TornDiscarded > 0 || rebuilt || s.report.Amnesic {
		s.log.Warn("par start-up classification", "checked", s.report.Checked, "faulty", len(s.report.Faulty),
			"adopted", s.report.Adopted, "torn", s.report.TornDiscarded, "bolt_rebuilt", rebuilt, "amnesic", s.report.Amnesic)
	}
	return s, nil
}

// Report returns what Open found.
func (s *Store) Report() Report { return s.report }

// SetCommitFloor installs the function the repair server uses for
// responder_commit_floor (raft's commit index once raft runs).
func (s *Store) SetCommitFloor(f func() uint64) { s.commitFloor.Store(&f) }

func (s *Store) floor() uint64 {
	if p := s.commitFloor.Load(); p != nil {
		return max((*p)(), s.snapshotFloor())
	}
	return s.snapshotFloor()
}

// enter admits one PeerRepair handler; false once Close has begun. A
// true answer must be paired with leave.
func (s *Store) enter() bool {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Store) leave() { s.inflight.Done() }

// Close closes the journal and bolt, after the PeerRepair handlers that
// are running return; later ones fail with codes.Unavailable (ErrClosed).
// Idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.gateMu.Lock()
		s.closing = true
		s.gateMu.Unlock()
		s.inflight.Wait()
		s.lost.stop()
		var errs []error
		if s.Log != nil {
			errs = append(errs, s.Log.Close())
		}
		if s.bolt != nil {
			errs = append(errs, s.bolt.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func hasSnapshots(dir string) bool {
	ents, _ := os.ReadDir(filepath.Join(dir, "snapshots"))
	return len(ents) > 0
}

// checkBolt checks raft.db's structure before raft-boltdb opens it: both
// bbolt meta pages (magic, FNV checksum), the file size against the
// high-water page id, then a walk of every bucket, key and value inside a
// guarded goroutine. bbolt's own tx.Check runs in a goroutine of its own
// where SetPanicOnFault cannot reach (a SIGBUS there kills the process),
// so it is not used. A damaged file is moved to quarantine; its entries
// become FAULTY through the identifiers and are fetched from peers.
func checkBolt(path, quarantine string) (rebuilt bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, nil
	}
	cerr := checkBoltMeta(path, fi.Size())
	if cerr == nil {
		cerr = checkBoltPages(path)
	}
	if cerr == nil {
		cerr = guard(func() error {
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
			if err != nil {
				return err
			}
			defer db.Close()
			return db.View(func(tx *bbolt.Tx) error {
				return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
					c := b.Cursor()
					var sum byte
					for k, v := c.First(); k != nil; k, v = c.Next() {
						for _, x := range v {
							sum ^= x
						}
					}
					_ = sum
					return nil
				})
			})
		})
	}
	if cerr == nil {
		return false, nil
	}
	return true, quarantineFile(path, quarantine, cerr)
}

func quarantineFile(path, quarantine string, why error) error {
	if err := os.MkdirAll(quarantine, 0o700); err != nil {
		return fmt.Errorf("quarantine %s: %w", path, err)
	}
	dst := filepath.Join(quarantine, fmt.Sprintf("%s.%d", filepath.Base(path), time.Now().UnixNano()))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("quarantine %s: %w (damage: %v)", path, err, why)
	}
	return nil
}

// checkBoltMeta validates bbolt's two meta pages and the file size.
func checkBoltMeta(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	const hdr = 16 // page header
	readMeta := func(off int64) (pageSize uint32, pgid, txid uint64, ok bool) {
		b := make([]byte, hdr+64)
		if _, err := f.ReadAt(b, off); err != nil {
			return 0, 0, 0, false
		}
		m := b[hdr:]
		if binary.LittleEndian.Uint32(m[0:]) != 0xED0CDAED {
			return 0, 0, 0, false
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != binary.LittleEndian.Uint64(m[56:]) {
			return 0, 0, 0, false
		}
		return binary.LittleEndian.Uint32(m[8:]), binary.LittleEndian.Uint64(m[40:]), binary.LittleEndian.Uint64(m[48:]), true
	}
	ps0, pg0, tx0, ok0 := readMeta(0)
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(ps0)
	}
	ps1, pg1, tx1, ok1 := readMeta(ps)
	var pgid uint64
	switch {
	case ok0 && ok1:
		pgid = pg0
		if tx1 > tx0 {
			pgid = pg1
		}
	case ok0:
		pgid = pg0
	case ok1:
		pgid, ps = pg1, int64(ps1)
	default:
		return errors.New("bbolt: both meta pages damaged")
	}
	if size < int64(pgid)*ps {
		return fmt.Errorf("bbolt: file is %d bytes, its meta needs %d", size, int64(pgid)*ps)
	}
	return nil
}

// entryState reads index i from bolt and checks it against id (nil id:
// only self-consistency). It returns the decoded entry when OK.
func (s *Store) entryState(i uint64, id *ident) (EntryState, *raft.Log, uint32) {
	var raw raft.Log
	err := guard(func() error { return s.bolt.GetLog(i, &raw) })
	if errors.Is(err, raft.ErrLogNotFound) {
		return EntryAbsent, nil, 0
	}
	if err != nil {
		return EntryBad, nil, 0
	}
	l, c, err := decodeEnvelope(raw.Data)
	if err != nil || l.Index != i || raw.Index != i || l.Term != raw.Term {
		return EntryBad, nil, 0
	}
	if id != nil && (id.term != l.Term || id.cksum != c) {
		return EntryBad, nil, 0
	}
	return EntryOK, l, c
}

func (s *Store) classify() error {
	ls := s.Log
	v := ls.j.view
	bf, _ := s.bolt.FirstIndex()
	bl, _ := s.bolt.LastIndex()
	// Interrupted compaction: keys at or below the journal's compaction
	// point are compacted entries (a crash before or between the chunks
	// of compactPrefix), never faulty entries or a gap.
	if bf != 0 && v.compacted >= bf {
		n, err := ls.compactPrefix(min(v.compacted, bl))
		if err != nil {
			return fmt.Errorf("finish compaction: %w", err)
		}
		s.report.Compacted += n
	}
	var prevTerm uint64
	if lo, hi := classifyRange(v, bf, bl); lo != 0 {
		for i := lo; i <= hi; i++ {
			s.report.Checked++
			if id, ok := v.ids[i]; ok {
				st, _, _ := s.entryState(i, &id)
				if Classify(IDValid, st, true) == VerdictFaulty {
					ls.markFaulty(i)
				}
				prevTerm = id.term
				continue
			}
			st, l, c := s.entryState(i, nil)
			contiguous := st == EntryOK && l.Term >= prevTerm
			switch Classify(IDCorrupt, st, contiguous) {
			case VerdictAdopt:
				if err := ls.j.append(record{kind: recAdopt, typ: byte(l.Type), index: i, term: l.Term, cksum: c}); err != nil {
					return err
				}
				ls.adopted.Add(1)
				s.report.Adopted++
				prevTerm = l.Term
			default:
				return fmt.Errorf("index %d: %w (identifier record damaged and entry %s)", i, ErrDoubleFault, map[EntryState]string{EntryBad: "damaged", EntryAbsent: "missing"}[st])
			}
		}
	}
	// Beyond the journal: re-adopt intact contiguous entries, discard a
	// torn tail.
	start := v.last + 1
	if v.last == 0 {
		start = max(bf, v.compacted+1)
	}
	if _, hi := classifyRange(v, bf, bl); hi > v.last {
		start = hi + 1
	}
	for i := start; bl != 0 && i <= bl; i++ {
		st, l, c := s.entryState(i, nil)
		contiguous := st == EntryOK && (v.last == 0 || i == v.last+1) && l.Term >= prevTerm
		switch Classify(IDNone, st, contiguous) {
		case VerdictAdopt:
			if err := ls.j.append(record{kind: recAdopt, typ: byte(l.Type), index: i, term: l.Term, cksum: c}); err != nil {
				return err
			}
			ls.adopted.Add(1)
			s.report.Adopted++
			prevTerm = l.Term
		case VerdictNothing:
		default: // torn tail
			if err := guard(func() error { return s.bolt.DeleteRange(i, bl) }); err != nil {
				return fmt.Errorf("discard torn tail %d-%d: %w", i, bl, err)
			}
			ls.truncations.Add(1)
			s.report.TornDiscarded += int(bl - i + 1)
			return nil
		}
	}
	return nil
}

func (s *Store) faultyList() []uint64 {
	var out []uint64
	s.Log.faulty.Range(func(k, _ any) bool { out = append(out, k.(uint64)); return true })
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// truncateSuffix discards [from, last] before raft runs (rules 2 and 4).
func (s *Store) truncateSuffix(from uint64) error {
	ls := s.Log
	ls.mu.Lock()
	err := ls.j.append(record{kind: recTruncateSuffix, index: from})
	ls.mu.Unlock()
	if err != nil {
		return err
	}
	bl, _ := s.bolt.LastIndex()
	if bl >= from {
		if err := guard(func() error { return s.bolt.DeleteRange(from, bl) }); err != nil {
			return err
		}
	}
	ls.faulty.Range(func(k, _ any) bool {
		if k.(uint64) >= from {
			ls.clearFaulty(k.(uint64))
		}
		return true
	})
	ls.truncations.Add(1)
	return nil
}

// Recover runs pre-start distributed recovery (design §4.4, §4.5) and must
// return nil before raft starts: amnesia needs every other voter's durable
// term; each faulty entry is fixed from an intact copy or discarded under
// rules 2/4. It retries until ctx ends, then fails with ErrUnrecoverable
// (the node stays down: the paper's "wait").
func (s *Store) Recover(ctx context.Context, c *Client) error {
	if err := s.ensureIdentity(ctx, c); err != nil {
		return err
	}
	s.startPromoter(c)
	voters := len(c.peers) + 1
	if err := s.recoverSnapshots(ctx, c); err != nil { // snapshot_repair.go: I4 before raft
		return err
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: %d faulty entries, amnesic=%v: %w", ErrUnrecoverable, len(s.faultyList()), s.Stable.Amnesic(), ctx.Err())
			case <-time.After(150 * time.Millisecond):
			}
		}
		if s.Stable.Amnesic() {
			m, ok := c.allTerms(ctx)
			if !ok {
				continue
			}
			s.Log.mu.RLock()
			if t, ok := s.Log.j.view.termAt(s.Log.j.view.last); ok && t > m {
				m = t
			}
			s.Log.mu.RUnlock()
			if err := s.Stable.recoverAmnesia(m); err != nil {
				return err
			}
			s.log.Warn("par: term/vote rebuilt from every voter", "term", m)
		}
		faulty := s.faultyList()
		if len(faulty) == 0 {
			return nil
		}
		s.Log.mu.RLock()
		v := s.Log.j.view
		tLast, _ := v.termAt(v.last)
		items := make([]Item, 0, len(faulty))
		for _, i := range faulty {
			if id, ok := v.ids[i]; ok {
				items = append(items, Item{Index: i, Term: id.term, Cksum: id.cksum})
			}
		}
		s.Log.mu.RUnlock()
		answers := c.ask(ctx, items)
		for k, it := range items {
			var replies []Reply
			var env []byte
			for _, a := range answers {
				if a == nil {
					continue
				}
				r := a.replies[k]
				replies = append(replies, r.Reply)
				if r.Verified && env == nil {
					env = r.env
				}
			}
			switch Decide(DefaultRules, voters, tLast, replies) {
			case ActFix:
				if _, err := s.Log.installRepaired(it.Index, ident{term: it.Term, cksum: it.Cksum}, env); err != nil {
					s.log.Warn("par: repair rejected", "index", it.Index, "err", err)
				} else {
					s.log.Info("par: repaired entry from a peer", "index", it.Index, "bytes", len(env))
				}
			case ActDiscard:
				if err := s.truncateSuffix(it.Index); err != nil {
					return err
				}
				s.log.Warn("par: discarded uncommitted suffix", "from", it.Index)
			case ActFetchSnapshot: // rule 3 (snapshot_repair.go)
				if err := s.fetchSnapshotCovering(ctx, c, it.Index); err != nil {
					s.log.Warn("par: rule 3 snapshot fetch failed", "index", it.Index, "err", err)
				}
			}
			if s.Log.j.view.last < it.Index {
				break
			}
		}
	}
}
