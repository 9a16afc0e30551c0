package tree

import (
	"fmt"
	"runtime"
	"testing"

	"coord/proto/coordpb"
)

func TestMemPerZnodeTmp(t *testing.T) {
	const n = 200_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr := New()
	x := tr.Txn()
	for i := 0; i < n; i++ {
		x.Apply(uint64(i+1), txn(&coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: fmt.Sprintf("/k%07d", i), Data: make([]byte, 100)}}}))
	}
	tr = x.Commit()
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("bytes/znode %.1f", float64(after.HeapAlloc-before.HeapAlloc)/n)
	runtime.KeepAlive(tr)
}
