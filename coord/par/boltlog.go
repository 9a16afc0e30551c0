package par

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// boltLog is raft.db's log in raft-boltdb v2's on-disk format (buckets
// "logs" and "conf", big-endian index keys, go-msgpack values encoded
// with TimeNotBuiltin as raft-boltdb does by default), so files written
// by either open with the other. par owns it instead of using raft-boltdb
// for two reasons of write cost (docs/PAR.md, session 6):
//
//   - storeLogs runs a hook after the batch is encoded into the write
//     transaction and before the commit: StoreLogs waits there for the
//     identifiers' direct write, which so overlaps with the encoding
//     instead of adding its latency to every append, and still completes
//     before bbolt's fdatasync (direct.go);
//   - the msgpack handles are shared (raft-boltdb builds a new handle per
//     entry, which rebuilds the codec's type cache every time), and no
//     go-metrics samples are taken.
type boltLog struct {
	db *bbolt.DB
}

var (
	bucketLogs = []byte("logs")
	bucketConf = []byte("conf")

	// Handles are safe for concurrent use once configured.
	encHandle = &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
	decHandle = &codec.MsgpackHandle{}
)

var _ raft.LogStore = (*boltLog)(nil)

// openBoltLog opens (creating) raft.db at path with BoltOptions.
func openBoltLog(path string) (*boltLog, error) {
	db, err := bbolt.Open(path, 0o600, BoltOptions())
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketLogs); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketConf)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltLog{db: db}, nil
}

func (b *boltLog) Close() error { return b.db.Close() }

func (b *boltLog) edge(last bool) (uint64, error) {
	var i uint64
	err := b.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		k, _ := c.First()
		if last {
			k, _ = c.Last()
		}
		if len(k) == 8 {
			i = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return i, err
}

// FirstIndex is the first key of the log bucket (0: empty).
func (b *boltLog) FirstIndex() (uint64, error) { return b.edge(false) }

// LastIndex is the last key of the log bucket (0: empty).
func (b *boltLog) LastIndex() (uint64, error) { return b.edge(true) }

// GetLog decodes entry idx (raft.ErrLogNotFound when absent).
func (b *boltLog) GetLog(idx uint64, out *raft.Log) error {
	return b.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(key(idx))
		if v == nil {
			return raft.ErrLogNotFound
		}
		return codec.NewDecoderBytes(v, decHandle).Decode(out)
	})
}

// StoreLog stores one entry.
func (b *boltLog) StoreLog(l *raft.Log) error { return b.storeLogs([]*raft.Log{l}, nil) }

// StoreLogs stores the entries in one durable commit.
func (b *boltLog) StoreLogs(logs []*raft.Log) error { return b.storeLogs(logs, nil) }

// storeLogs stores logs in one transaction; beforeCommit, when set, runs
// after every entry is in the transaction and before its commit writes a
// byte, and its error aborts the commit.
func (b *boltLog) storeLogs(logs []*raft.Log, beforeCommit func() error) error {
	tx, err := b.db.Begin(true)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	bucket := tx.Bucket(bucketLogs)
	for _, l := range logs {
		var buf bytes.Buffer
		if err := codec.NewEncoder(&buf, encHandle).Encode(l); err != nil {
			return fmt.Errorf("encode entry %d: %w", l.Index, err)
		}
		if err := bucket.Put(key(l.Index), buf.Bytes()); err != nil {
			return err
		}
	}
	if beforeCommit != nil {
		if err := beforeCommit(); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DeleteRange deletes [min, max] in one write transaction (raft's
// conflict truncation, a torn tail; a compaction goes through
// deletePrefixChunk instead).
func (b *boltLog) DeleteRange(min, max uint64) error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		for k, _ := c.Seek(key(min)); k != nil && binary.BigEndian.Uint64(k) <= max; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// deletePrefixChunk deletes the lowest keys <= max in one write
// transaction, at most n of them and no more once maxBytes of keys and
// values are gone (at least one key, so large entries still progress), and
// reports how many it deleted and whether keys <= max remain. A
// compaction calls it in a loop (LogStore.compactPrefix) so that each
// transaction stays short and StoreLogs commits between them; deleting
// lowest first keeps the remaining keys contiguous at every commit.
//
// It starts at the bucket's first key, not at the range's start, so keys
// an interrupted compaction left below the journal's first index go too.
// The transaction does nothing but this one cursor walk: bbolt (v1.3.5)
// skips the key after a Cursor.Delete when the leaf was already modified
// in the same transaction (etcd-io/bbolt#146), which a walk over pages
// read-only until now cannot meet (TestBoltLog_DeletePrefixChunks checks
// the pattern, TestBbolt_CursorDeleteSkipsAfterWrite the skip itself). more is computed by a fresh seek
// after the deletes, so even a skipped key would be found by the next
// chunk, never left behind silently.
func (b *boltLog) deletePrefixChunk(max uint64, n, maxBytes int) (deleted int, more bool, err error) {
	err = b.db.Update(func(tx *bbolt.Tx) error {
		deleted = 0
		bytes := 0
		c := tx.Bucket(bucketLogs).Cursor()
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= max && deleted < n && bytes < maxBytes; k, v = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
			deleted++
			bytes += len(k) + len(v)
		}
		k, _ := c.First()
		more = k != nil && binary.BigEndian.Uint64(k) <= max
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return deleted, more, nil
}

func key(i uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, i)
	return k
}
