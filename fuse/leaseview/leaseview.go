// Package leaseview mounts a Flease member's leases as a flat directory
// (go-fuse v2): each resource is a file; reading it shows the holder,
// epoch, expiry and state as this member sees them; flock on it acquires
// the lease (kept renewed by the lease package) until unlock or last
// close, and releases it then. If the lease is lost while held, the
// holder's next read of the file fails with EIO.
//
// # Goroutines
//
// None of its own: go-fuse's request loops (ended by Close), and the
// lease package's per-lease renewal, which Release or Node.Close ends.
//
// # Decisions
//
//   - Files are views: their attributes report size 0 and they are opened
//     with direct I/O, so every read asks the member afresh.
//   - Any valid name can be looked up (a free resource reads as free), so
//     `flock DIR/job -c CMD` works on a resource never used before.
//   - Resource names are single path segments; writing to a file is
//     refused (EINVAL).
package leaseview

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/lease"
)

// Leases is what the view needs of a lease member (*lease.Node).
type Leases interface {
	Acquire(ctx context.Context, res string) (*lease.Lease, error)
	TryAcquire(ctx context.Context, res string) (*lease.Lease, error)
	Holder(ctx context.Context, res string) (lease.HolderInfo, error)
	List(ctx context.Context) ([]lease.HolderInfo, error)
}

var _ Leases = (*lease.Node)(nil)

// View is a mounted lease directory.
type View struct {
	server *gf.Server
	ctx    context.Context // ends at Close: stops lock waits
	cancel context.CancelFunc
}

// Mount serves n's leases at dir until Close (or fusermount3 -u).
func Mount(dir string, n Leases) (*View, error) {
	ctx, cancel := context.WithCancel(context.Background())
	v := &View{ctx: ctx, cancel: cancel}
	zero := time.Duration(0)
	root := &dirNode{n: n, v: v}
	server, err := fs.Mount(dir, root, &fs.Options{
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: gf.MountOptions{FsName: "coord-leases", Name: "coordlease", EnableLocks: true},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("mount leases at %s: %w", dir, err)
	}
	v.server = server
	return v, nil
}

// Wait blocks until unmounted.
func (v *View) Wait() { v.server.Wait() }

// Close ends lock waits and unmounts. Held leases are released as their
// files are closed (the kernel sends RELEASE at unmount).
func (v *View) Close() error {
	v.cancel()
	err := v.server.Unmount()
	if errors.Is(err, syscall.EINVAL) {
		return nil // already unmounted from outside
	}
	return err
}

type dirNode struct {
	fs.Inode
	n Leases
	v *View
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeCreater   = (*dirNode)(nil)
)

func (d *dirNode) file(ctx context.Context, name string, out *gf.EntryOut) *fs.Inode {
	out.Attr.Mode = syscall.S_IFREG | 0o644
	out.Attr.Nlink = 1
	return d.NewInode(ctx, &fileNode{d: d, res: name}, fs.StableAttr{Mode: syscall.S_IFREG})
}

func (d *dirNode) Lookup(ctx context.Context, name string, out *gf.EntryOut) (*fs.Inode, syscall.Errno) {
	return d.file(ctx, name, out), 0
}

func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	infos, err := d.n.List(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	var es []gf.DirEntry
	for _, h := range infos {
		es = append(es, gf.DirEntry{Name: h.Resource, Mode: syscall.S_IFREG})
	}
	return fs.NewListDirStream(es), 0
}

// Create lets flock(1) open a resource with O_CREAT.
func (d *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *gf.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch := d.file(ctx, name, out)
	return ch, &handle{f: ch.Operations().(*fileNode)}, gf.FOPEN_DIRECT_IO, 0
}

type fileNode struct {
	fs.Inode
	d   *dirNode
	res string
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
)

func (f *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *gf.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o644
	out.Nlink = 1
	return 0
}

// Setattr accepts touch and O_TRUNC and changes nothing.
func (f *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *gf.SetAttrIn, out *gf.AttrOut) syscall.Errno {
	return f.Getattr(ctx, fh, out)
}

func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &handle{f: f}, gf.FOPEN_DIRECT_IO, 0
}

// handle is one open resource file; it may hold the lease.
type handle struct {
	f *fileNode

	mu   sync.Mutex
	held *lease.Lease
	text []byte // rendered at the first read
}

