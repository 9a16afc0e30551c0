package tree

import (
	"encoding/binary"
	"math"

	"coord/proto/coordpb"
)

// The TTL index holds one key per TTL node: its deadline (mtime + ttl) as
// 8 order-preserving bytes, then its path. ExpiredTTL walks it from the
// earliest deadline and stops at the first one in the future, so its cost
// grows with the nodes due (plus due nodes kept alive by children), not
// with the tree.

// ttlDeadline is mtime+ttl, saturating instead of overflowing.
func ttlDeadline(mtime, ttl int64) int64 {
	if ttl > 0 && mtime > math.MaxInt64-ttl {
		return math.MaxInt64
	}
	return mtime + ttl
}

// sortableInt64 maps an int64 to a uint64 with the same order.
func sortableInt64(v int64) uint64 { return uint64(v) ^ (1 << 63) }

func ttlKey(deadline int64, p string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(p)), sortableInt64(deadline)), p...)
}

// ttlKeyOf is n's TTL index key; n must be a TTL node.
func ttlKeyOf(p string, n *znode) []byte { return ttlKey(ttlDeadline(n.mtime, n.ttl()), p) }

// ExpiredTTL lists up to limit (limit <= 0: all) TTL nodes that have no
// children and whose mtime+ttl is not after nowMs, earliest deadline
// first, for the leader to propose in an ExpireTTL command. Each entry
// carries the node's mzxid, so a node modified after the leader looked
// survives the command.
func (t *Tree) ExpiredTTL(nowMs int64, limit int) []*coordpb.ExpireTTLNode {
	var out []*coordpb.ExpireTTLNode
	it := t.ttls.Root().Iterator()
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		if len(k) < 8 || binary.BigEndian.Uint64(k) > sortableInt64(nowMs) {
			break
		}
		p := k[8:]
		n, found := t.nodes.Get(p)
		if !found {
			panic("tree: TTL index lists a missing node " + string(p))
		}
		if n.numChildren > 0 {
			continue
		}
		out = append(out, &coordpb.ExpireTTLNode{Path: string(p), Mzxid: n.mzxid})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// expireTTL deletes each listed node that is still a TTL node, still
// unmodified since the leader looked (same mzxid) and still childless; it
// skips the others silently.
func (x *Txn) expireTTL(nodes []*coordpb.ExpireTTLNode) {
	for _, e := range nodes {
		p := e.GetPath()
		if p == "/" || ValidatePath(p) != nil {
			continue
		}
		n, ok := x.get(p)
		if !ok || n.mode != coordpb.CreateMode_TTL || n.mzxid != e.GetMzxid() || n.numChildren > 0 {
			continue
		}
		x.removeSubtree(p)
	}
}
