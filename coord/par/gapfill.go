package par

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/parpb"
)

// This file closes an I4 gap with log entries from a peer's log instead
// of a snapshot: a node whose log was compacted through S but whose
// snapshots are lost needs the entries below its first index, and a peer
// that never compacted (or whose own snapshot is older) still holds them.
// hashicorp/raft compacts each node on its own, so this state exists
// (CTRL never reaches it: it compacts only after a majority holds the
// identical snapshot).
//
// Trust. The requester no longer holds identifiers for compacted entries,
// so it cannot check them one by one the way rule 1 does. It anchors the
// peer's log instead: the peer's entry at our first index F must equal our
// own identifier there (index, term and checksum). By Raft's Log Matching
// property two logs that hold the same (index, term) are identical up to
// it, so the peer's entries below F are exactly the ones our log held
// before compaction, which were committed (compaction never passes the
// applied index). Every entry must also decode as an envelope whose CRC32C
// covers its index, term and data, arrive in index order with
// non-decreasing terms no greater than F's, and agree with our term table
// where that table knows the index; the peer verified each against its own
// identifier before sending it. The anchor is checked before and after the
// transfer. Nothing is installed on any failure.
//
// Durability. The entries go into bolt first, below the first index where
// nothing reads them; then one journal write holds a recBackfill
// identifier per entry and the recBackfillDone that makes them visible.
// A crash before that record is durable leaves bolt keys at or below the
// compacted index, which start-up deletes as an unfinished compaction, so
// the node is back where it started.

// gapFillBatch bounds the envelope bytes of one GetLogRange answer.
const gapFillBatch = 2 << 20

// errNoCoveringSnapshot: no peer lists a snapshot that closes the gap and
// none took one on request; the gap may still be filled from a log.
var errNoCoveringSnapshot = errors.New("no peer holds a verified snapshot covering the gap")

// GetLogRange serves this node's own verified log entries from req.From.
func (srv *Server) GetLogRange(ctx context.Context, req *parpb.GetLogRangeRequest) (*parpb.GetLogRangeResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	ls := srv.s.Log
	ls.mu.RLock()
	first, last := ls.j.view.first, ls.j.view.last
	ls.mu.RUnlock()
	resp := &parpb.GetLogRangeResponse{Responder: srv.s.cfg.Name, FirstIndex: first, LastIndex: last}
	limit := req.MaxBytes
	if limit == 0 || limit > gapFillBatch {
		limit = gapFillBatch
	}
	var total uint64
	for i := req.From; i != 0 && i <= req.To; i++ {
		if err := ctx.Err(); err != nil {
			return nil, status.FromContextError(err).Err()
		}
		id, ok := ls.ident(i)
		if !ok {
			break
		}
		_, env, err := ls.readVerified(i, id)
		if err != nil {
			break // never send bytes that do not verify
		}
		if len(resp.Entries) > 0 && total+uint64(len(env)) > limit {
			break
		}
		total += uint64(len(env))
		resp.Entries = append(resp.Entries, &parpb.LogEntry{Index: i, Term: id.term, Envelope: env})
	}
	return resp, nil
}

// logRange asks p for its verified entries [from, to].
func (c *Client) logRange(ctx context.Context, p Peer, from, to uint64) ([]*parpb.LogEntry, error) {
	cl, err := c.conn(p)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 5*c.CallTimeout)
	defer cancel()
	resp, err := cl.GetLogRange(cctx, &parpb.GetLogRangeRequest{Requester: c.self, From: from, To: to, MaxBytes: gapFillBatch},
		grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(64<<20))
	if status.Code(err) == codes.Unimplemented {
		return nil, fmt.Errorf("peer %s does not serve log ranges: %w", p.Name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("log range %d-%d from %s: %w", from, to, p.Name, err)
	}
	return resp.Entries, nil
}

