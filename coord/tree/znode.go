package tree

import "coord/proto/coordpb"

// znode is one node's state, stored by value in the node tree (one
// allocation per node together with its radix leaf). A znode in a
// committed Tree is never modified: a change stores a new value.
//
// It is deliberately not a coordpb.Stat: proto messages carry internal
// state and pointers; the Stat is built only when a read asks for it.
type znode struct {
	data        []byte // shared with readers: never modified in place
	czxid       uint64
	mzxid       uint64
	pzxid       uint64
	ctime       int64
	mtime       int64
	version     int64
	cversion    int64
	numChildren int64
	seq         uint64 // next sequence number for sequential children
	// aux is the owner session of an EPHEMERAL node or the TTL in
	// milliseconds of a TTL node (the two are exclusive), else 0.
	aux  uint64
	mode coordpb.CreateMode
	dir  bool // a directory: created as one or has had a child
	// acl is the node's ACL; nil is open (world:anyone, all perms).
	acl      []aclEntry
	aversion int64
}

// owner is the session owning an ephemeral node, 0 for any other node.
func (n *znode) owner() uint64 {
	if n.mode == coordpb.CreateMode_EPHEMERAL {
		return n.aux
	}
	return 0
}

// ttl is a TTL node's TTL in milliseconds, 0 for any other node.
func (n *znode) ttl() int64 {
	if n.mode == coordpb.CreateMode_TTL {
		return int64(n.aux)
	}
	return 0
}

func (n *znode) stat() *coordpb.Stat {
	st := new(coordpb.Stat)
	n.fillStat(st)
	return st
}

func (n *znode) fillStat(st *coordpb.Stat) {
	st.Czxid = n.czxid
	st.Mzxid = n.mzxid
	st.Pzxid = n.pzxid
	st.Ctime = n.ctime
	st.Mtime = n.mtime
	st.Version = n.version
	st.Cversion = n.cversion
	st.EphemeralOwner = n.owner()
	st.DataLength = int64(len(n.data))
	st.NumChildren = n.numChildren
	st.TtlMs = n.ttl()
	st.Mode = n.mode
	st.Directory = n.dir
	st.Aversion = n.aversion
}
