package fuse

import (
	"context"
	"errors"
	"path"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/client"
)

// Reserved names (a znode of that name is shadowed in the mount).
const (
	// dataName: in every directory, the directory's own data.
	dataName = ".data"
	// lockName: in every directory, the file to flock for the directory
	// (the kernel never sends flock on a directory to the filesystem).
	lockName = ".lock"
	// ctlName: at the root, the control namespace.
	ctlName = ".coord"
)

// kind says what a node shows of its znode.
type kind uint8

const (
	kindZnode kind = iota // the znode itself: a file or a directory
	kindData              // DIR/.data: the directory's data as a file
	kindLock              // DIR/.lock: an empty file whose flock locks DIR
)

// node is an inode backed by a znode. Its znode path is found from
// go-fuse's tree (Inode.Path), so renames done through the mount move it.
type node struct {
	fs.Inode
	m    *Mount
	kind kind
}

var (
	_ fs.NodeLookuper    = (*node)(nil)
	_ fs.NodeGetattrer   = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
	_ fs.NodeReaddirer   = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeMkdirer     = (*node)(nil)
	_ fs.NodeUnlinker    = (*node)(nil)
	_ fs.NodeRmdirer     = (*node)(nil)
	_ fs.NodeRenamer     = (*node)(nil)
	_ fs.NodeGetxattrer  = (*node)(nil)
	_ fs.NodeSetxattrer  = (*node)(nil)
	_ fs.NodeListxattrer = (*node)(nil)
	_ fs.NodeStatfser    = (*node)(nil)
)

// zpath is the znode path the node shows.
func (n *node) zpath() string {
	p := "/" + n.Path(nil)
	if n.kind != kindZnode {
		p = path.Dir(p)
	}
	return p
}

func child(dir, name string) string { return path.Join(dir, name) }

// isDir: a znode is a directory when created as one (mkdir) or once it
// has had a child.
func isDir(st *client.Stat) bool { return st.Directory || st.NumChildren > 0 }

// stableAttr gives each znode (and its .data/.lock views) a stable inode
// number from its czxid.
func stableAttr(st *client.Stat, k kind) fs.StableAttr {
	ino := (st.Czxid+1)<<2 | uint64(k)
	if k == kindZnode && isDir(st) {
		return fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino | 3<<62}
	}
	return fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino}
}

// fillAttr turns a znode's stat into file attributes.
func fillAttr(st *client.Stat, k kind, out *gf.Attr) {
	sa := stableAttr(st, k)
	out.Ino = sa.Ino
	size := uint64(st.DataLength)
	if k == kindLock {
		size = 0
	}
	if sa.Mode == syscall.S_IFDIR {
		out.Mode = syscall.S_IFDIR | 0o755
		out.Nlink = 2
	} else {
		out.Mode = syscall.S_IFREG | 0o644
		out.Nlink = 1
	}
	out.Size = size
	out.Blocks = (size + 511) / 512
	out.Blksize = 4096
	mt := st.MTime
	out.SetTimes(&mt, &mt, &mt)
}

func (n *node) newChild(ctx context.Context, st *client.Stat, k kind, out *gf.EntryOut) *fs.Inode {
	fillAttr(st, k, &out.Attr)
	return n.NewInode(ctx, &node{m: n.m, kind: k}, stableAttr(st, k))
}

func (n *node) stat(ctx context.Context, p string) (*client.Stat, syscall.Errno) {
	st, err := n.m.cli().Exists(ctx, p, nil)
	if err != nil {
		return nil, n.m.errno("stat", p, err)
	}
	if st == nil {
		return nil, syscall.ENOENT
	}
	return st, 0
}

// Lookup finds name in a directory znode.
func (n *node) Lookup(ctx context.Context, name string, out *gf.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.kind != kindZnode {
		return nil, syscall.ENOTDIR
	}
	dir := n.zpath()
	if dir == "/" && name == ctlName {
		return n.m.ctlLookup(out), 0
	}
	if dir == "/" && name == lockRootName {
		return nil, syscall.ENOENT // hidden: the lock queues
	}
	switch name {
	case dataName, lockName:
		st, errno := n.stat(ctx, dir)
		if errno != 0 {
			return nil, errno
		}
		k := kindData
		if name == lockName {
			k = kindLock
		}
		return n.newChild(ctx, st, k, out), 0
	}
	st, errno := n.stat(ctx, child(dir, name))
	if errno != 0 {
		return nil, errno
	}
	return n.newChild(ctx, st, kindZnode, out), 0
}

// Getattr reports the znode's stat (or, while this handle has unflushed
// writes, their size).
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *gf.AttrOut) syscall.Errno {
	if n.IsRoot() {
		out.Mode = syscall.S_IFDIR | 0o755
		out.Nlink = 2
		if st, err := n.m.cli().Exists(ctx, "/", nil); err == nil && st != nil {
			mt := st.MTime
			out.SetTimes(&mt, &mt, &mt)
		}
		return 0
	}
	p := n.zpath()
	st, errno := n.stat(ctx, p)
	if errno != 0 {
		return errno
	}
	fillAttr(st, n.kind, &out.Attr)
	if h, ok := f.(*fileHandle); ok {
		h.mu.Lock()
		if h.dirty {
			out.Size = uint64(len(h.data))
		}
		h.mu.Unlock()
	}
	return 0
}

// Setattr truncates (through the handle's buffer, or with a
// version-checked set). Mode, owner and time changes are accepted and
// ignored: a znode's mtime is the time of its last write.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *gf.SetAttrIn, out *gf.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && n.kind != kindLock {
		if h, ok := f.(*fileHandle); ok {
			if errno := h.truncate(int(size)); errno != 0 {
				return errno
			}
		} else if errno := n.truncate(ctx, int(size)); errno != 0 {
			return errno
		}
	}
	return n.Getattr(ctx, f, out)
}

