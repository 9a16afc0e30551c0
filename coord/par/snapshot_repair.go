package par

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"coord/proto/parpb"
)

// This file is pre-start snapshot recovery (design §4.6): the I4 gap check
// before NewRaft, chunk and whole-snapshot repair from peers, repair rule 3
// (an entry a peer compacted is fetched as the peer's snapshot) and the
// Figure-13 alignment of the log after installing a peer's snapshot.

// openSnapshots opens and verifies the snapshot store (called by Open).
func (s *Store) openSnapshots() error {
	ss, err := OpenSnapshotStore(SnapshotConfig{Dir: s.cfg.Dir, NoSync: s.cfg.NoSync, Logger: s.log})
	if err != nil {
		return err
	}
	s.snaps = ss
	return nil
}

// Snapshots returns the verified snapshot store raft must use (nil before
// Open).
func (s *Store) Snapshots() *SnapshotStore { return s.snaps }

// snapshotFloor is the newest verified snapshot's index: every index up to
// it is committed.
func (s *Store) snapshotFloor() uint64 {
	if s.snaps == nil {
		return 0
	}
	i, _, _ := s.snaps.Newest()
	return i
}

// Gap reports whether the log fails to reach the newest usable snapshot
// (invariant I4) and, if so, the index a snapshot must cover to close it.
func (s *Store) Gap() (need uint64, gap bool) {
	snap := s.snapshotFloor()
	s.Log.mu.RLock()
	v := s.Log.j.view
	first, compacted := v.first, v.compacted
	s.Log.mu.RUnlock()
	if first == 0 {
		return compacted, compacted > snap
	}
	return first - 1, first > snap+1
}

// recoverSnapshots runs before the log's distributed recovery: faulty
// entries the newest verified snapshot covers are compacted away (they are
// committed and captured in it), then the I4 gap is closed from peers
// (chunk repair of a quarantined snapshot, else a whole peer snapshot,
// else a snapshot a running peer takes on request, else the missing
// entries from a peer's log: gapfill.go).
// It waits until ctx ends; raft never starts with a gap.
func (s *Store) recoverSnapshots(ctx context.Context, c *Client) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				need, _ := s.Gap()
				return fmt.Errorf("%w: %w: need a snapshot covering index %d: %w", ErrUnrecoverable, ErrSnapshotGap, need, ctx.Err())
			case <-time.After(150 * time.Millisecond):
			}
		}
		if err := s.compactCovered(); err != nil {
			return err
		}
		need, gap := s.Gap()
		if !gap {
			return nil
		}
		err := s.repairSnapshot(ctx, c, need)
		if errors.Is(err, errNoCoveringSnapshot) {
			// No snapshot anywhere covers the gap: a peer's log may still
			// hold the entries (gapfill.go).
			ferr := s.fillGapFromLogs(ctx, c)
			if ferr == nil {
				if _, gap := s.Gap(); !gap {
					return nil // not after the retry wait: ctx may end in it
				}
				continue
			}
			err = errors.Join(err, ferr)
		}
		if err != nil {
			s.log.Warn("par: snapshot repair failed; retrying", "need", need, "err", err)
			continue
		}
	}
}

// compactCovered drops faulty entries at or below the newest verified
// snapshot (design §4.3.3 step 1) by compacting the prefix up to the last
// of them.
func (s *Store) compactCovered() error {
	snap := s.snapshotFloor()
	var upto uint64
	for _, i := range s.faultyList() {
		if i <= snap {
			upto = i
		}
	}
	if upto == 0 {
		return nil
	}
	first, _ := s.Log.FirstIndex()
	if err := s.Log.DeleteRange(first, upto); err != nil {
		return fmt.Errorf("compact faulty entries covered by snapshot %d: %w", snap, err)
	}
	s.log.Warn("par: faulty entries covered by a verified snapshot compacted", "upto", upto, "snapshot", snap)
	return nil
}

