package tree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"coord/proto/coordpb"
)

// znode is one node's state. It is immutable once in a tree: changes copy
// it (old trees share it).
type znode struct {
	data        []byte
	czxid       uint64
	mzxid       uint64
	pzxid       uint64
	ctime       int64
	mtime       int64
	version     int64
	cversion    int64
	owner       uint64
	numChildren int64
	seq         uint64 // next sequence number for sequential children
	ttl         int64
	mode        coordpb.CreateMode
}

func (n *znode) stat() *coordpb.Stat {
	return &coordpb.Stat{
		Czxid:          n.czxid,
		Mzxid:          n.mzxid,
		Pzxid:          n.pzxid,
		Ctime:          n.ctime,
		Mtime:          n.mtime,
		Version:        n.version,
		Cversion:       n.cversion,
		EphemeralOwner: n.owner,
		DataLength:     int64(len(n.data)),
		NumChildren:    n.numChildren,
		TtlMs:          n.ttl,
		Mode:           n.mode,
	}
}

// Tree is an immutable snapshot of the replicated state: znodes, sessions
// and their indexes. Any number of goroutines may read it without locks.
type Tree struct {
	nodes    *iradix.Tree[*znode]
	sessions *iradix.Tree[int64]    // 8-byte big-endian id → timeout ms
	ephem    *iradix.Tree[struct{}] // 8-byte id + path
	ttls     *iradix.Tree[struct{}] // path of each TTL node
	zxid     uint64
}

// Session is a replicated session.
type Session struct {
	ID        uint64
	TimeoutMs int64
}

// New returns the empty state: only the root exists.
func New() *Tree {
	nodes, _, _ := iradix.New[*znode]().Insert([]byte("/"), &znode{})
	return &Tree{
		nodes:    nodes,
		sessions: iradix.New[int64](),
		ephem:    iradix.New[struct{}](),
		ttls:     iradix.New[struct{}](),
	}
}

// Zxid is the last applied zxid (raft index); failed commands advance it.
func (t *Tree) Zxid() uint64 { return t.zxid }

// Len is the number of znodes, the root included.
func (t *Tree) Len() int { return t.nodes.Len() }

func (t *Tree) get(p string) (*znode, bool) { return t.nodes.Get([]byte(p)) }

// Get returns a node's data and stat.
func (t *Tree) Get(p string) ([]byte, *coordpb.Stat, error) {
	if err := ValidatePath(p); err != nil {
		return nil, nil, err
	}
	n, ok := t.get(p)
	if !ok {
		return nil, nil, ErrNoNode
	}
	return n.data, n.stat(), nil
}

// Exists returns a node's stat and whether it exists.
func (t *Tree) Exists(p string) (*coordpb.Stat, bool, error) {
	if err := ValidatePath(p); err != nil {
		return nil, false, err
	}
	n, ok := t.get(p)
	if !ok {
		return nil, false, nil
	}
	return n.stat(), true, nil
}

// Children lists the names of p's children in byte order, strictly after
// startAfter, at most limit of them (limit <= 0: all), and whether more
// follow. Grandchildren are skipped by seeking past each child's subtree,
// so the cost is proportional to the names returned, not the subtree.
func (t *Tree) Children(p, startAfter string, limit int) ([]string, *coordpb.Stat, bool, error) {
	if err := ValidatePath(p); err != nil {
		return nil, nil, false, err
	}
	if strings.Contains(startAfter, "/") {
		return nil, nil, false, errorf(ErrInvalidArgument, fmt.Sprintf("start after %q: a child name has no /", startAfter))
	}
	n, ok := t.get(p)
	if !ok {
		return nil, nil, false, ErrNoNode
	}
	prefix := childPrefix(p)
	names := make([]string, 0, min(max(limit, 0), int(n.numChildren), 1024))
	it := t.nodes.Root().Iterator()
	seek := []byte(prefix)
	if startAfter != "" {
		seek = append([]byte(prefix+startAfter), 0)
	}
	it.SeekLowerBound(seek)
	for {
		k, _, ok := it.Next()
		if !ok || !bytes.HasPrefix(k, []byte(prefix)) {
			return names, n.stat(), false, nil
		}
		rest := k[len(prefix):]
		if len(rest) == 0 {
			continue // the root itself when p == "/"
		}
		if i := bytes.IndexByte(rest, '/'); i >= 0 {
			// A descendant of child rest[:i]: jump past its subtree
			// ('0' is the byte after '/').
			next := make([]byte, 0, len(prefix)+i+1)
			next = append(append(append(next, prefix...), rest[:i]...), '0')
			it = t.nodes.Root().Iterator() // an iterator seeks only once
			it.SeekLowerBound(next)
			continue
		}
		if limit > 0 && len(names) == limit {
			return names, n.stat(), true, nil
		}
		names = append(names, string(rest))
	}
}

func sessionKey(id uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], id)
	return b[:]
}

func ephemKey(id uint64, p string) []byte { return append(sessionKey(id), p...) }

// HasSession reports whether a session is live in the replicated state.
func (t *Tree) HasSession(id uint64) bool {
	_, ok := t.sessions.Get(sessionKey(id))
	return ok
}

// SessionTimeout returns a live session's timeout in milliseconds.
func (t *Tree) SessionTimeout(id uint64) (int64, bool) { return t.sessions.Get(sessionKey(id)) }

// Sessions lists the live sessions sorted by id.
func (t *Tree) Sessions() []Session {
	out := make([]Session, 0, t.sessions.Len())
	it := t.sessions.Root().Iterator()
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		out = append(out, Session{ID: binary.BigEndian.Uint64(k), TimeoutMs: v})
	}
	return out
}

// Ephemerals lists the paths a session owns, sorted.
func (t *Tree) Ephemerals(id uint64) []string {
	var out []string
	it := t.ephem.Root().Iterator()
	it.SeekPrefix(sessionKey(id))
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		out = append(out, string(k[8:]))
	}
	return out
}

// ExpiredTTL lists up to max TTL nodes (max <= 0: all) without children
// whose mtime+ttl is not after nowMs, for the leader to propose deleting.
func (t *Tree) ExpiredTTL(nowMs int64, max int) []*coordpb.ExpireTTLNode {
	var out []*coordpb.ExpireTTLNode
	it := t.ttls.Root().Iterator()
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		n, found := t.nodes.Get(k)
		if !found || n.numChildren > 0 || n.mtime+n.ttl > nowMs {
			continue
		}
		out = append(out, &coordpb.ExpireTTLNode{Path: string(k), Mzxid: n.mzxid})
		if max > 0 && len(out) == max {
			break
		}
	}
	return out
}
