package replica

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"coord/coord/par"
)

// Storage is everything a replica keeps on disk: the raft log, the term and
// vote (stable store) and the snapshots. It is the seam where
// protocol-aware recovery wraps the stores.
type Storage struct {
	Log    raft.LogStore
	Stable raft.StableStore
	Snaps  raft.SnapshotStore
	close  func() error
}

// Close releases the stores.
func (s *Storage) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// logCacheSize is how many recent entries sit in memory in front of the
// log store (followers and the leader read recent entries on every append).
const logCacheSize = 1024

// snapshotsRetained is how many snapshots stay on disk.
const snapshotsRetained = 2

// OpenStorage opens (creating if needed) the stores under dir: raft.db
// (bbolt: log and stable store) and snapshots/.
func OpenStorage(dir string, logOutput io.Writer) (*Storage, error) {
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), BoltOptions: boltOptions()})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", filepath.Join(dir, "raft.db"), err)
	}
	cache, err := raft.NewLogCache(logCacheSize, bolt)
	if err != nil {
		bolt.Close()
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStore(dir, snapshotsRetained, logOutput)
	if err != nil {
		bolt.Close()
		return nil, fmt.Errorf("open snapshot store in %s: %w", dir, err)
	}
	return &Storage{Log: cache, Stable: bolt, Snaps: snaps, close: bolt.Close}, nil
}

// boltOptions are etcd's choices for a log-shaped bbolt file: the free
// list is not written at every commit (rebuilt by a scan at open) and is
// kept as a hash map, so a commit after log compaction does not walk a
// long free array.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
	}
}

// OpenPARStorage builds the replica's stores over an opened (and
// recovered) par.Store: raft's LogCache above the par LogStore, the par
// two-copy StableStore, and the file snapshot store under dir. Closing the
// Storage closes p.
func OpenPARStorage(p *par.Store, dir string, logOutput io.Writer) (*Storage, error) {
	cache, err := raft.NewLogCache(logCacheSize, p.Log)
	if err != nil {
		return nil, err
	}
	var snaps raft.SnapshotStore = p.Snapshots() // verified, sidecar-checked (par §4.6)
	if p.Snapshots() == nil {
		fs, err := raft.NewFileSnapshotStore(dir, snapshotsRetained, logOutput)
		if err != nil {
			return nil, fmt.Errorf("open snapshot store in %s: %w", dir, err)
		}
		snaps = fs
	}
	return &Storage{Log: cache, Stable: p.Stable, Snaps: snaps, close: p.Close}, nil
}

// CheckDataDir creates dir if missing and proves it is writable.
func CheckDataDir(dir string) error { return checkDataDir(dir) }

// checkDataDir creates dir if missing and proves it is writable, so that a
// bad data dir is one clear error at start-up instead of a failure deep in
// the first write.
func checkDataDir(dir string) error {
	if dir == "" {
		return errors.New("data dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s: not a directory", dir)
	}
	probe := filepath.Join(dir, ".write-probe")
	f, err := os.OpenFile(probe, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(probe)
}