func (n *node) truncate(ctx context.Context, size int) syscall.Errno {
	p := n.zpath()
	data, st, err := n.m.cli().Get(ctx, p, nil)
	if err != nil {
		return n.m.errno("truncate", p, err)
	}
	if size > n.m.cfg.MaxFileBytes {
		return syscall.EFBIG
	}
	if size == len(data) {
		return 0
	}
	nd := make([]byte, size)
	copy(nd, data)
	if _, err := n.m.cli().Set(ctx, p, nd, st.Version); err != nil {
		return n.m.errno("truncate", p, err)
	}
	return 0
}

// Readdir lists the children; .data is listed when the directory has
// data (so find and grep -r see it), .lock and .coord are not listed.
func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	p := n.zpath()
	names, st, err := n.m.cli().Children(ctx, p, nil)
	if err != nil {
		return nil, n.m.errno("readdir", p, err)
	}
	entries := make([]gf.DirEntry, 0, len(names)+1)
	if st != nil && st.DataLength > 0 {
		entries = append(entries, gf.DirEntry{Name: dataName, Mode: syscall.S_IFREG})
	}
	for _, name := range names {
		if p == "/" && (name == ctlName || name == lockRootName) {
			continue // the control namespace; the lock queues
		}
		if name == dataName || name == lockName {
			continue
		}
		// Mode 0 (DT_UNKNOWN): the type needs a stat per child; tools
		// stat when they need it.
		entries = append(entries, gf.DirEntry{Name: name})
	}
	return fs.NewListDirStream(entries), 0
}

// Create makes a persistent, empty znode and opens it.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *gf.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if n.kind != kindZnode {
		return nil, nil, 0, syscall.ENOTDIR
	}
	dir := n.zpath()
	if name == dataName || name == lockName || (dir == "/" && name == ctlName) {
		// These always exist (lookup succeeds), so the kernel only gets
		// here through O_EXCL.
		return nil, nil, 0, syscall.EEXIST
	}
	p := child(dir, name)
	_, st, err := n.m.cli().Create(ctx, p, nil, nil)
	if err != nil {
		if !(errors.Is(err, client.ErrNodeExists) && flags&syscall.O_EXCL == 0) {
			return nil, nil, 0, n.m.errno("create", p, err)
		}
		var errno syscall.Errno
		if st, errno = n.stat(ctx, p); errno != 0 {
			return nil, nil, 0, errno
		}
	}
	ch := n.newChild(ctx, st, kindZnode, out)
	if isDir(st) {
		return nil, nil, 0, syscall.EISDIR
	}
	h, errno := ch.Operations().(*node).open(ctx, p, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, h, 0, 0
}

// Mkdir makes a znode marked as a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *gf.EntryOut) (*fs.Inode, syscall.Errno) {
	if n.kind != kindZnode {
		return nil, syscall.ENOTDIR
	}
	p := child(n.zpath(), name)
	_, st, err := n.m.cli().Create(ctx, p, nil, &client.CreateOptions{Directory: true})
	if err != nil {
		return nil, n.m.errno("mkdir", p, err)
	}
	return n.newChild(ctx, st, kindZnode, out), 0
}

// Unlink deletes a leaf znode; unlinking DIR/.data clears the
// directory's data (so rm -r works), DIR/.lock is a no-op.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	dir := n.zpath()
	switch name {
	case dataName:
		if _, err := n.m.cli().Set(ctx, dir, nil, -1); err != nil {
			return n.m.errno("unlink", dir+"/"+name, err)
		}
		return 0
	case lockName:
		return 0
	}
	p := child(dir, name)
	if err := n.m.cli().Delete(ctx, p, -1); err != nil {
		return n.m.errno("unlink", p, err)
	}
	return 0
}

// Rmdir deletes an empty directory znode (its own data goes with it).
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	p := child(n.zpath(), name)
	if err := n.m.cli().Delete(ctx, p, -1); err != nil {
		return n.m.errno("rmdir", p, err)
	}
	return 0
}

// Rename moves a leaf atomically with one multi (delete the target if
// it is a file, create the new node with the data, delete the old one at
// the version read). A directory cannot be moved atomically: EXDEV, which
// makes mv copy and delete by itself.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.kind != kindZnode || n.kind != kindZnode {
		return syscall.EXDEV
	}
	if flags&^uint32(1) != 0 { // only RENAME_NOREPLACE (1) is supported
		return syscall.EINVAL
	}
	src, dst := child(n.zpath(), name), child(np.zpath(), newName)
	if src == dst {
		return 0
	}
	data, st, err := n.m.cli().Get(ctx, src, nil)
	if err != nil {
		return n.m.errno("rename", src, err)
	}
	if isDir(st) {
		return syscall.EXDEV
	}
	var ops []client.Op
	dst0, err := n.m.cli().Exists(ctx, dst, nil)
	if err != nil {
		return n.m.errno("rename", dst, err)
	}
	if dst0 != nil {
		if flags&1 != 0 {
			return syscall.EEXIST
		}
		if isDir(dst0) {
			return syscall.EISDIR
		}
		ops = append(ops, client.DeleteOp(dst, dst0.Version))
	}
	opts := &client.CreateOptions{Ephemeral: st.Mode == client.ModeEphemeral}
	ops = append(ops, client.CreateOp(dst, data, opts), client.DeleteOp(src, st.Version))
	if _, err := n.m.cli().Multi(ctx, ops...); err != nil {
		return n.m.errno("rename", src, err)
	}
	return 0
}

// Statfs reports an empty, roomy filesystem (df works).
func (n *node) Statfs(ctx context.Context, out *gf.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}
