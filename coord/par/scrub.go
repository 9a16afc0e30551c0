package par

import (
	"context"
	"time"
)

// DefaultScrubRate is how many entries per second the scrubber verifies:
// a full pass over a 75k-entry log (SnapshotThreshold + TrailingLogs at
// their defaults) takes about five minutes. At 2000/s the scrubber was 3-8%
// of a busy node's CPU (raft-boltdb decodes each entry with reflection).
const DefaultScrubRate = 250

// scrubBusyDivisor is how much the scrubber slows down while the node is
// appending (a StoreLogs within the last scrubBusyWindow): each bbolt read
// it makes takes CPU and bbolt's mmap lock from the write path, which on a
// small machine cost several per cent of write throughput. It never stops
// (at least one entry per tick), so a pass still completes under load.
const (
	scrubBusyDivisor = 20
	scrubBusyWindow  = 250 * time.Millisecond
)

// ScrubStats report the scrubber's progress.
type ScrubStats struct {
	Position uint64 // next index to verify in the current pass
	Last     uint64 // last index of the log when the pass started
	Passes   int64  // completed passes
	Found    int64  // faulty entries the scrubber found
}

// Scrub re-verifies every live entry against its identifier, perSecond
// entries a second, so latent faults are found and repaired (rule 1, from
// a peer) before raft reads them. It loops over the log until ctx ends.
// The caller owns the goroutine.
func (s *LogStore) Scrub(ctx context.Context, perSecond int) {
	if perSecond <= 0 {
		perSecond = DefaultScrubRate
	}
	batch := max(1, perSecond/10)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		s.scrubLast.Store(last)
		for i := first; i != 0 && i <= last; {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n := batch
			if time.Since(time.Unix(0, s.lastAppend.Load())) < scrubBusyWindow {
				n = max(1, batch/scrubBusyDivisor)
			}
			for end := min(last, i+uint64(n)-1); i <= end; i++ {
				s.scrubPos.Store(i)
				id, ok := s.ident(i)
				if !ok {
					continue // compacted or truncated meanwhile
				}
				if _, _, err := s.readVerified(i, id); err != nil {
					s.scrubFound.Add(1)
					s.markFaulty(i)
					if ctx.Err() != nil {
						return
					}
					if _, err := s.repairNow(i, id); err != nil {
						s.repairFails.Add(1)
					}
				}
			}
		}
		s.scrubPasses.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ScrubStats returns the scrubber's progress.
func (s *LogStore) ScrubStats() ScrubStats {
	return ScrubStats{Position: s.scrubPos.Load(), Last: s.scrubLast.Load(), Passes: s.scrubPasses.Load(), Found: s.scrubFound.Load()}
}
