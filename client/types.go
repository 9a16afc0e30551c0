package client

import (
	"time"

	"coord/proto/coordpb"
)

// Stat is a znode's metadata.
type Stat struct {
	Czxid, Mzxid, Pzxid uint64
	CTime, MTime        time.Time
	Version             int64
	Cversion            int64
	EphemeralOwner      uint64
	DataLength          int64
	NumChildren         int64
	TTL                 time.Duration
	Mode                Mode
	// Directory: created as a directory or has had a child (never cleared).
	Directory bool
	// ACLVersion counts SetACL calls on the node.
	ACLVersion int64
}

// Mode is a znode's create mode.
type Mode string

// Modes.
const (
	ModePersistent Mode = "persistent"
	ModeEphemeral  Mode = "ephemeral"
	ModeContainer  Mode = "container"
	ModeTTL        Mode = "ttl"
)

func statFromPB(s *coordpb.Stat) *Stat {
	if s == nil {
		return nil
	}
	mode := ModePersistent
	switch s.Mode {
	case coordpb.CreateMode_EPHEMERAL:
		mode = ModeEphemeral
	case coordpb.CreateMode_CONTAINER:
		mode = ModeContainer
	case coordpb.CreateMode_TTL:
		mode = ModeTTL
	}
	return &Stat{
		Czxid: s.Czxid, Mzxid: s.Mzxid, Pzxid: s.Pzxid,
		CTime: time.UnixMilli(s.Ctime), MTime: time.UnixMilli(s.Mtime),
		Version: s.Version, Cversion: s.Cversion, EphemeralOwner: s.EphemeralOwner,
		DataLength: s.DataLength, NumChildren: s.NumChildren,
		TTL: time.Duration(s.TtlMs) * time.Millisecond, Mode: mode, Directory: s.Directory,
		ACLVersion: s.Aversion,
	}
}

// CreateOptions choose the kind of node Create makes.
type CreateOptions struct {
	// Ephemeral: the node dies with the client's session (opened on first
	// use).
	Ephemeral bool
	// Sequential appends a 10+ digit, per-parent, never reused counter.
	Sequential bool
	// Container: deleted when its last child goes.
	Container bool
	// TTL > 0 makes a TTL node: deleted when unmodified for TTL and
	// childless (millisecond resolution).
	TTL time.Duration
	// Directory marks the node a directory (as mkdir through a mount
	// does); any node becomes one when it gets a child. Not for ephemerals.
	Directory bool
	// Parents creates missing ancestors first, as containers, in the same
	// atomic step (mkdir -p for a znode); they go away with their last
	// child.
	Parents bool
	// ACL is the node's access list; empty leaves it open (see ACL).
	ACL []ACL
	// Ephemeral, Container and TTL exclude each other; Sequential goes
	// with any of them.
}

// ReadOptions choose a read's consistency.
type ReadOptions struct {
	// Local serves the read from the connected server without asking the
	// leader; it is never older than anything this client has seen.
	Local bool
}

// Member is one server of the cluster.
type Member struct {
	Name    string
	Address string
	Voter   bool
	Leader  bool
}

// Status is one server's view.
type Status struct {
	Name         string
	State        string
	Leader       string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastLogIndex uint64
	Znodes       int64
	Members      []Member
}

func membersFromPB(ms []*coordpb.Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{Name: m.Name, Address: m.Address, Voter: m.Voter, Leader: m.Leader})
	}
	return out
}

// Op is one operation of a Multi; make it with CreateOp, SetOp, DeleteOp
// or CheckOp.
type Op struct {
	pb        *coordpb.Op
	ephemeral bool  // Multi fills in the session id
	err       error // a bad CreateOptions, reported by Multi
}

// String shows the op (for logs and tests).
func (o Op) String() string { return o.pb.String() }

// CreateOp creates a node inside a Multi; opts as for Create (nil: a
// persistent node). An ephemeral op opens the session like Create does.
func CreateOp(path string, data []byte, opts *CreateOptions) Op {
	op, err := createOpPB(path, data, opts)
	return Op{pb: &coordpb.Op{Op: &coordpb.Op_Create{Create: op}}, ephemeral: opts != nil && opts.Ephemeral, err: err}
}

// SetOp sets data if the version matches (-1: any).
func SetOp(path string, data []byte, version int64) Op {
	return Op{pb: &coordpb.Op{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: path, Data: data, Version: version}}}}
}

// DeleteOp deletes a childless node if the version matches (-1: any).
func DeleteOp(path string, version int64) Op {
	return Op{pb: &coordpb.Op{Op: &coordpb.Op_Delete{Delete: &coordpb.DeleteOp{Path: path, Version: version}}}}
}

// CheckOp fails the Multi unless the node exists with the version (-1:
// only check that it exists).
func CheckOp(path string, version int64) Op {
	return Op{pb: &coordpb.Op{Op: &coordpb.Op_Check{Check: &coordpb.CheckOp{Path: path, Version: version}}}}
}

// createOpPB builds a CreateOp without the session id.
func createOpPB(path string, data []byte, opts *CreateOptions) (*coordpb.CreateOp, error) {
	op := &coordpb.CreateOp{Path: path, Data: data}
	if opts == nil {
		return op, nil
	}
	if err := opts.validate(); err != nil {
		return op, err
	}
	op.Sequential = opts.Sequential
	op.Directory = opts.Directory
	op.Parents = opts.Parents
	op.Acl = aclPB(opts.ACL)
	switch {
	case opts.Ephemeral:
		op.Mode = coordpb.CreateMode_EPHEMERAL
	case opts.Container:
		op.Mode = coordpb.CreateMode_CONTAINER
	case opts.TTL > 0:
		op.Mode, op.TtlMs = coordpb.CreateMode_TTL, max(1, opts.TTL.Milliseconds())
	}
	return op, nil
}

// validate refuses contradictory options.
func (o *CreateOptions) validate() error {
	kinds := 0
	for _, b := range []bool{o.Ephemeral, o.Container, o.TTL > 0} {
		if b {
			kinds++
		}
	}
	switch {
	case o.TTL < 0:
		return &Error{Message: "invalid argument: negative TTL", failedOp: -1, err: ErrInvalidArgument}
	case kinds > 1:
		return &Error{Message: "invalid argument: ephemeral, container and TTL exclude each other", failedOp: -1, err: ErrInvalidArgument}
	}
	return nil
}

// OpResult is one op's outcome in a successful Multi.
type OpResult struct {
	// Path is the created path (for a create).
	Path string
	// Stat after the op (create, set, check).
	Stat *Stat
	// Deleted counts removed nodes (delete).
	Deleted int64
}
