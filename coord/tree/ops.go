package tree

import (
	"fmt"

	"coord/proto/coordpb"
)

// This file holds the four Txn ops. Each checks everything it can fail on
// before it changes anything, so a failing single op needs no rollback.

func (x *Txn) create(op *coordpb.CreateOp) (string, *coordpb.Stat, error) {
	p, sequential := op.GetPath(), op.GetSequential()
	if err := validate(p, sequential); err != nil {
		return "", nil, err
	}
	if err := checkReserved(p); err != nil {
		return "", nil, err
	}
	mode, session, ttl := op.GetMode(), op.GetSessionId(), op.GetTtlMs()
	var aux uint64
	switch mode {
	case coordpb.CreateMode_PERSISTENT, coordpb.CreateMode_CONTAINER:
	case coordpb.CreateMode_EPHEMERAL:
		if session == 0 {
			return "", nil, errorf(ErrSessionExpired, "an ephemeral node needs a session")
		}
		if err := x.useSession(session); err != nil {
			return "", nil, err
		}
		aux = session
	case coordpb.CreateMode_TTL:
		if ttl <= 0 {
			return "", nil, errorf(ErrInvalidArgument, fmt.Sprintf("a TTL node needs a positive ttl, got %d ms", ttl))
		}
		aux = uint64(ttl)
	default:
		return "", nil, errorf(ErrInvalidArgument, fmt.Sprintf("unknown create mode %d", mode))
	}
	if mode != coordpb.CreateMode_EPHEMERAL && session != 0 {
		return "", nil, errorf(ErrInvalidArgument, "a session id is only for ephemeral nodes")
	}
	if mode != coordpb.CreateMode_TTL && ttl != 0 {
		return "", nil, errorf(ErrInvalidArgument, "a ttl is only for TTL nodes")
	}
	if mode == coordpb.CreateMode_EPHEMERAL && op.GetDirectory() {
		return "", nil, errorf(ErrInvalidArgument, "an ephemeral node cannot be a directory (it may not have children)")
	}
	parentPath := parentOf(p + "x") // a sequential path may end in '/'
	if p == "/" && !sequential {
		parentPath = "/"
	}
	if err := x.check1(parentPath, PermCreate); err != nil {
		return "", nil, err
	}
	acl, err := toACL(op.GetAcl(), x.caller)
	if err != nil {
		return "", nil, err
	}
	if p == "/" && !sequential {
		return "", nil, ErrNodeExists
	}
	parent, ok := x.get(parentPath)
	if !ok && op.GetParents() {
		if err := x.makeParents(parentPath, p, sequential); err != nil {
			return "", nil, err
		}
		parent, ok = x.get(parentPath)
	}
	if !ok {
		return "", nil, errorf(ErrNoNode, "parent node does not exist: "+parentPath)
	}
	if parent.mode == coordpb.CreateMode_EPHEMERAL {
		return "", nil, errorf(ErrNoChildrenForEphemerals, "ephemeral nodes may not have children: "+parentPath)
	}
	if sequential {
		p = sequentialName(p, parent.seq)
		if len(p) > MaxPathBytes {
			return "", nil, badPath(p, fmt.Sprintf("longer than %d bytes", MaxPathBytes))
		}
		parent.seq++
	}
	if _, exists := x.get(p); exists {
		return "", nil, ErrNodeExists
	}
	n := znode{
		data:  op.GetData(),
		czxid: x.zxid, mzxid: x.zxid, pzxid: x.zxid,
		ctime: x.now, mtime: x.now,
		aux:  aux,
		mode: mode,
		dir:  op.GetDirectory(),
		acl:  acl,
	}
	x.aclNodes += aclDelta(nil, acl)
	parent.dir = true // a node with a child is a directory from now on
	parent.cversion++
	parent.pzxid = x.zxid
	parent.numChildren++
	x.put(parentPath, &parent)
	x.put(p, &n)
	switch mode {
	case coordpb.CreateMode_EPHEMERAL:
		x.ephem.Insert(ephemKey(session, p), struct{}{})
	case coordpb.CreateMode_TTL:
		x.ttls.Insert(ttlKeyOf(p, &n), struct{}{})
	}
	x.emit(EventNodeCreated, p, n.acl)
	x.emit(EventNodeChildrenChanged, parentPath, parent.acl)
	return p, n.stat(), nil
}

// makeParents creates dir and its missing ancestors as containers, top
// down, for a create of p with Parents set. It checks everything first:
// the nearest existing ancestor must accept children (and grant the
// caller CREATE), and a sequential p
// must still fit MaxPathBytes under a fresh parent (counter 0), so that a
// refused create changes nothing.
func (x *Txn) makeParents(dir, p string, sequential bool) error {
	var missing []string
	top := dir
	for {
		if _, ok := x.get(top); ok {
			break
		}
		missing = append(missing, top)
		top = parentOf(top)
	}
	anc, _ := x.get(top)
	if anc.mode == coordpb.CreateMode_EPHEMERAL {
		return errorf(ErrNoChildrenForEphemerals, "ephemeral nodes may not have children: "+top)
	}
	// Making the first missing node is a create under top.
	if err := x.check1(top, PermCreate); err != nil {
		return err
	}
	for _, m := range missing {
		if err := checkReserved(m); err != nil {
			return err
		}
	}
	if sequential && len(sequentialName(p, 0)) > MaxPathBytes {
		return badPath(p, fmt.Sprintf("longer than %d bytes once numbered", MaxPathBytes))
	}
	for i := len(missing) - 1; i >= 0; i-- {
		m := missing[i]
		pp := parentOf(m)
		parent, _ := x.get(pp)
		parent.dir = true
		parent.cversion++
		parent.pzxid = x.zxid
		parent.numChildren++
		x.put(pp, &parent)
		// A made parent takes the ACL of the ancestor it was made under:
		// it grants nobody more than that ancestor already did.
		n := znode{
			czxid: x.zxid, mzxid: x.zxid, pzxid: x.zxid,
			ctime: x.now, mtime: x.now,
			mode: coordpb.CreateMode_CONTAINER,
			dir:  true,
			acl:  anc.acl,
		}
		x.aclNodes += aclDelta(nil, n.acl)
		x.put(m, &n)
		x.emit(EventNodeCreated, m, n.acl)
		x.emit(EventNodeChildrenChanged, pp, parent.acl)
	}
	return nil
}

