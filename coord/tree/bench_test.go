package tree

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"coord/proto/coordpb"
)

// buildFlat returns a tree with n nodes /k%07d holding size-byte data,
// applied in batches of 1000 as the raft glue does.
func buildFlat(tb testing.TB, n, size int) *Tree {
	tr := New()
	x := tr.Txn()
	for i := 0; i < n; i++ {
		op := &coordpb.CreateOp{Path: fmt.Sprintf("/k%07d", i), Data: make([]byte, size)}
		if r := x.Apply(uint64(i+1), txn(&coordpb.Op{Op: &coordpb.Op_Create{Create: op}})); r.Code != coordpb.ErrorCode_OK {
			tb.Fatalf("%v %s", r.Code, r.Message)
		}
		if i%1000 == 999 {
			tr = x.Commit()
			x = tr.Txn()
		}
	}
	return x.Commit()
}

// heapBytesPerNode measures the live heap a tree of n 100-byte znodes
// takes, per znode (data included).
func heapBytesPerNode(tb testing.TB, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := buildFlat(tb, n, 100)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(tr)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestMemoryPerZnode guards the per-node footprint: 100 bytes of data
// (112 with allocator rounding) plus the radix tree's leaf and inner node
// and the path. (Upstream go-immutable-radix also gave every node and leaf
// a mutation channel: 611 bytes per znode; the trimmed copy in
// internal/radix takes 374.)
func TestMemoryPerZnode(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation sizes")
	}
	per := heapBytesPerNode(t, 100_000)
	t.Logf("%.0f bytes per 100-byte znode", per)
	if per > 450 {
		t.Fatalf("%.0f bytes per znode, want at most 450", per)
	}
}

func BenchmarkApplyCreate(b *testing.B) {
	tr := New()
	data := make([]byte, 100)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x := tr.Txn()
		x.Apply(uint64(i+1), txn(&coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: fmt.Sprintf("/k%09d", i), Data: data}}}))
		tr = x.Commit()
	}
}

// BenchmarkApplySetBatch applies batches of 100 sets (one Txn, one
// Commit) over 100k nodes; ns/op is per set.
func BenchmarkApplySetBatch(b *testing.B) {
	const nodes, batch = 100_000, 100
	tr := buildFlat(b, nodes, 100)
	cmds := make([]*coordpb.Command, nodes)
	for i := range cmds {
		cmds[i] = txn(setOp(fmt.Sprintf("/k%07d", i), "0123456789", -1))
	}
	zxid := tr.Zxid()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		x := tr.Txn()
		for j := 0; j < batch && i < b.N; j, i = j+1, i+1 {
			zxid++
			x.Apply(zxid, cmds[(i*7919)%nodes])
		}
		tr = x.Commit()
	}
}

func BenchmarkGet(b *testing.B) {
	tr := buildFlat(b, 100_000, 100)
	paths := make([]string, 100_000)
	for i := range paths {
		paths[i] = fmt.Sprintf("/k%07d", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, _, err := tr.Get(paths[(i*7919)%len(paths)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChildren100k lists a parent with 100,000 children (each with
// a child of its own, which the listing must skip): a page of 1000 from
// the middle, and the whole list.
func BenchmarkChildren100k(b *testing.B) {
	tr := New()
	x := tr.Txn()
	z := uint64(1)
	x.Apply(z, txn(createOp("/big", "")))
	for i := 0; i < 100_000; i++ {
		z++
		p := fmt.Sprintf("/big/n%06d", i)
		x.Apply(z, txn(createOp(p, ""), createOp(p+"/sub", "")))
	}
	tr = x.Commit()
	b.Run("page1000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			names, _, more, err := tr.Children("/big", "n050000", 1000)
			if err != nil || len(names) != 1000 || !more {
				b.Fatal(len(names), more, err)
			}
		}
	})
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			names, _, _, err := tr.Children("/big", "", 0)
			if err != nil || len(names) != 100_000 {
				b.Fatal(len(names), err)
			}
		}
	})
}

// BenchmarkSnapshot1M writes and reads a snapshot of 1,000,000 100-byte
// znodes (100,000 with -short) and reports the heap per znode.
func BenchmarkSnapshot1M(b *testing.B) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	per := heapBytesPerNode(b, n)
	b.Logf("%d znodes of 100 bytes: %.0f heap bytes per znode", n, per)
	tr := buildFlat(b, n, 100)
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		b.Fatal(err)
	}
	size := int64(buf.Len())
	b.Run("write", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			var out bytes.Buffer
			out.Grow(int(size))
			if err := tr.WriteSnapshot(&out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			back, err := ReadSnapshot(bytes.NewReader(buf.Bytes()))
			if err != nil || back.Len() != n+1 {
				b.Fatal(err)
			}
		}
	})
}
