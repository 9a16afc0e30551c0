package tree

import (
	"bytes"
	"fmt"

	iradix "github.com/hashicorp/go-immutable-radix/v2"

	"coord/proto/coordpb"
)

// Txn is a mutable batch of applies on top of a Tree, used by one
// goroutine. Commit publishes the result as a new Tree; the Tree it came
// from is unchanged.
type Txn struct {
	nodes    *iradix.Txn[*znode]
	sessions *iradix.Txn[int64]
	ephem    *iradix.Txn[struct{}]
	ttls     *iradix.Txn[struct{}]
	zxid     uint64
	events   []Event

	// Per-apply context.
	now int64
}

// Txn starts a batch on t.
func (t *Tree) Txn() *Txn {
	return &Txn{
		nodes:    t.nodes.Txn(),
		sessions: t.sessions.Txn(),
		ephem:    t.ephem.Txn(),
		ttls:     t.ttls.Txn(),
		zxid:     t.zxid,
	}
}

// Commit returns the state after every Apply so far.
func (x *Txn) Commit() *Tree {
	return &Tree{
		nodes:    x.nodes.CommitOnly(),
		sessions: x.sessions.CommitOnly(),
		ephem:    x.ephem.CommitOnly(),
		ttls:     x.ttls.CommitOnly(),
		zxid:     x.zxid,
	}
}

// Events returns the watch events of every Apply so far, in order.
func (x *Txn) Events() []Event { return x.events }

// checkpoint is a copy of a Txn's state to roll a failed multi back to.
type checkpoint struct {
	nodes    *iradix.Txn[*znode]
	sessions *iradix.Txn[int64]
	ephem    *iradix.Txn[struct{}]
	ttls     *iradix.Txn[struct{}]
	events   int
}

func (x *Txn) checkpoint() checkpoint {
	return checkpoint{x.nodes.Clone(), x.sessions.Clone(), x.ephem.Clone(), x.ttls.Clone(), len(x.events)}
}

func (x *Txn) rollback(c checkpoint) {
	x.nodes, x.sessions, x.ephem, x.ttls = c.nodes, c.sessions, c.ephem, c.ttls
	x.events = x.events[:c.events]
}

// Apply applies one command at zxid and returns its result. It never
// panics on bad input: a malformed command yields INVALID_ARGUMENT, and a
// failed command leaves the state unchanged (all or nothing).
func (x *Txn) Apply(zxid uint64, cmd *coordpb.Command) *coordpb.ApplyResult {
	if zxid > x.zxid {
		x.zxid = zxid
	}
	res := &coordpb.ApplyResult{Zxid: zxid, FailedOp: -1}
	if cmd == nil {
		return fail(res, errorf(ErrInvalidArgument, "empty command"), -1)
	}
	x.now = cmd.GetTimeMs()
	switch c := cmd.GetCmd().(type) {
	case *coordpb.Command_Txn:
		return x.applyTxn(res, c.Txn.GetOps())
	case *coordpb.Command_CreateSession:
		return fail(res, x.createSession(c.CreateSession), -1)
	case *coordpb.Command_CloseSession:
		return fail(res, x.closeSession(c.CloseSession.GetSessionId()), -1)
	case *coordpb.Command_ExpireTtl:
		x.expireTTL(c.ExpireTtl.GetNodes())
		return res
	}
	return fail(res, errorf(ErrInvalidArgument, "empty command"), -1)
}

func fail(res *coordpb.ApplyResult, err error, op int) *coordpb.ApplyResult {
	if err == nil {
		return res
	}
	res.Code = ErrorCode(err)
	res.Message = err.Error()
	res.FailedOp = int32(op)
	res.Results = nil
	return res
}

func (x *Txn) applyTxn(res *coordpb.ApplyResult, ops []*coordpb.Op) *coordpb.ApplyResult {
	// A single op validates everything before it mutates anything, so it
	// needs no checkpoint; a multi does (a later op may fail).
	var cp checkpoint
	if len(ops) > 1 {
		cp = x.checkpoint()
	}
	res.Results = make([]*coordpb.OpResult, 0, len(ops))
	for i, op := range ops {
		r, err := x.applyOp(op)
		if err != nil {
			if len(ops) > 1 {
				x.rollback(cp)
			}
			return fail(res, err, i)
		}
		res.Results = append(res.Results, r)
	}
	return res
}

func (x *Txn) applyOp(op *coordpb.Op) (*coordpb.OpResult, error) {
	switch o := op.GetOp().(type) {
	case *coordpb.Op_Create:
		p, stat, err := x.create(o.Create)
		if err != nil {
			return nil, err
		}
		return &coordpb.OpResult{Result: &coordpb.OpResult_Create{Create: &coordpb.CreateResult{Path: p, Stat: stat}}}, nil
	case *coordpb.Op_Set:
		stat, err := x.set(o.Set)
		if err != nil {
			return nil, err
		}
		return &coordpb.OpResult{Result: &coordpb.OpResult_Set{Set: &coordpb.SetResult{Stat: stat}}}, nil
	case *coordpb.Op_Delete:
		n, err := x.delete(o.Delete)
		if err != nil {
			return nil, err
		}
		return &coordpb.OpResult{Result: &coordpb.OpResult_Delete{Delete: &coordpb.DeleteResult{Deleted: n}}}, nil
	case *coordpb.Op_Check:
		stat, err := x.check(o.Check)
		if err != nil {
			return nil, err
		}
		return &coordpb.OpResult{Result: &coordpb.OpResult_Check{Check: &coordpb.CheckResult{Stat: stat}}}, nil
	}
	return nil, errorf(ErrInvalidArgument, "empty op")
}

