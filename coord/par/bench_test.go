package par

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// BenchmarkStoreLogs measures one durable append of a 1 KiB entry: plain
// raft-boltdb against par's two orderings (go test -bench StoreLogs).
func BenchmarkStoreLogs(b *testing.B) {
	data := make([]byte, 1024)
	run := func(b *testing.B, store raft.LogStore) {
		for i := 0; i < b.N; i++ {
			if err := store.StoreLogs([]*raft.Log{{Index: uint64(i + 1), Term: 1, Data: data}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("plain", func(b *testing.B) {
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db")})
		if err != nil {
			b.Fatal(err)
		}
		defer bolt.Close()
		run(b, bolt)
	})
	for _, parallel := range []bool{true, false} {
		name := map[bool]string{true: "par-concurrent", false: "par-serial"}[parallel]
		b.Run(name, func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), Name: "b", ParallelJournal: parallel})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			run(b, s.Log)
		})
	}
}

// BenchmarkStoreLogsBatch measures a durable append of a batch of 27
// 150-byte entries (what coordbench's set workload at 128 clients hands
// StoreLogs): raft-boltdb with the replica's bbolt options against PAR's
// default multi-node mode. Compare B/op and allocs/op (deterministic);
// ns/op depends on the disk and the machine's load.
func BenchmarkStoreLogsBatch(b *testing.B) {
	data := make([]byte, 150)
	run := func(b *testing.B, store raft.LogStore) {
		b.ReportAllocs()
		next := uint64(0)
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			logs := make([]*raft.Log, 27)
			for k := range logs {
				next++
				logs[k] = &raft.Log{Index: next, Term: 1, Data: data}
			}
			if err := store.StoreLogs(logs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
	}
	// Alternating, twice each: ratios within one run only.
	for round := 0; round < 2; round++ {
		b.Run("plain", func(b *testing.B) {
			// Plain storage's options (coord/replica: etcd's, free list not synced).
			opts := &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
			bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(b.TempDir(), "raft.db"), BoltOptions: opts})
			if err != nil {
				b.Fatal(err)
			}
			defer bolt.Close()
			run(b, bolt)
		})
		b.Run("par", func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), Name: "b", ParallelJournal: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if !s.Log.piggyback {
				b.Log("piggybacked identifiers not available here (no O_DIRECT or two devices)")
			}
			run(b, s.Log)
			b.ReportMetric(float64(s.Log.journalWait.Load())/1e3/float64(b.N), "journal-wait-us/op")
		})
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
