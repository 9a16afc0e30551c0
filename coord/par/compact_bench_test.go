package par

import (
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkCompactionStall measures what a log compaction costs the
// appends that run meanwhile: a par store as coordd opens it for a
// multi-node cluster (ParallelJournal, syncing) holds `live` entries of
// 150 bytes, one goroutine appends batches of 27 such entries back to
// back (what the leader hands StoreLogs at 128 clients), and
// DeleteRange(1, deleted) runs as raft's snapshot goroutine calls it.
// Reported per compaction: its duration, the longest and the p99
// StoreLogs call that overlapped it, and the p99 before it. Run with
// -benchtime=1x; the modes alternate within one run, compare them there:
//
//	go test -run '^$' -bench CompactionStall -benchtime=1x ./coord/par/
func BenchmarkCompactionStall(b *testing.B) {
	shapes := []stallShape{
		// coordd's defaults: SnapshotThreshold 65,536 + TrailingLogs 10,240
		// live, a compaction deletes 65,536; set entries of ~150 bytes in
		// batches of 27.
		{name: "65536", live: 65536 + 10240, deleted: 65536, size: 150, fillBatch: 27},
		// docs/RELIABILITY.md's micro-benchmark: 100,000 300-byte entries
		// in batches of 16, delete 90,000.
		{name: "90000", live: 100000, deleted: 90000, size: 300, fillBatch: 16},
	}
	type mode struct {
		name  string
		chunk int
		pace  float64
	}
	// "chunked" runs its chunks back to back (before pacing), "paced" is
	// coordd's default (DefaultCompactChunk, DefaultCompactPace).
	modes := []mode{{"one-tx", math.MaxInt, -1}, {"chunked", 0, -1}, {"paced", 0, 0}}
	if c := os.Getenv("PAR_COMPACT_CHUNKS"); c != "" { // e.g. 512,1024,4096
		modes = modes[:1]
		for _, f := range strings.Split(c, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			modes = append(modes, mode{"chunk" + f, n, -1})
		}
	}
	for _, sh := range shapes {
		for round := 0; round < 3; round++ {
			for _, m := range modes {
				b.Run(sh.name+"/"+m.name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						r := compactionStall(b, sh, m.chunk, m.pace)
						r.report(b)
					}
				})
			}
		}
	}
}

type stallShape struct {
	name            string
	live, deleted   uint64
	size, fillBatch int
}

type stallResult struct {
	compact        time.Duration
	during         []time.Duration // StoreLogs calls overlapping the compaction
	maxAt          time.Duration   // when the longest of them started, from the compaction's start
	before         []time.Duration // StoreLogs calls before it
	busy           time.Duration   // the compaction's time in its transactions
	appendsDuring  int
	entriesDeleted uint64
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	k := int(math.Ceil(p*float64(len(s)))) - 1 // nearest rank
	return s[max(k, 0)]
}

func (r stallResult) report(b *testing.B) {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(r.compact), "compact-ms")
	b.ReportMetric(ms(pct(r.during, 1)), "stall-max-ms")
	b.ReportMetric(ms(pct(r.during, 0.99)), "stall-p99-ms")
	b.ReportMetric(ms(pct(r.during, 0.5)), "during-p50-ms")
	b.ReportMetric(ms(pct(r.before, 0.99)), "before-p99-ms")
	b.ReportMetric(float64(len(r.during)), "appends-during")
	b.ReportMetric(ms(r.maxAt), "max-at-ms")
	b.ReportMetric(ms(r.busy), "busy-ms")
}

// compactionStall fills a fresh store, starts the appender, compacts and
// returns the timings. The caller's timer covers everything; the metrics
// are what matters.
func compactionStall(tb testing.TB, sh stallShape, chunk int, pace float64) stallResult {
	live, deleted := sh.live, sh.deleted
	s, err := Open(Config{Dir: tb.TempDir(), Name: "b", ParallelJournal: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	s.Log.compactChunk = chunk
	s.Log.compactPace = pace
	data := make([]byte, sh.size)
	next := uint64(1)
	batch := func(n int) []*raft.Log {
		ls := make([]*raft.Log, n)
		for k := range ls {
			ls[k] = &raft.Log{Index: next, Term: 1, Type: raft.LogCommand, Data: data}
			next++
		}
		return ls
	}
	for next <= live {
		if err := s.Log.StoreLogs(batch(int(min(uint64(sh.fillBatch), live-next+1)))); err != nil {
			tb.Fatal(err)
		}
	}
	type call struct {
		start time.Time
		d     time.Duration
	}
	var (
		mu    sync.Mutex
		calls []call
		stop  = make(chan struct{})
		done  = make(chan error, 1)
	)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			ls := batch(27)
			t0 := time.Now()
			if err := s.Log.StoreLogs(ls); err != nil {
				done <- err
				return
			}
			mu.Lock()
			calls = append(calls, call{t0, time.Since(t0)})
			mu.Unlock()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	c0 := time.Now()
	if err := s.Log.DeleteRange(1, deleted); err != nil {
		tb.Fatal(err)
	}
	c1 := time.Now()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
	if f, _ := s.Log.FirstIndex(); f != deleted+1 {
		tb.Fatalf("first index after the compaction %d, want %d", f, deleted+1)
	}
	if bf, _ := s.bolt.FirstIndex(); bf != deleted+1 {
		tb.Fatalf("raft.db's first key after the compaction %d, want %d", bf, deleted+1)
	}
	r := stallResult{compact: c1.Sub(c0), entriesDeleted: deleted, busy: time.Duration(s.Log.compactBusy.Load())}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range calls {
		end := c.start.Add(c.d)
		switch {
		case end.Before(c0):
			r.before = append(r.before, c.d)
		case c.start.Before(c1):
			if len(r.during) == 0 || c.d > pct(r.during, 1) {
				r.maxAt = c.start.Sub(c0)
			}
			r.during = append(r.during, c.d)
		}
	}
	return r
}