// repairSnapshot makes a verified snapshot with index >= need exist
// locally: first by fetching only the bad chunks of a quarantined snapshot
// from a peer holding an identical one, else by installing a peer's whole
// snapshot.
func (s *Store) repairSnapshot(ctx context.Context, c *Client, need uint64) error {
	peers := c.listSnapshots(ctx)
	ss := s.snaps
	ss.mu.Lock()
	damaged := append([]*damagedSnapshot(nil), ss.damaged...)
	ss.mu.Unlock()
	sort.Slice(damaged, func(i, j int) bool { return damaged[i].sc.Meta.Index > damaged[j].sc.Meta.Index })
	for _, d := range damaged {
		if d.sc.Meta.Index < need {
			continue
		}
		for _, ps := range peers {
			for _, in := range ps.snaps {
				if !identical(d.sc, in) {
					continue
				}
				if err := s.repairChunks(ctx, c, ps.peer, in.Id, d); err != nil {
					s.log.Warn("par: chunk repair failed", "peer", ps.peer.Name, "err", err)
					continue
				}
				return nil
			}
		}
	}
	// Whole snapshot: the newest peer snapshot that covers need.
	var best *parpb.SnapshotInfo
	var from Peer
	for _, ps := range peers {
		for _, in := range ps.snaps {
			if in.Index >= need && (best == nil || in.Index > best.Index || (in.Index == best.Index && in.Term > best.Term)) {
				best, from = in, ps.peer
			}
		}
	}
	if best == nil {
		// Peers whose raft runs may hold the entries only in their logs:
		// ask one to snapshot (its applied state covers every committed
		// entry), then look again on the next attempt.
		if c.requestSnapshot(ctx, need) {
			return fmt.Errorf("a peer took a snapshot covering index %d; fetching it next", need)
		}
		return fmt.Errorf("%w (index %d)", errNoCoveringSnapshot, need)
	}
	return s.installWhole(ctx, c, from, best)
}

// repairChunks rebuilds a quarantined snapshot from its intact local chunks
// and the bad ones fetched from a peer, every chunk checked against our own
// sidecar, and installs it.
func (s *Store) repairChunks(ctx context.Context, c *Client, p Peer, peerID string, d *damagedSnapshot) error {
	sc := d.sc
	f, err := os.Open(d.state)
	if err != nil {
		return err
	}
	defer f.Close()
	chunks := make([][]byte, sc.chunks())
	var need []uint32
	for k := range sc.chunks() {
		b := make([]byte, sc.chunkLen(k))
		if _, err := f.ReadAt(b, int64(k)*int64(sc.ChunkSize)); err == nil && crc(b) == sc.ChunkCRCs[k] {
			chunks[k] = b
		} else {
			need = append(need, uint32(k))
		}
	}
	var bytesIn int64
	err = c.fetchChunks(ctx, p, peerID, need,
		func(k uint32) (uint32, int64) { return sc.ChunkCRCs[k], sc.chunkLen(int(k)) },
		func(k uint32, b []byte) error { chunks[k] = b; bytesIn += int64(len(b)); return nil })
	if err != nil {
		return err
	}
	rd := func(yield func([]byte) error) error {
		for _, b := range chunks {
			if err := yield(b); err != nil {
				return err
			}
		}
		return nil
	}
	m := sc.Meta
	id, err := s.snaps.install(m.Version, m.Index, m.Term, m.Configuration, m.ConfigurationIndex, sc.SHA256, rd)
	if err != nil {
		return err
	}
	ss := s.snaps
	ss.mu.Lock()
	ss.damaged = removeDamaged(ss.damaged, d)
	ss.mu.Unlock()
	ss.chunkRepairs.Add(1)
	ss.fetched.Add(bytesIn)
	ss.nFetched.Add(int64(len(need)))
	s.log.Warn("par: snapshot repaired from a peer's identical copy", "snapshot", id, "index", m.Index,
		"peer", p.Name, "chunks", len(need), "bytes", bytesIn)
	return s.alignLog(m.Index, m.Term)
}

func removeDamaged(ds []*damagedSnapshot, d *damagedSnapshot) []*damagedSnapshot {
	out := ds[:0]
	for _, x := range ds {
		if x != d {
			out = append(out, x)
		}
	}
	return out
}

