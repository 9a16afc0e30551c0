package par

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// counterFSM sums the uint64 commands it applies; its snapshot is the sum
// and the count.
type counterFSM struct {
	mu         sync.Mutex
	sum, count uint64
}

func (f *counterFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sum += binary.BigEndian.Uint64(l.Data)
	f.count++
	return nil
}

func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return counterSnap{f.sum, f.count}, nil
}

func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sum, f.count = binary.BigEndian.Uint64(b[:]), binary.BigEndian.Uint64(b[8:])
	return nil
}

func (f *counterFSM) get() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sum, f.count
}

type counterSnap struct{ sum, count uint64 }

func (s counterSnap) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], s.sum)
	binary.BigEndian.PutUint64(b[8:], s.count)
	if _, err := sink.Write(b[:]); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (counterSnap) Release() {}

// TestRaft_ChunkedCompaction runs hashicorp/raft (one voter) on a par
// store whose compactions go in chunks of 16 keys, while commands are
// applied: raft snapshots and compacts several times, its appends commit
// between the chunks, and afterwards the log raft sees is contiguous and
// every entry reads back; raft.db holds exactly that log. A restart on the
// same files restores the sum from the snapshot and the log.
func TestRaft_ChunkedCompaction(t *testing.T) {
	dir := t.TempDir()
	start := func(fsm *counterFSM, bootstrap bool) (*Store, *raft.Raft) {
		s, err := Open(Config{Dir: dir, Name: "n1", NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		s.Log.compactChunk = 16
		cfg := raft.DefaultConfig()
		cfg.LocalID = "n1"
		cfg.HeartbeatTimeout = 50 * time.Millisecond
		cfg.ElectionTimeout = 50 * time.Millisecond
		cfg.LeaderLeaseTimeout = 50 * time.Millisecond
		cfg.SnapshotThreshold = 300
		cfg.SnapshotInterval = 20 * time.Millisecond
		cfg.TrailingLogs = 50
		cfg.LogOutput = io.Discard
		_, trans := raft.NewInmemTransport("n1")
		cache, err := raft.NewLogCache(64, s.Log)
		if err != nil {
			t.Fatal(err)
		}
		if bootstrap {
			if err := raft.BootstrapCluster(cfg, cache, s.Stable, s.Snapshots(), trans,
				raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: trans.LocalAddr()}}}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := raft.NewRaft(cfg, fsm, cache, s.Stable, s.Snapshots(), trans)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.State() != raft.Leader {
			if time.Now().After(deadline) {
				t.Fatal("no leader")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return s, r
	}
	fsm := &counterFSM{}
	s, r := start(fsm, true)
	var chunks, compactions int
	var hmu sync.Mutex
	s.Log.compactHook = func(k int) error {
		hmu.Lock()
		defer hmu.Unlock()
		chunks++
		if k == 1 {
			compactions++
		}
		return nil
	}
	const n = 3000
	var want uint64
	var futs []raft.ApplyFuture
	for i := uint64(1); i <= n; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], i)
		want += i
		futs = append(futs, r.Apply(b[:], 5*time.Second))
		if len(futs) == 64 || i == n {
			for _, f := range futs {
				if err := f.Error(); err != nil {
					t.Fatal(err)
				}
			}
			futs = futs[:0]
		}
	}
	if err := r.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		t.Fatal(err)
	}
	hmu.Lock()
	c, k := chunks, compactions
	hmu.Unlock()
	if k < 3 || c < 3*k {
		t.Fatalf("%d compactions in %d chunks: want several, each in several chunks", k, c)
	}
	t.Logf("%d compactions in %d chunks", k, c)
	if sum, _ := fsm.get(); sum != want {
		t.Fatalf("sum %d, want %d", sum, want)
	}
	first, _ := s.Log.FirstIndex()
	last, _ := s.Log.LastIndex()
	ks := boltKeys(t, s.bolt)
	if first == 0 || first == 1 || uint64(len(ks)) != last-first+1 || ks[0] != first || ks[len(ks)-1] != last {
		t.Fatalf("view %d..%d, raft.db %d keys %d..%d", first, last, len(ks), ks[0], ks[len(ks)-1])
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := s.Log.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	fsm2 := &counterFSM{}
	s, r = start(fsm2, false)
	defer s.Close()
	defer r.Shutdown()
	if rep := s.Report(); len(rep.Faulty) != 0 || rep.TornDiscarded != 0 {
		t.Fatalf("restart report %+v", rep)
	}
	if err := r.Barrier(5 * time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if sum, cnt := fsm2.get(); sum != want || cnt < n {
		t.Fatalf("after restart: sum %d (want %d), %d commands", sum, want, cnt)
	}
}