func (x *Txn) get(p string) (*znode, bool) { return x.nodes.Get([]byte(p)) }
func (x *Txn) put(p string, n *znode)      { x.nodes.Insert([]byte(p), n) }
func (x *Txn) emit(t EventType, p string)  { x.events = append(x.events, Event{t, p, x.zxid}) }

func checkVersion(n *znode, want int64) error {
	if want != -1 && n.version != want {
		return errorf(ErrBadVersion, fmt.Sprintf("version mismatch: expected %d, current %d", want, n.version))
	}
	return nil
}

// SequenceFormat formats a sequential node's suffix: 10 digits or more,
// from a 64-bit counter that never wraps.
const SequenceFormat = "%010d"

func (x *Txn) create(op *coordpb.CreateOp) (string, *coordpb.Stat, error) {
	p := op.GetPath()
	if err := validate(p, op.GetSequential()); err != nil {
		return "", nil, err
	}
	mode := op.GetMode()
	switch mode {
	case coordpb.CreateMode_PERSISTENT, coordpb.CreateMode_CONTAINER:
	case coordpb.CreateMode_EPHEMERAL:
		if op.GetSessionId() == 0 {
			return "", nil, errorf(ErrSessionExpired, "ephemeral node needs a session")
		}
		if _, ok := x.sessions.Get(sessionKey(op.GetSessionId())); !ok {
			return "", nil, errorf(ErrSessionExpired, fmt.Sprintf("session %#x does not exist or has expired", op.GetSessionId()))
		}
	case coordpb.CreateMode_TTL:
		if op.GetTtlMs() <= 0 {
			return "", nil, errorf(ErrInvalidArgument, fmt.Sprintf("TTL node needs a positive ttl, got %d ms", op.GetTtlMs()))
		}
	default:
		return "", nil, errorf(ErrInvalidArgument, fmt.Sprintf("unknown create mode %d", mode))
	}
	if mode != coordpb.CreateMode_EPHEMERAL && op.GetSessionId() != 0 {
		return "", nil, errorf(ErrInvalidArgument, "a session id is only for ephemeral nodes")
	}
	if mode != coordpb.CreateMode_TTL && op.GetTtlMs() != 0 {
		return "", nil, errorf(ErrInvalidArgument, "a ttl is only for TTL nodes")
	}
	if p == "/" {
		return "", nil, ErrNodeExists
	}
	parentPath := parentOf(p + "x") // a sequential path may end in '/'
	parent, ok := x.get(parentPath)
	if !ok {
		return "", nil, errorf(ErrNoNode, "parent node does not exist: "+parentPath)
	}
	if parent.owner != 0 {
		return "", nil, errorf(ErrNoChildrenForEphemerals, "ephemeral nodes may not have children: "+parentPath)
	}
	np := *parent
	if op.GetSequential() {
		p += fmt.Sprintf(SequenceFormat, np.seq)
		if len(p) > MaxPathBytes {
			return "", nil, badPath(p, fmt.Sprintf("longer than %d bytes", MaxPathBytes))
		}
		np.seq++
	}
	if _, exists := x.get(p); exists {
		return "", nil, ErrNodeExists
	}
	n := &znode{
		data:  op.GetData(),
		czxid: x.zxid, mzxid: x.zxid, pzxid: x.zxid,
		ctime: x.now, mtime: x.now,
		owner: op.GetSessionId(),
		ttl:   op.GetTtlMs(),
		mode:  mode,
	}
	np.cversion++
	np.pzxid = x.zxid
	np.numChildren++
	x.put(parentPath, &np)
	x.put(p, n)
	if n.owner != 0 {
		x.ephem.Insert(ephemKey(n.owner, p), struct{}{})
	}
	if mode == coordpb.CreateMode_TTL {
		x.ttls.Insert([]byte(p), struct{}{})
	}
	x.emit(EventNodeCreated, p)
	x.emit(EventNodeChildrenChanged, parentPath)
	return p, n.stat(), nil
}

func (x *Txn) set(op *coordpb.SetOp) (*coordpb.Stat, error) {
	p := op.GetPath()
	if err := ValidatePath(p); err != nil {
		return nil, err
	}
	n, ok := x.get(p)
	if !ok {
		return nil, ErrNoNode
	}
	if err := checkVersion(n, op.GetVersion()); err != nil {
		return nil, err
	}
	nn := *n
	nn.data = op.GetData()
	nn.version++
	nn.mzxid = x.zxid
	nn.mtime = x.now
	x.put(p, &nn)
	x.emit(EventNodeDataChanged, p)
	return nn.stat(), nil
}

