package tree

import (
	"fmt"
	"slices"
	"strings"

	"coord/proto/coordpb"
)

// Perm is a set of ZooKeeper permission bits (coordpb.Perm values).
type Perm uint32

// Permissions.
const (
	PermRead   = Perm(coordpb.Perm_READ)
	PermWrite  = Perm(coordpb.Perm_WRITE)
	PermCreate = Perm(coordpb.Perm_CREATE)
	PermDelete = Perm(coordpb.Perm_DELETE)
	PermAdmin  = Perm(coordpb.Perm_ADMIN)
	PermAll    = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// ACL ids with a meaning of their own.
const (
	// IDAnyone matches every caller, anonymous included.
	IDAnyone = "world:anyone"
	// IDAuth matches any authenticated caller.
	IDAuth = "auth"
	// IDCreator, in a create's ACL, is replaced by the creator's first id.
	IDCreator = "creator"
)

// MaxACLEntries bounds one node's ACL.
const MaxACLEntries = 64

// aclEntry is one stored grant. A node's []aclEntry is never modified in
// place (a SetACL stores a new slice), so trees share it freely.
type aclEntry struct {
	id    string
	perms Perm
}

// Caller is who a call runs as; nil is anonymous.
type Caller = coordpb.Caller

// matches reports whether the grant's id names c.
func (e aclEntry) matches(c *Caller) bool {
	switch e.id {
	case IDAnyone:
		return true
	case IDAuth:
		return len(c.GetIds()) > 0
	}
	return slices.Contains(c.GetIds(), e.id)
}

// allowed reports whether acl grants perm to c. A nil ACL is open.
func allowed(acl []aclEntry, perm Perm, c *Caller) bool {
	if acl == nil || c.GetSuper() {
		return true
	}
	for _, e := range acl {
		if e.perms&perm == perm && e.matches(c) {
			return true
		}
	}
	return false
}

// validID: a special id or scheme:name with a known scheme.
func validID(id string) bool {
	switch id {
	case IDAnyone, IDAuth, IDCreator:
		return true
	}
	scheme, name, ok := strings.Cut(id, ":")
	if !ok || name == "" || len(id) > 256 {
		return false
	}
	switch scheme {
	case "x509", "user", "group", "peer":
		return true
	}
	return false
}

// toACL validates and converts a wire ACL; empty means open (nil). The
// creator id is replaced by c's first id (an anonymous creator cannot use
// it).
func toACL(in []*coordpb.ACLEntry, c *Caller) ([]aclEntry, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > MaxACLEntries {
		return nil, errorf(ErrInvalidACL, fmt.Sprintf("%d ACL entries, the limit is %d", len(in), MaxACLEntries))
	}
	out := make([]aclEntry, 0, len(in))
	for _, e := range in {
		id, perms := e.GetId(), Perm(e.GetPerms())
		if !validID(id) {
			return nil, errorf(ErrInvalidACL, fmt.Sprintf("ACL id %q: want world:anyone, auth, creator or x509:|user:|group:|peer:NAME", id))
		}
		if perms&^PermAll != 0 || perms == 0 {
			return nil, errorf(ErrInvalidACL, fmt.Sprintf("ACL perms %#x for %q: want a non-empty subset of rwcda (0x1f)", uint32(perms), id))
		}
		if id == IDCreator {
			if len(c.GetIds()) == 0 {
				return nil, errorf(ErrInvalidACL, "ACL id creator: the caller is anonymous")
			}
			id = c.GetIds()[0]
		}
		out = append(out, aclEntry{id: id, perms: perms})
	}
	return out, nil
}

func fromACL(acl []aclEntry) []*coordpb.ACLEntry {
	if acl == nil {
		return []*coordpb.ACLEntry{{Id: IDAnyone, Perms: uint32(PermAll)}}
	}
	out := make([]*coordpb.ACLEntry, len(acl))
	for i, e := range acl {
		out[i] = &coordpb.ACLEntry{Id: e.id, Perms: uint32(e.perms)}
	}
	return out
}

// PermString is "rwcda" with '-' for missing bits.
func PermString(p Perm) string {
	b := []byte("-----")
	for i, c := range "rwcda" {
		if p&(1<<i) != 0 {
			b[i] = byte(c)
		}
	}
	return string(b)
}

// ParsePerms parses letters of "rwcda" (or "all").
func ParsePerms(s string) (Perm, error) {
	if s == "all" {
		return PermAll, nil
	}
	var p Perm
	for _, c := range s {
		i := strings.IndexRune("rwcda", c)
		if i < 0 {
			return 0, errorf(ErrInvalidACL, fmt.Sprintf("perms %q: want letters of rwcda", s))
		}
		p |= 1 << i
	}
	if p == 0 {
		return 0, errorf(ErrInvalidACL, "empty perms")
	}
	return p, nil
}

// nodeGetter is what the check needs: a Tree or a Txn.
type nodeGetter interface {
	get(p string) (znode, bool)
}

// checkPerm returns nil when c has perm on p. When p does not exist, the
// answer NoNode itself is information: it is given only to a caller who
// may READ the nearest existing ancestor, others get ErrNoAuth - so names
// under a node one may not read never leak through errors.
func checkPerm(g nodeGetter, p string, perm Perm, c *Caller) error {
	for {
		n, ok := g.get(p)
		if ok {
			if allowed(n.acl, perm, c) {
				return nil
			}
			return errorf(ErrNoAuth, fmt.Sprintf("%s: needs %s", ErrNoAuth, PermString(perm)))
		}
		if p == "/" {
			return nil
		}
		p, perm = parentOf(p), PermRead
	}
}

// Check reports whether c holds perm on node p (nil) or not (ErrNoAuth);
// see checkPerm for a missing p. It costs nothing when no node in the tree
// has an ACL.
func (t *Tree) Check(p string, perm Perm, c *Caller) error {
	if t.aclNodes == 0 || c.GetSuper() {
		return nil
	}
	if err := ValidatePath(p); err != nil {
		return err
	}
	return checkPerm(t, p, perm, c)
}

// CheckParent is Check on p's parent (exists needs READ there, as the
// parent's child list is what says p exists). The root's parent is the
// root.
func (t *Tree) CheckParent(p string, perm Perm, c *Caller) error {
	if p == "/" || ValidatePath(p) != nil {
		return t.Check(p, perm, c)
	}
	return t.Check(parentOf(p), perm, c)
}

// ACLNodes is the number of nodes with an ACL (0: the tree is open).
func (t *Tree) ACLNodes() int64 { return t.aclNodes }

// ACL returns a node's ACL (world:anyone/all for an open node) and stat.
func (t *Tree) ACL(p string) ([]*coordpb.ACLEntry, *coordpb.Stat, error) {
	if err := ValidatePath(p); err != nil {
		return nil, nil, err
	}
	n, ok := t.get(p)
	if !ok {
		return nil, nil, ErrNoNode
	}
	return fromACL(n.acl), n.stat(), nil
}

// txnCheck is the apply-time check; c is the Txn's caller.
func (x *Txn) check1(p string, perm Perm) error {
	if x.aclNodes == 0 || x.caller.GetSuper() {
		return nil
	}
	return checkPerm(x, p, perm, x.caller)
}

func (x *Txn) setACL(op *coordpb.SetACLOp) (*coordpb.Stat, error) {
	p := op.GetPath()
	if err := ValidatePath(p); err != nil {
		return nil, err
	}
	if err := x.check1(p, PermAdmin); err != nil {
		return nil, err
	}
	n, ok := x.get(p)
	if !ok {
		return nil, ErrNoNode
	}
	if v := op.GetAclVersion(); v != -1 && v != n.aversion {
		return nil, errorf(ErrBadVersion, fmt.Sprintf("acl version mismatch: expected %d, current %d", v, n.aversion))
	}
	acl, err := toACL(op.GetAcl(), x.caller)
	if err != nil {
		return nil, err
	}
	x.aclNodes += aclDelta(n.acl, acl)
	n.acl = acl
	n.aversion++
	x.put(p, &n)
	return n.stat(), nil
}

// aclDelta is the change in the count of nodes with an ACL.
func aclDelta(before, after []aclEntry) int64 {
	switch {
	case before == nil && after != nil:
		return 1
	case before != nil && after == nil:
		return -1
	}
	return 0
}
