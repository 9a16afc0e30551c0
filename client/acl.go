package client

import (
	"context"
	"fmt"
	"strings"

	"coord/proto/coordpb"
)

// Perm is a set of ZooKeeper permission bits.
type Perm uint32

// Permissions (ZooKeeper's values).
const (
	PermRead   = Perm(coordpb.Perm_READ)   // data, stat, children, exists below, watches
	PermWrite  = Perm(coordpb.Perm_WRITE)  // set data
	PermCreate = Perm(coordpb.Perm_CREATE) // create children
	PermDelete = Perm(coordpb.Perm_DELETE) // delete children
	PermAdmin  = Perm(coordpb.Perm_ADMIN)  // set the ACL
	PermAll    = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// String is "rwcda" with '-' for a missing bit.
func (p Perm) String() string {
	b := []byte("-----")
	for i, c := range "rwcda" {
		if p&(1<<i) != 0 {
			b[i] = byte(c)
		}
	}
	return string(b)
}

// ParsePerm parses letters of "rwcda", or "all".
func ParsePerm(s string) (Perm, error) {
	if s == "all" {
		return PermAll, nil
	}
	var p Perm
	for _, c := range s {
		i := strings.IndexRune("rwcda", c)
		if i < 0 {
			return 0, fmt.Errorf("%w: perms %q: want letters of rwcda", ErrInvalidACL, s)
		}
		p |= 1 << i
	}
	if p == 0 {
		return 0, fmt.Errorf("%w: empty perms", ErrInvalidACL)
	}
	return p, nil
}

// ACL grants Perms to ID: "world:anyone", "auth" (any authenticated
// caller), "creator" (at create: the creator), "x509:CN", "user:NAME",
// "group:NAME" (a certificate OU) or "peer:NAME".
type ACL struct {
	ID    string
	Perms Perm
}

// ParseACL parses "ID:PERMS,ID:PERMS" such as
// "x509:alice:rwcda,group:ops:r,world:anyone:r".
func ParseACL(s string) ([]ACL, error) {
	var out []ACL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.LastIndexByte(part, ':')
		if i <= 0 {
			return nil, fmt.Errorf("%w: %q: want ID:PERMS", ErrInvalidACL, part)
		}
		p, err := ParsePerm(part[i+1:])
		if err != nil {
			return nil, err
		}
		out = append(out, ACL{ID: part[:i], Perms: p})
	}
	return out, nil
}

func aclPB(acl []ACL) []*coordpb.ACLEntry {
	if len(acl) == 0 {
		return nil
	}
	out := make([]*coordpb.ACLEntry, len(acl))
	for i, a := range acl {
		out[i] = &coordpb.ACLEntry{Id: a.ID, Perms: uint32(a.Perms)}
	}
	return out
}

// SetACL replaces a node's ACL if its ACL version matches (-1: any); an
// empty acl opens the node to everyone. Needs ADMIN on the node.
func (c *Client) SetACL(ctx context.Context, path string, acl []ACL, aclVersion int64) (*Stat, error) {
	var resp *coordpb.SetACLResponse
	err := c.writeCall(ctx, func(ctx context.Context, r coordpb.CoordClient, wh *coordpb.WriteHeader) (err error) {
		resp, err = r.SetACL(ctx, &coordpb.SetACLRequest{Op: &coordpb.SetACLOp{Path: path, Acl: aclPB(acl), AclVersion: aclVersion}, Write: wh})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	return statFromPB(resp.Stat), nil
}

// GetACL returns a node's ACL (an open node reports world:anyone with all
// permissions) and its stat; Stat.ACLVersion is the version SetACL checks.
// Needs READ or ADMIN on the node.
func (c *Client) GetACL(ctx context.Context, path string) ([]ACL, *Stat, error) {
	var resp *coordpb.GetACLResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.GetACL(ctx, &coordpb.GetACLRequest{Path: path})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	c.observe(resp.Header)
	out := make([]ACL, len(resp.Acl))
	for i, a := range resp.Acl {
		out[i] = ACL{ID: a.GetId(), Perms: Perm(a.GetPerms())}
	}
	return out, statFromPB(resp.Stat), nil
}

// WhoAmI returns the ids the server sees for this client and whether it
// is a superuser.
func (c *Client) WhoAmI(ctx context.Context) (ids []string, super bool, err error) {
	var resp *coordpb.WhoAmIResponse
	err = c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.WhoAmI(ctx, &coordpb.WhoAmIRequest{})
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return resp.Ids, resp.Super, nil
}