func (x *Txn) check(op *coordpb.CheckOp) (*coordpb.Stat, error) {
	p := op.GetPath()
	if err := ValidatePath(p); err != nil {
		return nil, err
	}
	n, ok := x.get(p)
	if !ok {
		return nil, ErrNoNode
	}
	if err := checkVersion(n, op.GetVersion()); err != nil {
		return nil, err
	}
	return n.stat(), nil
}

func (x *Txn) delete(op *coordpb.DeleteOp) (int64, error) {
	p := op.GetPath()
	if err := ValidatePath(p); err != nil {
		return 0, err
	}
	if p == "/" {
		return 0, errorf(ErrRootNode, "the root node cannot be deleted")
	}
	n, ok := x.get(p)
	if !ok {
		return 0, ErrNoNode
	}
	if err := checkVersion(n, op.GetVersion()); err != nil {
		return 0, err
	}
	if n.numChildren > 0 && !op.GetRecursive() {
		return 0, ErrNotEmpty
	}
	return x.removeSubtree(p), nil
}

// removeSubtree deletes p and everything under it, updates p's parent and
// cascades through emptied container ancestors. It returns the number of
// nodes removed. p must exist and not be the root.
func (x *Txn) removeSubtree(p string) int64 {
	var removed int64
	n, _ := x.get(p)
	if n.numChildren > 0 {
		prefix := []byte(childPrefix(p))
		var under []string
		it := x.nodes.Root().Iterator()
		it.SeekPrefix(prefix)
		for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
			under = append(under, string(k))
		}
		// Deepest first, so events read as a bottom-up teardown.
		for i := len(under) - 1; i >= 0; i-- {
			x.removeOne(under[i])
			removed++
		}
	}
	x.removeOne(p)
	removed++
	for {
		parentPath := parentOf(p)
		parent, _ := x.get(parentPath)
		np := *parent
		np.cversion++
		np.pzxid = x.zxid
		np.numChildren--
		x.put(parentPath, &np)
		x.emit(EventNodeChildrenChanged, parentPath)
		if parentPath == "/" || np.mode != coordpb.CreateMode_CONTAINER || np.numChildren > 0 {
			return removed
		}
		// An emptied container goes too.
		x.removeOne(parentPath)
		removed++
		p = parentPath
	}
}

// removeOne deletes one node and its index entries (not its parent's
// counters).
func (x *Txn) removeOne(p string) {
	n, ok := x.nodes.Delete([]byte(p))
	if !ok {
		return
	}
	if n.owner != 0 {
		x.ephem.Delete(ephemKey(n.owner, p))
	}
	if n.mode == coordpb.CreateMode_TTL {
		x.ttls.Delete([]byte(p))
	}
	x.emit(EventNodeDeleted, p)
}

func (x *Txn) createSession(c *coordpb.CreateSession) error {
	if c.GetSessionId() == 0 {
		return errorf(ErrInvalidArgument, "session id 0 is reserved")
	}
	if c.GetTimeoutMs() <= 0 {
		return errorf(ErrInvalidArgument, fmt.Sprintf("session timeout must be positive, got %d ms", c.GetTimeoutMs()))
	}
	key := sessionKey(c.GetSessionId())
	if _, ok := x.sessions.Get(key); ok {
		return errorf(ErrInvalidArgument, fmt.Sprintf("session %#x already exists", c.GetSessionId()))
	}
	x.sessions.Insert(key, c.GetTimeoutMs())
	return nil
}

// closeSession ends a session and deletes its ephemerals, atomically.
func (x *Txn) closeSession(id uint64) error {
	key := sessionKey(id)
	if _, ok := x.sessions.Get(key); !ok {
		return errorf(ErrSessionExpired, fmt.Sprintf("session %#x does not exist or has expired", id))
	}
	var paths []string
	it := x.ephem.Root().Iterator()
	it.SeekPrefix(key)
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		paths = append(paths, string(k[8:]))
	}
	for _, p := range paths {
		// A container cascade from an earlier path may have removed it.
		if n, ok := x.get(p); ok && n.owner == id {
			x.removeSubtree(p)
		}
	}
	x.sessions.Delete(key)
	return nil
}

// expireTTL deletes each listed TTL node still unmodified since the leader
// looked, still childless and still a TTL node; it skips the others.
func (x *Txn) expireTTL(nodes []*coordpb.ExpireTTLNode) {
	for _, e := range nodes {
		if validate(e.GetPath(), false) != nil || e.GetPath() == "/" {
			continue
		}
		n, ok := x.get(e.GetPath())
		if !ok || n.mode != coordpb.CreateMode_TTL || n.mzxid != e.GetMzxid() || n.numChildren > 0 {
			continue
		}
		x.removeSubtree(e.GetPath())
	}
}

var _ = bytes.Compare
