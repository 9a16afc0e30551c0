package tree

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"coord/proto/coordpb"
)

// dumpState renders everything in a Tree, indexes included, one line per
// entry, so two states compare as strings. withZxid adds the last zxid.
func dumpState(tr *Tree, withZxid bool) string {
	var b strings.Builder
	if withZxid {
		fmt.Fprintf(&b, "zxid %d\n", tr.zxid)
	}
	it := tr.nodes.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		fmt.Fprintf(&b, "node %s data=%q seq=%d stat={%v} acl=%v\n", k, n.data, n.seq, n.stat(), n.acl)
	}
	sit := tr.sessions.Root().Iterator()
	for k, v, ok := sit.Next(); ok; k, v, ok = sit.Next() {
		fmt.Fprintf(&b, "session %d timeout=%d", binary.BigEndian.Uint64(k), v.timeoutMs)
		if v.owner != "" {
			fmt.Fprintf(&b, " owner=%s", v.owner)
		}
		b.WriteString("\n")
	}
	eit := tr.ephem.Root().Iterator()
	for k, _, ok := eit.Next(); ok; k, _, ok = eit.Next() {
		fmt.Fprintf(&b, "ephem %d %s\n", binary.BigEndian.Uint64(k), k[8:])
	}
	tit := tr.ttls.Root().Iterator()
	for k, _, ok := tit.Next(); ok; k, _, ok = tit.Next() {
		fmt.Fprintf(&b, "ttl %d %s\n", int64(binary.BigEndian.Uint64(k)^(1<<63)), k[8:])
	}
	uit := tr.users.Root().Iterator()
	for k, u, ok := uit.Next(); ok; k, u, ok = uit.Next() {
		fmt.Fprintf(&b, "user %s hash=%q groups=%v\n", k, u.hash, u.groups)
	}
	return b.String()
}

// checkInvariants verifies the rules every reachable state keeps.
func checkInvariants(t testing.TB, tr *Tree) {
	t.Helper()
	children := map[string]int64{}
	ephem := map[string]bool{}
	ttls := map[string]bool{}
	root, ok := tr.get("/")
	if !ok || root.mode != coordpb.CreateMode_PERSISTENT {
		t.Fatalf("root missing or not persistent: %+v", root)
	}
	it := tr.nodes.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		p := string(k)
		if err := ValidatePath(p); err != nil {
			t.Fatalf("stored invalid path: %v", err)
		}
		if n.czxid > tr.zxid || n.mzxid > tr.zxid || n.pzxid > tr.zxid {
			t.Fatalf("%s: zxid from the future: %+v (tree %d)", p, n, tr.zxid)
		}
		if p != "/" {
			parent, ok := tr.get(parentOf(p))
			if !ok {
				t.Fatalf("%s: parent missing", p)
			}
			if parent.mode == coordpb.CreateMode_EPHEMERAL {
				t.Fatalf("%s: child of an ephemeral", p)
			}
			children[parentOf(p)]++
		}
		switch n.mode {
		case coordpb.CreateMode_EPHEMERAL:
			if !tr.HasSession(n.aux) {
				t.Fatalf("%s: ephemeral of dead session %d", p, n.aux)
			}
			ephem[string(ephemKey(n.aux, p))] = true
		case coordpb.CreateMode_TTL:
			if n.ttl() <= 0 {
				t.Fatalf("%s: TTL node with ttl %d", p, n.ttl())
			}
			ttls[string(ttlKeyOf(p, &n))] = true
		default:
			if n.aux != 0 {
				t.Fatalf("%s: %v with aux %d", p, n.mode, n.aux)
			}
		}
	}
	var acls int64
	it = tr.nodes.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		if n.acl != nil {
			acls++
		}
		if n.numChildren != children[string(k)] {
			t.Fatalf("%s: numChildren %d, has %d", k, n.numChildren, children[string(k)])
		}
	}
	if acls != tr.aclNodes {
		t.Fatalf("aclNodes %d, %d nodes have an ACL", tr.aclNodes, acls)
	}
	if tr.ephem.Len() != len(ephem) || tr.ttls.Len() != len(ttls) {
		t.Fatalf("index sizes: ephem %d want %d, ttl %d want %d", tr.ephem.Len(), len(ephem), tr.ttls.Len(), len(ttls))
	}
	eit := tr.ephem.Root().Iterator()
	for k, _, ok := eit.Next(); ok; k, _, ok = eit.Next() {
		if !ephem[string(k)] {
			t.Fatalf("stale ephemeral index entry %q", k)
		}
	}
	tit := tr.ttls.Root().Iterator()
	for k, _, ok := tit.Next(); ok; k, _, ok = tit.Next() {
		if !ttls[string(k)] {
			t.Fatalf("stale TTL index entry %q", k)
		}
	}
}
