package fuse

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/client"
)

// watchDir mirrors a directory znode under .coord/watch: its entries are
// watch views of the children, and ".watch" is the view of the directory
// itself.
type watchDir struct {
	fs.Inode
	m    *Mount
	path string
}

var (
	_ fs.NodeLookuper  = (*watchDir)(nil)
	_ fs.NodeReaddirer = (*watchDir)(nil)
	_ fs.NodeGetattrer = (*watchDir)(nil)
)

// watchSelf names a directory's own watch view.
const watchSelf = ".watch"

func (d *watchDir) Getattr(ctx context.Context, fh fs.FileHandle, out *gf.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o555
	out.Nlink = 2
	return 0
}

// Lookup: a directory znode is a watchDir, anything else (a leaf, or a
// node that does not exist yet: the view waits for its creation) a
// watchFile.
func (d *watchDir) Lookup(ctx context.Context, name string, out *gf.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == watchSelf {
		out.Attr.Mode = syscall.S_IFREG | 0o444
		return d.NewInode(ctx, &watchFile{m: d.m, path: d.path}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
	}
	p := child(d.path, name)
	st, err := d.m.cli().Exists(ctx, p, nil)
	if err != nil {
		return nil, d.m.errno("watch lookup", p, err)
	}
	if st != nil && isDir(st) {
		out.Attr.Mode = syscall.S_IFDIR | 0o555
		return d.NewInode(ctx, &watchDir{m: d.m, path: p}, fs.StableAttr{Mode: syscall.S_IFDIR}), 0
	}
	out.Attr.Mode = syscall.S_IFREG | 0o444
	return d.NewInode(ctx, &watchFile{m: d.m, path: p}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
}

func (d *watchDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream([]gf.DirEntry{{Name: watchSelf, Mode: syscall.S_IFREG}}), 0
}

// watchFile is the blocking view of one znode: a read blocks until the
// node is created, changed or deleted, or (for a directory) gains or
// loses a child, after the open, then returns one line
// "TYPE PATH ZXID\n" and EOF.
type watchFile struct {
	fs.Inode
	m    *Mount
	path string
}

var (
	_ fs.NodeOpener    = (*watchFile)(nil)
	_ fs.NodeGetattrer = (*watchFile)(nil)
)

func (f *watchFile) Getattr(ctx context.Context, fh fs.FileHandle, out *gf.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.Nlink = 1
	return 0
}

// Open arms the watch from the state a linearizable read sees now.
func (f *watchFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EACCES
	}
	c := f.m.cli()
	if _, err := c.Exists(ctx, f.path, nil); err != nil {
		return nil, 0, f.m.errno("watch", f.path, err)
	}
	// The watch lives past this call: its ctx is the mount's.
	w, err := c.Watch(f.m.ctx, f.path, client.WatchPersistent, c.LastZxid())
	if err != nil {
		return nil, 0, f.m.errno("watch", f.path, err)
	}
	h := &watchHandle{m: f.m, w: w, nonblock: flags&syscall.O_NONBLOCK != 0}
	return h, gf.FOPEN_DIRECT_IO | gf.FOPEN_NONSEEKABLE, 0
}

type watchHandle struct {
	m        *Mount
	w        *client.Watch
	nonblock bool

	mu  sync.Mutex
	out []byte // the event line, once it came
	eof bool   // out fully read, or the mount is closing
}

var (
	_ fs.FileReader   = (*watchHandle)(nil)
	_ fs.FileReleaser = (*watchHandle)(nil)
)

func (h *watchHandle) Read(ctx context.Context, dest []byte, off int64) (gf.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.out == nil && !h.eof {
		var ev client.Event
		var ok bool
		if h.nonblock {
			select {
			case ev, ok = <-h.w.Events:
			default:
				return nil, syscall.EAGAIN
			}
		} else {
			select {
			case ev, ok = <-h.w.Events:
			case <-ctx.Done():
				return nil, syscall.EINTR
			case <-h.m.ctx.Done():
				h.eof = true // unmounting: let the reader go
				return gf.ReadResultData(nil), 0
			}
		}
		if !ok {
			return nil, h.m.errno("watch", "", fmt.Errorf("watch ended: %w", h.w.Err()))
		}
		h.w.Cancel()
		h.out = fmt.Appendf(nil, "%s %s %d\n", ev.Type, ev.Path, ev.Zxid)
	}
	n := copy(dest, h.out)
	h.out = h.out[n:]
	if len(h.out) == 0 {
		h.eof = true
	}
	return gf.ReadResultData(dest[:n]), 0
}

func (h *watchHandle) Release(ctx context.Context) syscall.Errno {
	h.w.Cancel()
	return 0
}
