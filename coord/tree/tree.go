package tree

import (
	"bytes"
	"fmt"
	"strings"

	iradix "coord/coord/tree/internal/radix"
	"coord/proto/coordpb"
)

// Tree is an immutable snapshot of the replicated state: znodes, sessions
// and their indexes. Any number of goroutines may read it without locks;
// Txn derives the next state without changing this one.
type Tree struct {
	nodes    *iradix.Tree[znode]                // full path → node
	sessions *iradix.Tree[sessionRec]           // sessionKey(id) → timeout, owner
	ephem    *iradix.Tree[struct{}]             // ephemKey(owner, path)
	ttls     *iradix.Tree[struct{}]             // ttlKey(deadline, path)
	replies  *iradix.Tree[*coordpb.ApplyResult] // replyKey(session, request)
	users    *iradix.Tree[userRec]              // user name → password user
	zxid     uint64
	aclNodes int64 // nodes with an ACL; 0 lets every check return at once
}

// New returns the empty state: only the root "/" exists, with zero stat.
func New() *Tree {
	nodes, _, _ := iradix.New[znode]().Insert([]byte("/"), znode{dir: true})
	return &Tree{
		nodes:    nodes,
		sessions: iradix.New[sessionRec](),
		ephem:    iradix.New[struct{}](),
		ttls:     iradix.New[struct{}](),
		replies:  iradix.New[*coordpb.ApplyResult](),
		users:    iradix.New[userRec](),
	}
}

// Zxid is the last applied zxid (raft index); failed commands advance it.
func (t *Tree) Zxid() uint64 { return t.zxid }

// Len is the number of znodes, the root included.
func (t *Tree) Len() int { return t.nodes.Len() }

func (t *Tree) get(p string) (znode, bool) { return t.nodes.Get([]byte(p)) }

// Get returns a node's data and stat. The data is shared with the tree:
// callers must not modify it.
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

// Exists returns a node's stat and whether it exists. Its only error is a
// bad path.
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

// maxWalk is how many descendants Children steps over one by one before
// it seeks past a child's subtree instead.
const maxWalk = 8

// Children lists the names of p's children in byte order, strictly after
// startAfter, at most limit of them (limit <= 0: all), with p's stat and
// whether more names follow. Grandchildren are skipped by seeking past
// each child's subtree, so the cost grows with the names returned, not
// with the size of the subtree.
func (t *Tree) Children(p, startAfter string, limit int) (names []string, parent *coordpb.Stat, more bool, err error) {
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
	prefix := []byte(childPrefix(p))
	want := int(n.numChildren)
	if limit > 0 && limit < want {
		want = limit
	}
	names = make([]string, 0, min(want, 4096))
	// Seek to the first key after prefix+startAfter: names hold no byte
	// below 0x20, so appending 0x00 gives the smallest key after it.
	seek := append(append(append(make([]byte, 0, len(prefix)+len(startAfter)+1), prefix...), startAfter...), 0)
	if startAfter == "" {
		seek = seek[:len(prefix)]
	}
	it := t.nodes.Root().Iterator()
	it.SeekLowerBound(seek)
	walked := 0 // descendants stepped over since the last child or seek
	for {
		k, _, ok := it.Next()
		if !ok || !bytes.HasPrefix(k, prefix) {
			return names, n.stat(), false, nil
		}
		rest := k[len(prefix):]
		if len(rest) == 0 {
			continue // the root itself when p == "/"
		}
		if i := bytes.IndexByte(rest, '/'); i >= 0 {
			// A descendant of child rest[:i]. Stepping over a few is
			// cheaper than a seek; past that, jump over the child's whole
			// subtree ('0' is the byte after '/'). The skip happens here,
			// not at the child, because siblings such as "x!" sort between
			// "x" and "x/...". An iterator seeks only once: take a new one.
			if walked++; walked <= maxWalk {
				continue
			}
			walked = 0
			seek = append(append(append(seek[:0], prefix...), rest[:i]...), '0')
			it = t.nodes.Root().Iterator()
			it.SeekLowerBound(seek)
			continue
		}
		walked = 0
		if limit > 0 && len(names) == limit {
			return names, n.stat(), true, nil
		}
		names = append(names, string(rest))
	}
}
