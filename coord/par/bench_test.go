package par

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
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
