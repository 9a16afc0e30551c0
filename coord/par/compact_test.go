package par

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// boltKeys returns every key of raft.db's log bucket, in order.
func boltKeys(t *testing.T, b *boltLog) []uint64 {
	t.Helper()
	var ks []uint64
	err := b.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketLogs).ForEach(func(k, _ []byte) error {
			ks = append(ks, binary.BigEndian.Uint64(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// fillBolt stores entries lo..hi (skipping those in holes) in batches of
// 1000, unsynced (test speed).
func fillBolt(t *testing.T, b *boltLog, lo, hi uint64, holes map[uint64]bool) {
	t.Helper()
	var batch []*raft.Log
	flush := func() {
		if err := b.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := lo; i <= hi; i++ {
		if holes[i] {
			continue
		}
		batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: make([]byte, 100)})
		if len(batch) == 1000 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// TestBoltLog_DeletePrefixChunks checks the chunked prefix delete against
// bbolt's cursor: over 30,000 keys (hundreds of leaf pages, a three-level
// tree), with holes and a first key above 1, for chunk sizes from 1 to
// everything at once and a byte budget that stops every chunk at one key, every key <= max is gone and every other key is
// still there, and each chunk deletes exactly min(chunk, remaining) keys
// (a cursor that skipped a key after Delete would delete fewer per chunk
// or leave one behind).
func TestBoltLog_DeletePrefixChunks(t *testing.T) {
	const lo, hi = 101, 30100
	holes := map[uint64]bool{}
	for i := uint64(lo + 17); i <= hi; i += 997 {
		holes[i] = true
	}
	for _, tc := range []struct {
		chunk, bytes int // bytes 1: one key per chunk
		max          uint64
	}{
		{1, math.MaxInt, 600}, {7, math.MaxInt, 2000}, {333, math.MaxInt, 25000}, {2048, math.MaxInt, 30099},
		{4096, math.MaxInt, hi}, {math.MaxInt, math.MaxInt, 27000}, {2048, math.MaxInt, 50},
		{2048, math.MaxInt, hi + 100}, {2048, 1, 700},
	} {
		t.Run(fmt.Sprintf("chunk%d-bytes%d-max%d", tc.chunk, tc.bytes, tc.max), func(t *testing.T) {
			perChunk := tc.chunk
			if tc.bytes == 1 {
				perChunk = 1
			}
			b, err := openBoltLog(filepath.Join(t.TempDir(), BoltFile))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			b.db.NoSync = true
			fillBolt(t, b, lo, hi, holes)
			var want, below int
			for i := uint64(lo); i <= hi; i++ {
				if !holes[i] {
					if i > tc.max {
						want++
					} else {
						below++
					}
				}
			}
			total := 0
			for k := 0; ; k++ {
				n, more, err := b.deletePrefixChunk(tc.max, tc.chunk, tc.bytes)
				if err != nil {
					t.Fatal(err)
				}
				if exp := min(perChunk, below-total); n != exp {
					t.Fatalf("chunk %d deleted %d keys, want %d", k, n, exp)
				}
				total += n
				if !more {
					break
				}
				if k > below {
					t.Fatal("no progress")
				}
			}
			if total != below {
				t.Fatalf("deleted %d keys, want %d", total, below)
			}
			ks := boltKeys(t, b)
			if len(ks) != want {
				t.Fatalf("%d keys remain, want %d", len(ks), want)
			}
			for _, k := range ks {
				if k <= tc.max || k > hi || holes[k] {
					t.Fatalf("key %d remains", k)
				}
			}
		})
	}
}

// TestBbolt_CursorDeleteSkipsAfterWrite is the hazard deletePrefixChunk
// avoids (etcd-io/bbolt#146): with bbolt v1.3.5, a Cursor.Delete on a leaf
// already modified in the same transaction moves the cursor on, and the
// following Next skips a key. If bbolt stops doing this, the test fails:
// update the comment of deletePrefixChunk.
func TestBbolt_CursorDeleteSkipsAfterWrite(t *testing.T) {
	b, err := openBoltLog(filepath.Join(t.TempDir(), BoltFile))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.db.NoSync = true
	fillBolt(t, b, 1, 10, nil)
	err = b.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketLogs)
		if err := bk.Put(key(11), []byte("x")); err != nil { // the leaf is now a node
			return err
		}
		c := bk.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if left := boltKeys(t, b); len(left) == 0 {
		t.Fatal("bbolt no longer skips keys after Cursor.Delete on a modified leaf; update deletePrefixChunk's comment")
	}
}

// storeRange appends entries from..to in batches of 500.
func storeRange(t testing.TB, s *Store, from, to uint64) {
	t.Helper()
	for i := from; i <= to; {
		var batch []*raft.Log
		for ; i <= to && len(batch) < 500; i++ {
			batch = append(batch, &raft.Log{Index: i, Term: 2, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d", i))})
		}
		if err := s.Log.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
	}
}

// checkLog asserts the store's view is [first, last], raft.db holds
// exactly those keys, and every entry reads back verified.
func checkLog(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	if f, _ := s.Log.FirstIndex(); f != first {
		t.Fatalf("FirstIndex %d, want %d", f, first)
	}
	if l, _ := s.Log.LastIndex(); l != last {
		t.Fatalf("LastIndex %d, want %d", l, last)
	}
	ks := boltKeys(t, s.bolt)
	if uint64(len(ks)) != last-first+1 || ks[0] != first || ks[len(ks)-1] != last {
		t.Fatalf("raft.db holds %d keys %d..%d, want %d..%d", len(ks), ks[0], ks[len(ks)-1], first, last)
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.Log.GetLog(i, &l); err != nil || l.Index != i || string(l.Data) != fmt.Sprintf("entry-%d", i) {
			t.Fatalf("GetLog(%d) = %v %q", i, err, l.Data)
		}
	}
	if n := s.Log.Stats().Faulty; n != 0 {
		t.Fatalf("%d faulty entries", n)
	}
}

// TestLogStore_CompactionYieldsToAppends: a compaction runs in chunks and
// appends commit between them. Each chunk's hook appends a batch and
// checks that raft.db's keys are contiguous up to the new last entry (no
// hole at any commit) and that raft's view already starts above the
// compacted prefix.
func TestLogStore_CompactionYieldsToAppends(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	storeRange(t, s, 1, 6000)
	s.Log.compactChunk = 400
	next := uint64(6001)
	chunks := 0
	s.Log.compactHook = func(k int) error {
		chunks = k
		storeRange(t, s, next, next+9)
		next += 10
		ks := boltKeys(t, s.bolt)
		if got, want := ks[0], min(uint64(k*400), 5000)+1; got != want {
			return fmt.Errorf("after chunk %d raft.db starts at %d, want %d", k, got, want)
		}
		if uint64(len(ks)) != ks[len(ks)-1]-ks[0]+1 || ks[len(ks)-1] != next-1 {
			return fmt.Errorf("after chunk %d raft.db holds %d keys %d..%d: not contiguous to %d", k, len(ks), ks[0], ks[len(ks)-1], next-1)
		}
		if f, _ := s.Log.FirstIndex(); f != 5001 {
			return fmt.Errorf("FirstIndex %d during the compaction, want 5001", f)
		}
		return nil
	}
	if err := s.Log.DeleteRange(1, 5000); err != nil {
		t.Fatal(err)
	}
	if chunks != 13 { // 12 full chunks of 400, then 200
		t.Fatalf("%d chunks, want 13", chunks)
	}
	s.Log.compactHook = nil
	checkLog(t, s, 5001, next-1)
}

// TestLogStore_CompactionPaced: a compaction pauses after each chunk about
// as long as the chunk's transaction took (DefaultCompactPace), so it holds
// the node's CPU and disk for about half of its length instead of all of
// it; the last chunk is not followed by a pause. Without the pacing the
// chunks run back to back and the pauses add up to nothing.
func TestLogStore_CompactionPaced(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	storeRange(t, s, 1, 6000)
	s.Log.compactChunk = 400
	chunks := 0
	s.Log.compactHook = func(k int) error { chunks = k; return nil }
	t0 := time.Now()
	if err := s.Log.DeleteRange(1, 5000); err != nil {
		t.Fatal(err)
	}
	wall := time.Since(t0)
	busy, paused := time.Duration(s.Log.compactBusy.Load()), time.Duration(s.Log.compactPaused.Load())
	t.Logf("%d chunks: %v in transactions, %v paused, %v in all", chunks, busy, paused, wall)
	if chunks != 13 {
		t.Fatalf("%d chunks, want 13", chunks)
	}
	// 12 of the 13 chunks are followed by a pause of their own length
	// (unless over maxCompactPause: a chunk slowed that much on a loaded
	// host lowers the ratio, hence the margin).
	if paused < busy/2 {
		t.Fatalf("the compaction paused %v in all against %v in its transactions: its chunks ran back to back", paused, busy)
	}
	if wall < busy+paused {
		t.Fatalf("compaction took %v, less than its transactions and pauses (%v + %v)", wall, busy, paused)
	}
	if st := s.Log.Stats(); st.Compactions != 1 || st.CompactBusy != busy || st.CompactPaused != paused {
		t.Fatalf("Stats: %d compactions, %v busy, %v paused; want 1, %v, %v", st.Compactions, st.CompactBusy, st.CompactPaused, busy, paused)
	}
	s.Log.compactHook = nil
	checkLog(t, s, 5001, 6000)
}

func TestCompactPause(t *testing.T) {
	for _, c := range []struct {
		busy time.Duration
		pace float64
		want time.Duration
	}{
		{3 * time.Millisecond, 0, 3 * time.Millisecond}, // the default: as long as the chunk
		{3 * time.Millisecond, 2, 6 * time.Millisecond},
		{3 * time.Millisecond, -1, 0}, // no pacing
		{time.Second, 0, maxCompactPause},
	} {
		if got := compactPause(c.busy, c.pace); got != c.want {
			t.Errorf("compactPause(%v, %v) = %v, want %v", c.busy, c.pace, got, c.want)
		}
	}
}

// TestLogStore_CompactionConcurrentAppends runs a chunked compaction while
// another goroutine appends back to back (raft's snapshot goroutine and
// its leader loop; run under -race too), then a conflict truncation: the
// log ends exactly as appended, raft.db holds it and nothing else.
func TestLogStore_CompactionConcurrentAppends(t *testing.T) {
	s := openTestStore(t, t.TempDir())
	defer s.Close()
	storeRange(t, s, 1, 8000)
	s.Log.compactChunk = 256
	var chunks int
	var appends atomic.Int64
	var atFirst int64
	s.Log.compactHook = func(k int) error {
		if k == 1 {
			atFirst = appends.Load()
		}
		chunks = k
		return nil
	}
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	stop := make(chan struct{})
	last := uint64(8000)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := uint64(8001); ; i += 5 {
			select {
			case <-stop:
				return
			default:
			}
			var batch []*raft.Log
			for k := i; k < i+5; k++ {
				batch = append(batch, &raft.Log{Index: k, Term: 2, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("entry-%d", k))})
			}
			if err := s.Log.StoreLogs(batch); err != nil {
				errc <- err
				return
			}
			last = i + 4
			appends.Add(1)
		}
	}()
	err := s.Log.DeleteRange(1, 7000)
	during := appends.Load() - atFirst
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if chunks != 28 { // ceil(7000/256)
		t.Fatalf("%d chunks, want 28", chunks)
	}
	if during == 0 {
		t.Fatal("no append committed between the compaction's chunks")
	}
	t.Logf("%d appends between the first and the last of %d chunks", during, chunks)
	checkLog(t, s, 7001, last)
	// raft's conflict path: still one transaction, journalled as a suffix.
	if err := s.Log.DeleteRange(last-3, last); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, 7001, last-4)
	if chunks != 28 {
		t.Fatal("the suffix truncation went through the chunked compaction")
	}
}

var errStopCompaction = errors.New("test: stop between chunks")

// TestLogStore_CompactionInterrupted stops a compaction after k chunks (a
// crash between two commits leaves the same files: each chunk is a
// durable bbolt commit, the COMPACT_PREFIX record was synced before the
// first) and reopens. The leftover prefix below the journal's first index
// is compacted state: the store starts with no faulty entry, FirstIndex
// and LastIndex are the journal's, start-up deletes the leftover (one of
// its entries is even damaged: it is not read), and the next compaction
// goes on from there. Without a reopen, the next compaction deletes the
// leftover too.
func TestLogStore_CompactionInterrupted(t *testing.T) {
	for _, k := range []int{1, 4, 7} {
		t.Run(fmt.Sprintf("reopen-after-%d-chunks", k), func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir)
			storeRange(t, s, 1, 4000)
			s.Log.compactChunk = 400
			s.Log.compactHook = func(n int) error {
				if n == k {
					return errStopCompaction
				}
				return nil
			}
			if err := s.Log.DeleteRange(1, 3000); !errors.Is(err, errStopCompaction) {
				t.Fatalf("DeleteRange = %v, want the hook's stop", err)
			}
			left := boltKeys(t, s.bolt)
			if left[0] != uint64(k*400+1) {
				t.Fatalf("raft.db starts at %d after %d chunks", left[0], k)
			}
			// Damage a leftover entry: compacted, so never read again.
			var raw raft.Log
			if err := s.bolt.GetLog(left[0]+1, &raw); err != nil {
				t.Fatal(err)
			}
			raw.Data[len(raw.Data)-1] ^= 0xff
			if err := s.bolt.StoreLogs([]*raft.Log{&raw}); err != nil {
				t.Fatal(err)
			}
			s.Close()

			s = openTestStore(t, dir)
			defer s.Close()
			r := s.Report()
			if len(r.Faulty) != 0 || r.Adopted != 0 || r.TornDiscarded != 0 || r.BoltRebuilt {
				t.Fatalf("report %+v: a partly deleted prefix is compacted state, nothing else", r)
			}
			if r.Compacted != 3000-k*400 {
				t.Fatalf("start-up finished %d compacted keys, want %d", r.Compacted, 3000-k*400)
			}
			checkLog(t, s, 3001, 4000)
			storeRange(t, s, 4001, 4100)
			if err := s.Log.DeleteRange(3001, 3500); err != nil {
				t.Fatal(err)
			}
			checkLog(t, s, 3501, 4100)
		})
	}
	t.Run("next-compaction-finishes", func(t *testing.T) {
		s := openTestStore(t, t.TempDir())
		defer s.Close()
		storeRange(t, s, 1, 4000)
		s.Log.compactChunk = 400
		s.Log.compactHook = func(n int) error {
			if n == 2 {
				return errStopCompaction
			}
			return nil
		}
		if err := s.Log.DeleteRange(1, 3000); !errors.Is(err, errStopCompaction) {
			t.Fatalf("DeleteRange = %v", err)
		}
		s.Log.compactHook = nil
		if ks := boltKeys(t, s.bolt); ks[0] != 801 {
			t.Fatalf("raft.db starts at %d", ks[0])
		}
		// raft passes its FirstIndex (3001) as min; the leftover 801-3000
		// goes as well.
		if err := s.Log.DeleteRange(3001, 3200); err != nil {
			t.Fatal(err)
		}
		checkLog(t, s, 3201, 4000)
	})
}

// TestLogStore_CompactionKilledBetweenChunks kills a child process (-9)
// between two chunks of a compaction on a syncing store, opened as coordd
// opens it for a cluster (ParallelJournal: the compaction record made
// durable by the first chunk's commit when identifiers are piggybacked)
// and for one node (the record fdatasync'ed on its own), then reopens its
// files.
func TestLogStore_CompactionKilledBetweenChunks(t *testing.T) {
	const (
		last     = 12000
		upto     = 10000
		chunk    = 1000
		killedAt = 4
	)
	if dir := os.Getenv("PAR_COMPACT_CHILD_DIR"); dir != "" {
		s, err := Open(Config{Dir: dir, Name: "n1", ParallelJournal: os.Getenv("PAR_COMPACT_CHILD_PARALLEL") == "1"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		storeRange(t, s, 1, last)
		s.Log.compactChunk = chunk
		s.Log.compactHook = func(n int) error {
			if n == killedAt {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
			return nil
		}
		err = s.Log.DeleteRange(1, upto)
		fmt.Fprintln(os.Stderr, "compaction returned:", err)
		os.Exit(3)
	}
	for _, parallel := range []bool{true, false} {
		t.Run(fmt.Sprintf("parallel=%v", parallel), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestLogStore_CompactionKilledBetweenChunks$", "-test.count=1")
			cmd.Env = append(os.Environ(), "PAR_COMPACT_CHILD_DIR="+dir, "PAR_COMPACT_CHILD_PARALLEL="+map[bool]string{true: "1"}[parallel])
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v (want killed by SIGKILL)\n%s", err, out)
			}
			s, err := Open(Config{Dir: dir, Name: "n1", ParallelJournal: parallel})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			r := s.Report()
			if len(r.Faulty) != 0 || r.Adopted != 0 || r.TornDiscarded != 0 || r.BoltRebuilt {
				t.Fatalf("report %+v after kill -9 between chunks", r)
			}
			if r.Compacted != upto-killedAt*chunk {
				t.Fatalf("start-up finished %d compacted keys, want %d", r.Compacted, upto-killedAt*chunk)
			}
			checkLog(t, s, upto+1, last)
			if err := s.Log.DeleteRange(upto+1, upto+500); err != nil {
				t.Fatal(err)
			}
			checkLog(t, s, upto+501, last)
		})
	}
}

// TestOpen_CompactPace: Config.CompactPace (coordd --raft-compact-pace)
// reaches the log store — negative runs the chunks back to back, with no
// pause — Stats counts the compaction and its time, and a pace that is not
// a finite number is refused at Open.
func TestOpen_CompactPace(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), Name: "n1", NoSync: true, CompactPace: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storeRange(t, s, 1, 6000)
	s.Log.compactChunk = 400
	if err := s.Log.DeleteRange(1, 5000); err != nil {
		t.Fatal(err)
	}
	st := s.Log.Stats()
	if st.Compactions != 1 || st.CompactBusy <= 0 {
		t.Fatalf("stats after one compaction: %d compactions, %v busy", st.Compactions, st.CompactBusy)
	}
	if st.CompactPaused != 0 {
		t.Fatalf("CompactPace -1 paused %v (want back to back)", st.CompactPaused)
	}
	checkLog(t, s, 5001, 6000)

	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		s, err := Open(Config{Dir: t.TempDir(), Name: "n1", NoSync: true, CompactPace: bad})
		if err == nil {
			s.Close()
			t.Fatalf("Open with CompactPace %v: no error", bad)
		}
		if !strings.Contains(err.Error(), "compaction pace") {
			t.Fatalf("Open with CompactPace %v: %v (want a compaction pace error)", bad, err)
		}
	}
}
