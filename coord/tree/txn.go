package tree

import (
	"fmt"

	iradix "coord/coord/tree/internal/radix"
	"coord/proto/coordpb"
)

// Txn is a mutable batch of applies on top of a Tree, for one goroutine.
// Nodes written within the batch are updated in place; Commit publishes the
// result as a new Tree in O(1), and the Tree the batch started from never
// changes. Applying more commands after Commit continues the batch on top
// of the committed state without touching it.
type Txn struct {
	nodes    *iradix.Txn[znode]
	sessions *iradix.Txn[sessionRec]
	ephem    *iradix.Txn[struct{}]
	ttls     *iradix.Txn[struct{}]
	replies  *iradix.Txn[*coordpb.ApplyResult]
	users    *iradix.Txn[userRec]
	zxid     uint64
	events   []Event
	aclNodes int64
	caller   *Caller // the caller of the Txn being applied; nil: anonymous

	now int64 // time_ms of the command being applied
}

// Txn starts a batch on t.
func (t *Tree) Txn() *Txn {
	return &Txn{
		nodes:    t.nodes.Txn(),
		sessions: t.sessions.Txn(),
		ephem:    t.ephem.Txn(),
		ttls:     t.ttls.Txn(),
		replies:  t.replies.Txn(),
		users:    t.users.Txn(),
		zxid:     t.zxid,
		aclNodes: t.aclNodes,
	}
}

// Commit returns the state after every Apply so far.
func (x *Txn) Commit() *Tree {
	return &Tree{
		nodes:    x.nodes.CommitOnly(),
		sessions: x.sessions.CommitOnly(),
		ephem:    x.ephem.CommitOnly(),
		ttls:     x.ttls.CommitOnly(),
		replies:  x.replies.CommitOnly(),
		users:    x.users.CommitOnly(),
		zxid:     x.zxid,
		aclNodes: x.aclNodes,
	}
}

// Events returns the watch events of every Apply since Txn, in apply
// order. A failed command contributes none.
func (x *Txn) Events() []Event { return x.events }

// checkpoint is the state of a Txn to roll a failed multi back to.
// iradix's Clone is O(1): it only makes later writes copy shared nodes.
type checkpoint struct {
	nodes    *iradix.Txn[znode]
	sessions *iradix.Txn[sessionRec]
	ephem    *iradix.Txn[struct{}]
	ttls     *iradix.Txn[struct{}]
	events   int
	aclNodes int64
}

func (x *Txn) checkpoint() checkpoint {
	return checkpoint{x.nodes.Clone(), x.sessions.Clone(), x.ephem.Clone(), x.ttls.Clone(), len(x.events), x.aclNodes}
}

func (x *Txn) rollback(c checkpoint) {
	x.nodes, x.sessions, x.ephem, x.ttls = c.nodes, c.sessions, c.ephem, c.ttls
	x.aclNodes = c.aclNodes
	clear(x.events[c.events:])
	x.events = x.events[:c.events]
}

// Apply applies one command at zxid (its raft index) and returns its
// result. It never panics on bad input: a malformed command yields
// INVALID_ARGUMENT. A failed command leaves the state unchanged (all or
// nothing) except for the zxid, which every command advances. Apply takes
// ownership of cmd: the tree keeps its data slices.
func (x *Txn) Apply(zxid uint64, cmd *coordpb.Command) *coordpb.ApplyResult {
	if zxid > x.zxid {
		x.zxid = zxid
	}
	res := &coordpb.ApplyResult{Zxid: zxid, FailedOp: -1}
	x.now = cmd.GetTimeMs()
	switch c := cmd.GetCmd().(type) {
	case *coordpb.Command_Txn:
		x.caller = c.Txn.GetCaller()
		defer func() { x.caller = nil }()
		return x.applyTxnOnce(res, c.Txn)
	case *coordpb.Command_CreateSession:
		return fail(res, x.createSession(c.CreateSession.GetSessionId(), c.CreateSession.GetTimeoutMs(), c.CreateSession.GetOwner()), -1)
	case *coordpb.Command_CloseSession:
		return fail(res, x.closeSession(c.CloseSession), -1)
	case *coordpb.Command_SetUser:
		return fail(res, x.setUser(c.SetUser), -1)
	case *coordpb.Command_ExpireTtl:
		x.expireTTL(c.ExpireTtl.GetNodes())
		return res
	}
	return fail(res, errorf(ErrInvalidArgument, "empty command"), -1)
}

// fail records err (if any) in res.
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
	// Every op checks everything before it changes anything, so a single
	// op needs no checkpoint; a multi does, as a later op may fail.
	multi := len(ops) > 1
	var cp checkpoint
	if multi {
		cp = x.checkpoint()
	}
	res.Results = make([]*coordpb.OpResult, 0, len(ops))
	for i, op := range ops {
		r, err := x.applyOp(op)
		if err != nil {
			if multi {
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
	case *coordpb.Op_SetAcl:
		stat, err := x.setACL(o.SetAcl)
		if err != nil {
			return nil, err
		}
		return &coordpb.OpResult{Result: &coordpb.OpResult_SetAcl{SetAcl: &coordpb.SetACLResult{Stat: stat}}}, nil
	}
	return nil, errorf(ErrInvalidArgument, "empty op")
}

func (x *Txn) get(p string) (znode, bool) { return x.nodes.Get([]byte(p)) }
func (x *Txn) put(p string, n *znode)     { x.nodes.Insert([]byte(p), *n) }
func (x *Txn) emit(t EventType, p string, acl []aclEntry) {
	x.events = append(x.events, Event{Type: t, Path: p, Zxid: x.zxid, acl: acl})
}

func checkVersion(n *znode, want int64) error {
	if want != -1 && n.version != want {
		return errorf(ErrBadVersion, fmt.Sprintf("version mismatch: expected %d, current %d", want, n.version))
	}
	return nil
}
