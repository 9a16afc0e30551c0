package fuse

import (
	"context"
	"strconv"
	"strings"
	"syscall"

	"coord/client"
)

// Extended attributes (read-only unless noted), all in the user. space.
const (
	xattrPrefix = "user.coord."
	xattrData   = xattrPrefix + "data" // read-write: the node's own data
	xattrToken  = xattrPrefix + "lock_token"
)

var xattrNames = []string{"version", "cversion", "czxid", "mzxid", "pzxid", "ephemeral_owner", "mode", "data"}

func xattrValue(st *client.Stat, name string) (string, bool) {
	switch name {
	case "version":
		return strconv.FormatInt(st.Version, 10), true
	case "cversion":
		return strconv.FormatInt(st.Cversion, 10), true
	case "czxid":
		return strconv.FormatUint(st.Czxid, 10), true
	case "mzxid":
		return strconv.FormatUint(st.Mzxid, 10), true
	case "pzxid":
		return strconv.FormatUint(st.Pzxid, 10), true
	case "ephemeral_owner":
		return "0x" + strconv.FormatUint(st.EphemeralOwner, 16), true
	case "mode":
		return string(st.Mode), true
	}
	return "", false
}

// xattrCopy answers a getxattr/listxattr: the size when dest is empty,
// ERANGE when too small.
func xattrCopy(val []byte, dest []byte) (uint32, syscall.Errno) {
	if len(dest) == 0 {
		return uint32(len(val)), 0
	}
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

// Getxattr serves user.coord.*; user.coord.lock_token is the fencing
// token of the lock this mount holds on the node (ENODATA when it holds
// none).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	p := n.zpath()
	if attr == xattrToken {
		t := n.m.locks.token(p)
		if t == 0 {
			return 0, syscall.ENODATA
		}
		return xattrCopy([]byte(strconv.FormatUint(t, 10)), dest)
	}
	name, ok := strings.CutPrefix(attr, xattrPrefix)
	if !ok {
		return 0, syscall.ENODATA
	}
	if name == "data" {
		data, _, err := n.m.cli().Get(ctx, p, nil)
		if err != nil {
			return 0, n.m.errno("getxattr", p, err)
		}
		return xattrCopy(data, dest)
	}
	st, errno := n.stat(ctx, p)
	if errno != 0 {
		return 0, errno
	}
	v, ok := xattrValue(st, name)
	if !ok {
		return 0, syscall.ENODATA
	}
	return xattrCopy([]byte(v), dest)
}

// Listxattr lists the attributes every node has (and lock_token while
// this mount holds the node's lock).
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, name := range xattrNames {
		b = append(append(b, xattrPrefix+name...), 0)
	}
	if n.m.locks.token(n.zpath()) != 0 {
		b = append(append(b, xattrToken...), 0)
	}
	return xattrCopy(b, dest)
}

// Setxattr: only user.coord.data is writable (an unconditional set).
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr != xattrData {
		return syscall.ENOTSUP
	}
	p := n.zpath()
	if _, err := n.m.cli().Set(ctx, p, data, -1); err != nil {
		return n.m.errno("setxattr", p, err)
	}
	return 0
}
