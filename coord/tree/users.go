package tree

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

// Password users live in the replicated state so that every node can
// check a login: name → bcrypt hash and groups. The hash is computed by
// the node that received the request (bcrypt is randomised, so it cannot
// run in apply); apply only stores it.

// userRec is one password user; never modified in place. gen is the zxid
// of the SetUser that last set it: login tokens carry it, so a password or
// group change (a new gen) or a delete (no record) revokes every token
// issued before, and a user deleted and added again never matches an old
// token (zxids only grow).
type userRec struct {
	hash   []byte
	groups []string
	gen    uint64
}

func validUserName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for _, c := range n {
		if c <= ' ' || c == ',' || c == ':' || c == 0x7f {
			return false
		}
	}
	return true
}

func (x *Txn) setUser(u *coordpb.SetUser) error {
	name := u.GetName()
	if !validUserName(name) {
		return errorf(ErrInvalidArgument, fmt.Sprintf("user name %q: 1-128 bytes, no spaces, commas or colons", name))
	}
	if u.GetDelete() {
		if _, ok := x.users.Delete([]byte(name)); !ok {
			return errorf(ErrNoNode, fmt.Sprintf("no user %q", name))
		}
		return nil
	}
	if len(u.GetBcryptHash()) < 59 || len(u.GetBcryptHash()) > 128 {
		return errorf(ErrInvalidArgument, "user "+name+": not a bcrypt hash")
	}
	for _, g := range u.GetGroups() {
		if !validUserName(g) {
			return errorf(ErrInvalidArgument, fmt.Sprintf("group %q: 1-128 bytes, no spaces, commas or colons", g))
		}
	}
	x.users.Insert([]byte(name), userRec{hash: slices.Clone(u.GetBcryptHash()), groups: slices.Clone(u.GetGroups()), gen: x.zxid})
	return nil
}

// User returns a password user's bcrypt hash and groups.
func (t *Tree) User(name string) (hash []byte, groups []string, ok bool) {
	u, ok := t.users.Get([]byte(name))
	return u.hash, u.groups, ok
}

// UserGeneration returns the generation of a password user (the zxid that
// last set it; 0 for a user from an older snapshot format) and whether
// the user exists. A login token is valid only while its generation is
// the user's.
func (t *Tree) UserGeneration(name string) (uint64, bool) {
	u, ok := t.users.Get([]byte(name))
	return u.gen, ok
}

// Users lists the password users (names and groups) in name order.
func (t *Tree) Users() []*coordpb.UserInfo {
	var out []*coordpb.UserInfo
	it := t.users.Root().Iterator()
	for k, u, ok := it.Next(); ok; k, u, ok = it.Next() {
		out = append(out, &coordpb.UserInfo{Name: string(k), Groups: slices.Clone(u.groups)})
	}
	return out
}

func (b *builder) user(index uint64, payload []byte) error {
	var su coordpb.SnapshotUser
	if err := proto.Unmarshal(payload, &su); err != nil {
		return corrupt("user record %d: %v", index, err)
	}
	if !validUserName(su.Name) || len(su.BcryptHash) < 59 || len(su.BcryptHash) > 128 {
		return corrupt("user record %d: bad name or hash", index)
	}
	if b.lastUser != "" && su.Name <= b.lastUser {
		return corrupt("user %q out of order after %q", su.Name, b.lastUser)
	}
	b.lastUser = su.Name
	if su.Generation > b.zxid {
		return corrupt("user %q generation %d after the snapshot's zxid %d", su.Name, su.Generation, b.zxid)
	}
	b.users.Insert([]byte(su.Name), userRec{hash: su.BcryptHash, groups: su.Groups, gen: su.Generation})
	return nil
}