// installWhole streams a peer's whole snapshot into a new local one, every
// chunk checked against the peer's listed checksums and the whole against
// its SHA-256, then aligns the log with it.
func (s *Store) installWhole(ctx context.Context, c *Client, p Peer, in *parpb.SnapshotInfo) error {
	cfg, err := decodeConfiguration(in.Configuration)
	if err != nil {
		return err
	}
	if in.ChunkSize == 0 || int64(len(in.ChunkCrcs)) != (in.Size+int64(in.ChunkSize)-1)/int64(in.ChunkSize) {
		return fmt.Errorf("peer %s lists snapshot %s with a bad chunk table", p.Name, in.Id)
	}
	all := make([]uint32, len(in.ChunkCrcs))
	for k := range all {
		all[k] = uint32(k)
	}
	var bytesIn int64
	rd := func(yield func([]byte) error) error {
		return c.fetchChunks(ctx, p, in.Id, all,
			func(k uint32) (uint32, int64) {
				return in.ChunkCrcs[k], min(int64(in.ChunkSize), in.Size-int64(k)*int64(in.ChunkSize))
			},
			func(_ uint32, b []byte) error { bytesIn += int64(len(b)); return yield(b) })
	}
	id, err := s.snaps.install(raft.SnapshotVersion(in.Version), in.Index, in.Term, cfg, in.ConfigurationIndex, in.Sha256, rd)
	if err != nil {
		return err
	}
	s.snaps.wholeRepairs.Add(1)
	s.snaps.fetched.Add(bytesIn)
	s.snaps.nFetched.Add(int64(len(all)))
	s.log.Warn("par: whole snapshot installed from a peer", "snapshot", id, "index", in.Index, "term", in.Term,
		"peer", p.Name, "bytes", bytesIn)
	return s.alignLog(in.Index, in.Term)
}

// install writes a snapshot through Create (so it gets its sidecar) from
// the chunks produce yields, and keeps it only if the result's SHA-256 is
// the expected one.
func (st *SnapshotStore) install(version raft.SnapshotVersion, index, term uint64, cfg raft.Configuration, cfgIndex uint64,
	sha []byte, produce func(yield func([]byte) error) error) (string, error) {
	sink, err := st.Create(version, index, term, cfg, cfgIndex, nil)
	if err != nil {
		return "", err
	}
	ps := sink.(*snapSink)
	if err := produce(func(b []byte) error { _, err := sink.Write(b); return err }); err != nil {
		_ = sink.Cancel()
		return "", err
	}
	if got := ps.sum.sha.Sum(nil); string(got) != string(sha) {
		_ = sink.Cancel()
		return "", &SnapshotError{ID: sink.ID(), Chunk: -1, Reason: "installed bytes do not match the expected SHA-256"}
	}
	if err := sink.Close(); err != nil {
		return "", err
	}
	return sink.ID(), nil
}

// alignLog brings the log in line with a snapshot (index p, term t) it now
// holds, following Figure 13 of the Raft paper (which hashicorp skips): if
// our entry at p has another term, our suffix from p extends an entry that
// conflicts with a committed one and can never commit, so it is
// discarded; then the prefix up to p is compacted (the snapshot holds it).
func (s *Store) alignLog(p, t uint64) error {
	s.Log.mu.RLock()
	v := s.Log.j.view
	id, has := v.ids[p]
	first, last := v.first, v.last
	s.Log.mu.RUnlock()
	if has && id.term != t {
		if err := s.truncateSuffix(p); err != nil {
			return err
		}
		s.log.Warn("par: log suffix conflicts with the installed snapshot; discarded", "from", p)
		first, _ = s.Log.FirstIndex()
		last, _ = s.Log.LastIndex()
	}
	if first != 0 && first <= p {
		if err := s.Log.DeleteRange(first, min(p, last)); err != nil {
			return fmt.Errorf("compact log up to installed snapshot %d: %w", p, err)
		}
	}
	return nil
}

// fetchSnapshotCovering acts on repair rule 3: entry i is committed and a
// peer compacted it into a snapshot, so that snapshot (index >= i) is
// fetched and installed; the log is then aligned with it, which removes
// our faulty entry i.
func (s *Store) fetchSnapshotCovering(ctx context.Context, c *Client, i uint64) error {
	if s.snaps == nil {
		return errors.New("no snapshot store")
	}
	if err := s.repairSnapshot(ctx, c, i); err != nil {
		return fmt.Errorf("rule 3 for entry %d: %w", i, err)
	}
	return nil
}

var _ io.Closer = (*chunkReader)(nil)