var (
	_ fs.FileReader   = (*handle)(nil)
	_ fs.FileWriter   = (*handle)(nil)
	_ fs.FileSetlker  = (*handle)(nil)
	_ fs.FileSetlkwer = (*handle)(nil)
	_ fs.FileGetlker  = (*handle)(nil)
	_ fs.FileReleaser = (*handle)(nil)
)

func render(h lease.HolderInfo, mine bool) []byte {
	state := "held"
	switch {
	case h.Holder == "":
		state = "free"
	case h.Released:
		state = "released"
	case time.Now().After(h.Expiry):
		state = "expired"
	}
	exp := "-"
	if !h.Expiry.IsZero() {
		exp = h.Expiry.UTC().Format(time.RFC3339Nano)
	}
	holder := string(h.Holder)
	if holder == "" {
		holder = "-"
	}
	return fmt.Appendf(nil, "resource %s\nstate %s\nholder %s\nepoch %d\nexpiry %s\nheld_by_this_open_file %t\n",
		h.Resource, state, holder, h.Epoch, exp, mine)
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (gf.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held != nil && !h.held.Valid() {
		return nil, syscall.EIO // the lease was lost under the holder
	}
	if off == 0 || h.text == nil {
		var info lease.HolderInfo
		if h.held != nil {
			info = lease.HolderInfo{Resource: h.f.res, Holder: h.held.Holder(), Epoch: h.held.Epoch(), Expiry: h.held.Expiry()}
		} else {
			var err error
			if info, err = h.f.d.n.Holder(ctx, h.f.res); err != nil {
				return nil, toErrno(err)
			}
		}
		h.text = render(info, h.held != nil)
	}
	if off >= int64(len(h.text)) {
		return gf.ReadResultData(nil), 0
	}
	return gf.ReadResultData(h.text[off:min(off+int64(len(dest)), int64(len(h.text)))]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EINVAL
}

func (h *handle) setlk(ctx context.Context, lk *gf.FileLock, wait bool) syscall.Errno {
	if lk.Typ == syscall.F_UNLCK {
		h.release(ctx)
		return 0
	}
	h.mu.Lock()
	held := h.held
	h.mu.Unlock()
	if held != nil {
		return 0 // a lease is exclusive: shared and exclusive are the same
	}
	var l *lease.Lease
	var err error
	if wait {
		lctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(h.f.d.v.ctx, cancel)
		l, err = h.f.d.n.Acquire(lctx, h.f.res)
		stop()
		cancel()
	} else {
		l, err = h.f.d.n.TryAcquire(ctx, h.f.res)
	}
	if err != nil {
		return toErrno(err)
	}
	h.mu.Lock()
	h.held = l
	h.mu.Unlock()
	return 0
}

func (h *handle) Setlk(ctx context.Context, owner uint64, lk *gf.FileLock, flags uint32) syscall.Errno {
	return h.setlk(ctx, lk, false)
}

func (h *handle) Setlkw(ctx context.Context, owner uint64, lk *gf.FileLock, flags uint32) syscall.Errno {
	return h.setlk(ctx, lk, true)
}

func (h *handle) Getlk(ctx context.Context, owner uint64, lk *gf.FileLock, flags uint32, out *gf.FileLock) syscall.Errno {
	*out = *lk
	out.Typ = syscall.F_UNLCK
	h.mu.Lock()
	mine := h.held != nil
	h.mu.Unlock()
	if mine {
		return 0
	}
	info, err := h.f.d.n.Holder(ctx, h.f.res)
	if err != nil {
		return toErrno(err)
	}
	if !info.Free() && time.Now().Before(info.Expiry) {
		out.Typ = syscall.F_WRLCK
	}
	return 0
}

func (h *handle) release(ctx context.Context) {
	h.mu.Lock()
	l := h.held
	h.held = nil
	h.mu.Unlock()
	if l != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.Release(rctx) // best effort: an unreleased lease simply expires
	}
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.release(ctx)
	return 0
}

// toErrno: held elsewhere (or the member still in its restart wait) →
// EAGAIN, bad name → EINVAL, interrupted → EINTR, the rest EIO.
func toErrno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, lease.ErrLeaseHeld), errors.Is(err, lease.ErrRecovering):
		return syscall.EAGAIN
	case errors.Is(err, lease.ErrBadResource):
		return syscall.EINVAL
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}