func (x *Txn) set(op *coordpb.SetOp) (*coordpb.Stat, error) {
	p := op.GetPath()
	n, err := x.versioned(p, PermWrite, op.GetVersion())
	if err != nil {
		return nil, err
	}
	if n.mode == coordpb.CreateMode_TTL {
		x.ttls.Delete(ttlKeyOf(p, &n))
	}
	n.data = op.GetData()
	n.version++
	n.mzxid = x.zxid
	n.mtime = x.now
	x.put(p, &n)
	if n.mode == coordpb.CreateMode_TTL {
		x.ttls.Insert(ttlKeyOf(p, &n), struct{}{})
	}
	x.emit(EventNodeDataChanged, p, n.acl)
	return n.stat(), nil
}

func (x *Txn) check(op *coordpb.CheckOp) (*coordpb.Stat, error) {
	n, err := x.versioned(op.GetPath(), PermRead, op.GetVersion())
	if err != nil {
		return nil, err
	}
	return n.stat(), nil
}

// versioned returns a copy of the node at p after the checks a set and a
// check share: a valid path, perm on it, the node exists, and its version
// matches (-1: any).
func (x *Txn) versioned(p string, perm Perm, version int64) (znode, error) {
	if err := ValidatePath(p); err != nil {
		return znode{}, err
	}
	if err := x.check1(p, perm); err != nil {
		return znode{}, err
	}
	n, ok := x.get(p)
	if !ok {
		return znode{}, ErrNoNode
	}
	if err := checkVersion(&n, version); err != nil {
		return znode{}, err
	}
	return n, nil
}

func (x *Txn) delete(op *coordpb.DeleteOp) (int64, error) {
	p := op.GetPath()
	if err := ValidatePath(p); err != nil {
		return 0, err
	}
	if p == "/" {
		return 0, errorf(ErrRootNode, "the root node cannot be deleted")
	}
	if err := x.check1(parentOf(p), PermDelete); err != nil {
		return 0, err
	}
	n, ok := x.get(p)
	if !ok {
		return 0, ErrNoNode
	}
	if err := checkVersion(&n, op.GetVersion()); err != nil {
		return 0, err
	}
	if n.numChildren > 0 && !op.GetRecursive() {
		return 0, ErrNotEmpty
	}
	if n.numChildren > 0 && x.aclNodes > 0 && !x.caller.GetSuper() {
		// A recursive delete deletes every child of every node in the
		// subtree: it needs DELETE on each node that has children.
		it := x.nodes.Root().Iterator()
		it.SeekPrefix([]byte(p))
		for k, m, ok := it.Next(); ok; k, m, ok = it.Next() {
			if (len(k) == len(p) || k[len(p)] == '/') && m.numChildren > 0 && !allowed(m.acl, PermDelete, x.caller) {
				return 0, errorf(ErrNoAuth, fmt.Sprintf("%s: recursive delete needs d on every node with children", ErrNoAuth))
			}
		}
	}
	return x.removeSubtree(p), nil
}

// removeSubtree deletes p and everything under it, updates p's parent and
// then deletes each container ancestor left without children. It returns
// the number of nodes removed. p must exist and not be the root.
func (x *Txn) removeSubtree(p string) int64 {
	var removed int64
	if n, _ := x.get(p); n.numChildren > 0 {
		var under []string
		it := x.nodes.Root().Iterator()
		it.SeekPrefix([]byte(childPrefix(p)))
		for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
			under = append(under, string(k))
		}
		// Reverse byte order puts every node before its parent, so events
		// read as a bottom-up teardown.
		for i := len(under) - 1; i >= 0; i-- {
			x.removeOne(under[i])
			removed++
		}
	}
	x.removeOne(p)
	removed++
	for {
		parentPath := parentOf(p)
		parent, ok := x.get(parentPath)
		if !ok {
			panic("tree: parent of " + p + " is missing")
		}
		parent.cversion++
		parent.pzxid = x.zxid
		parent.numChildren--
		x.put(parentPath, &parent)
		x.emit(EventNodeChildrenChanged, parentPath, parent.acl)
		if parentPath == "/" || parent.mode != coordpb.CreateMode_CONTAINER || parent.numChildren > 0 {
			return removed
		}
		x.removeOne(parentPath) // an emptied container goes too
		removed++
		p = parentPath
	}
}

// removeOne deletes one node and its index entries, not its parent's
// counters.
func (x *Txn) removeOne(p string) {
	n, ok := x.nodes.Delete([]byte(p))
	if !ok {
		panic("tree: removing missing node " + p)
	}
	x.aclNodes += aclDelta(n.acl, nil)
	switch n.mode {
	case coordpb.CreateMode_EPHEMERAL:
		x.ephem.Delete(ephemKey(n.aux, p))
	case coordpb.CreateMode_TTL:
		x.ttls.Delete(ttlKeyOf(p, &n))
	}
	x.emit(EventNodeDeleted, p, n.acl)
}