// fillGapFromLogs closes the gap below the first index with entries from
// any peer's log (see the file comment). It returns nil once the log
// starts right after the newest verified snapshot (or at 1 without one).
func (s *Store) fillGapFromLogs(ctx context.Context, c *Client) error {
	lo := s.snapshotFloor() + 1
	s.Log.mu.RLock()
	v := s.Log.j.view
	first := v.first
	anchor, ok := v.ids[first]
	s.Log.mu.RUnlock()
	if first != 0 && first <= lo {
		return nil
	}
	if first == 0 || !ok {
		// The whole log was compacted: no identifier of ours can anchor a
		// peer's log. The term table alone is not enough: a lost journal
		// record could make it name a wrong term for the last compacted
		// index, and a lagging peer's stale entry under that term would
		// then pass.
		return fmt.Errorf("%w: the log is empty after compaction, nothing anchors a peer's log", ErrSnapshotGap)
	}
	var errs []error
	for _, p := range c.peers {
		err := s.fillFrom(ctx, c, p, lo, first, anchor)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// gapCheck is the requester's decision about a peer's log entries for a
// gap fill, as pure functions of what it knows and what the peer sent
// (gapfill_model_test.go checks them exhaustively against Raft's Log
// Matching, and shows that each weakened rule installs a wrong entry).
type gapCheck struct {
	first  uint64            // our first index: the anchor's index
	anchor ident             // our identifier at first (term, checksum)
	known  map[uint64]uint64 // our term table over the gap, where it knows
	rules  gapRules
}

// gapRules are the knobs of gapCheck; defaultGapRules are the ones par
// runs with, the others exist for the model check.
type gapRules struct {
	anchor   bool // the peer's entry at our first index must be ours
	verified bool // every entry must decode and pass its envelope CRC
	index    bool // each entry in its slot, envelope index = slot
	terms    bool // claimed term = envelope term, non-decreasing, <= the anchor's, as our term table says
}

var defaultGapRules = gapRules{anchor: true, verified: true, index: true, terms: true}

// gapEntry is one entry of a GetLogRange answer: where the peer put it,
// the term it claimed, and what its envelope decoded to (err != nil: it
// did not decode or failed its CRC).
type gapEntry struct {
	index, term uint64 // as sent
	err         error
	log         *raft.Log // the decoded envelope
	cksum       uint32
}

func decodeGapEntry(e *parpb.LogEntry) gapEntry {
	l, ck, err := decodeEnvelope(e.Envelope)
	return gapEntry{index: e.Index, term: e.Term, err: err, log: l, cksum: ck}
}

// entryLog is what the entry would install as (a weakened rule may accept
// an entry whose envelope did not decode: it then installs what the peer
// claimed).
func (e gapEntry) entryLog() (index, term uint64) {
	if e.log == nil {
		return e.index, e.term
	}
	return e.log.Index, e.log.Term
}

// anchored: the peer's answer for [first, first] is our own entry there,
// so by Log Matching its log below first is the one we compacted.
func (g gapCheck) anchored(ents []gapEntry) bool {
	if !g.rules.anchor {
		return true
	}
	if len(ents) != 1 {
		return false
	}
	e := ents[0]
	return e.err == nil && e.log.Index == g.first && e.log.Term == g.anchor.term && e.cksum == g.anchor.cksum
}

// accept decides whether e may be installed at next, after an entry of
// term prevTerm.
func (g gapCheck) accept(next, prevTerm uint64, e gapEntry) error {
	if e.err != nil && g.rules.verified {
		return fmt.Errorf("entry %d: %w", next, e.err)
	}
	idx, term := e.entryLog()
	if g.rules.index && (e.index != next || idx != next) {
		return fmt.Errorf("sent entry %d (envelope %d), want %d", e.index, idx, next)
	}
	if !g.rules.terms {
		return nil
	}
	if e.term != term || term < prevTerm || term > g.anchor.term {
		return fmt.Errorf("entry %d has term %d after term %d, before our first entry's %d", next, term, prevTerm, g.anchor.term)
	}
	if t, ok := g.known[next]; ok && t != term {
		return fmt.Errorf("entry %d has term %d, our journal says %d", next, term, t)
	}
	return nil
}

// fillFrom installs p's entries [lo, f-1] below our first index f, whose
// identifier is anchor.
func (s *Store) fillFrom(ctx context.Context, c *Client, p Peer, lo, f uint64, anchor ident) (err error) {
	hi := f - 1
	s.Log.mu.RLock()
	v := s.Log.j.view
	clean := v.corrupt == 0
	known := map[uint64]uint64{}
	for i := lo; clean && i <= hi; i++ {
		if t, ok := v.termAt(i); ok {
			known[i] = t
		}
	}
	s.Log.mu.RUnlock()
	g := gapCheck{first: f, anchor: anchor, known: known, rules: defaultGapRules}
	checkAnchor := func() error {
		ents, err := c.logRange(ctx, p, f, f)
		if err != nil {
			return err
		}
		dec := make([]gapEntry, len(ents))
		for k, e := range ents {
			dec[k] = decodeGapEntry(e)
		}
		if !g.anchored(dec) {
			return fmt.Errorf("peer %s's entry %d is not ours (term %d, checksum %08x): its log cannot fill the gap", p.Name, f, anchor.term, anchor.cksum)
		}
		return nil
	}
	if err := checkAnchor(); err != nil {
		return err
	}

	var written uint64 // highest index written into bolt
	defer func() {
		if err != nil && written >= lo {
			if derr := guard(func() error { return s.Log.inner.DeleteRange(lo, written) }); derr != nil {
				err = errors.Join(err, fmt.Errorf("remove unfinished gap fill: %w", derr))
			}
		}
	}()
	recs := make([]record, 0, hi-lo+2)
	var prevTerm, nbytes uint64
	for next := lo; next <= hi; {
		ents, err := c.logRange(ctx, p, next, hi)
		if err != nil {
			return err
		}
		if len(ents) == 0 {
			return fmt.Errorf("peer %s cannot serve entry %d verified", p.Name, next)
		}
		batch := make([]*raft.Log, 0, len(ents))
		for _, e := range ents {
			ge := decodeGapEntry(e)
			if err := g.accept(next, prevTerm, ge); err != nil {
				return fmt.Errorf("peer %s: %w", p.Name, err)
			}
			l, ck := ge.log, ge.cksum
			batch = append(batch, &raft.Log{Index: next, Term: l.Term, Type: l.Type, Data: e.Envelope})
			recs = append(recs, record{kind: recBackfill, typ: byte(l.Type), index: next, term: l.Term, cksum: ck})
			prevTerm = l.Term
			nbytes += uint64(len(e.Envelope))
			next++
		}
		if err := guard(func() error { return s.Log.inner.StoreLogs(batch) }); err != nil {
			return fmt.Errorf("store gap entries: %w", err)
		}
		written = next - 1
	}
	if err := checkAnchor(); err != nil {
		return err
	}
	recs = append(recs, record{kind: recBackfillDone, index: lo, term: hi})
	// From here the bolt entries stay even on failure: if the journal
	// write failed after its last record reached the disk, they are the
	// backfill's entries; if not, start-up deletes them.
	written = 0
	s.Log.mu.Lock()
	if s.Log.j.view.first != f {
		s.Log.mu.Unlock()
		return fmt.Errorf("log changed during the gap fill (first index %d, was %d)", s.Log.j.view.first, f)
	}
	err = s.Log.j.append(recs...)
	now := s.Log.j.view.first
	s.Log.mu.Unlock()
	if err != nil {
		return err
	}
	if now != lo {
		return fmt.Errorf("gap fill %d-%d not accepted by the journal view (first index %d)", lo, hi, now)
	}
	s.Log.gapFilled.Add(int64(hi - lo + 1))
	s.Log.gapFilledBytes.Add(int64(nbytes))
	s.log.Warn("par: log gap filled from a peer's log", "from", lo, "to", hi, "peer", p.Name, "bytes", nbytes)
	return nil
}
