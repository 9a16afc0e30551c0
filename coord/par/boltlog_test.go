package par

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// TestBoltLogFormat: raft.db written by par's boltLog reads back through
// raft-boltdb v2 and the other way round, entry for entry, so existing
// data dirs and the fault harness (which opens raft.db with raft-boltdb)
// keep working.
func TestBoltLogFormat(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	entries := func(from uint64) []*raft.Log {
		var ls []*raft.Log
		for i := from; i < from+5; i++ {
			ls = append(ls, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: []byte{byte(i), 1, 2}, Extensions: []byte("x"), AppendedAt: at})
		}
		return ls
	}
	same := func(t *testing.T, want []*raft.Log, get func(uint64, *raft.Log) error) {
		t.Helper()
		for _, w := range want {
			var got raft.Log
			if err := get(w.Index, &got); err != nil {
				t.Fatalf("get %d: %v", w.Index, err)
			}
			if got.Index != w.Index || got.Term != w.Term || got.Type != w.Type || !reflect.DeepEqual(got.Data, w.Data) ||
				!reflect.DeepEqual(got.Extensions, w.Extensions) || !got.AppendedAt.Equal(w.AppendedAt) {
				t.Fatalf("entry %d: got %+v, want %+v", w.Index, got, *w)
			}
		}
	}
	path := filepath.Join(t.TempDir(), BoltFile)
	b, err := openBoltLog(path)
	if err != nil {
		t.Fatal(err)
	}
	first := entries(1)
	if err := b.StoreLogs(first); err != nil {
		t.Fatal(err)
	}
	hookErr := errors.New("hook")
	if err := b.storeLogs(entries(6), func() error { return hookErr }); !errors.Is(err, hookErr) {
		t.Fatalf("storeLogs with a failing hook = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	rb, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: BoltOptions()})
	if err != nil {
		t.Fatal(err)
	}
	same(t, first, rb.GetLog)
	if last, _ := rb.LastIndex(); last != 5 {
		t.Fatalf("raft-boltdb sees last %d, want 5 (the aborted batch must not be there)", last)
	}
	second := entries(6)
	if err := rb.StoreLogs(second); err != nil {
		t.Fatal(err)
	}
	rb.Close()
	b, err = openBoltLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	same(t, append(first, second...), b.GetLog)
	if err := b.DeleteRange(1, 7); err != nil {
		t.Fatal(err)
	}
	if f, _ := b.FirstIndex(); f != 8 {
		t.Fatalf("first after DeleteRange(1,7) = %d, want 8", f)
	}
	if l, _ := b.LastIndex(); l != 10 {
		t.Fatalf("last = %d, want 10", l)
	}
	var l raft.Log
	if err := b.GetLog(3, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(3) after delete = %v, want ErrLogNotFound", err)
	}
}
