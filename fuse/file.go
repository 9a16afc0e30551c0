package fuse

import (
	"context"
	"errors"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/client"
)

// fileHandle is an open znode file. Reads see the data as of open. Writes
// go to a buffer, written as one set at flush/close (and fsync) with the
// version seen at open as the expected version: a concurrent change
// makes the flush fail with ESTALE instead of being overwritten. A handle
// opened with O_TRUNC overwrites unconditionally (echo x > f wins).
// While the handle holds a flock, the set is fenced: it applies only if
// the lock is still held.
type fileHandle struct {
	n     *node
	path  string
	flags uint32
	cl    *client.Client // the session it was opened under

	mu      sync.Mutex
	data    []byte
	version int64 // expected version at flush; -1: unconditional
	dirty   bool
	// base is the length read at open; an O_APPEND handle that was not
	// truncated only added data[base:], which a flush that meets a
	// concurrent change re-applies on the new data (so two appenders
	// both land, as on a local file).
	base      int
	truncated bool
	// wrote: a write came. An O_TRUNC handle with no write yet is not
	// written at flush (sh's redirection dups and closes the fd once
	// before writing, which would publish an empty intermediate value)
	// but at release: `: > f` still empties f.
	wrote bool
}

var (
	_ fs.FileReader   = (*fileHandle)(nil)
	_ fs.FileWriter   = (*fileHandle)(nil)
	_ fs.FileFlusher  = (*fileHandle)(nil)
	_ fs.FileFsyncer  = (*fileHandle)(nil)
	_ fs.FileReleaser = (*fileHandle)(nil)
	_ fs.FileSetlker  = (*fileHandle)(nil)
	_ fs.FileSetlkwer = (*fileHandle)(nil)
	_ fs.FileGetlker  = (*fileHandle)(nil)
)

// Open opens a znode's data (or a directory's .data, or a .lock file).
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, errno := n.open(ctx, n.zpath(), flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, 0, 0
}

// open opens the node at znode path p (passed in: a node being created
// is not in go-fuse's tree yet).
func (n *node) open(ctx context.Context, p string, flags uint32) (*fileHandle, syscall.Errno) {
	h := &fileHandle{n: n, path: p, flags: flags, version: -1, cl: n.m.cli()}
	if n.kind == kindLock {
		return h, 0
	}
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		// Overwrite: no read, no version check (CAP_ATOMIC_O_TRUNC
		// brings O_TRUNC here instead of a separate truncate).
		h.dirty = true
		return h, 0
	}
	data, st, err := n.m.cli().Get(ctx, h.path, nil)
	if err != nil {
		return nil, n.m.errno("open", h.path, err)
	}
	h.data, h.version, h.base = data, st.Version, len(data)
	return h, 0
}

// Read returns the data as of open.
func (h *fileHandle) Read(ctx context.Context, dest []byte, off int64) (gf.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off >= int64(len(h.data)) {
		return gf.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return gf.ReadResultData(append([]byte(nil), h.data[off:end]...)), 0
}

// Write changes the buffer; O_APPEND writes always go at its end.
func (h *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.n.kind == kindLock {
		return 0, syscall.EINVAL
	}
	if errno := h.n.m.locks.check(h); errno != 0 {
		return 0, errno
	}
	if h.stale() {
		return 0, syscall.EIO
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.flags&syscall.O_APPEND != 0 {
		off = int64(len(h.data))
	}
	end := off + int64(len(data))
	if end > int64(h.n.m.cfg.MaxFileBytes) {
		return 0, syscall.EFBIG
	}
	if end > int64(len(h.data)) {
		nd := make([]byte, end)
		copy(nd, h.data)
		h.data = nd
	}
	copy(h.data[off:], data)
	h.dirty, h.wrote = true, true
	return uint32(len(data)), 0
}

func (h *fileHandle) truncate(size int) syscall.Errno {
	if size > h.n.m.cfg.MaxFileBytes {
		return syscall.EFBIG
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.truncated = true
	if size <= len(h.data) {
		h.data = h.data[:size]
	} else {
		nd := make([]byte, size)
		copy(nd, h.data)
		h.data = nd
	}
	h.dirty, h.wrote = true, true
	return 0
}

// Flush writes the buffer if it changed (close calls it for every fd).
func (h *fileHandle) Flush(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.wrote {
		return 0 // nothing, or only the O_TRUNC: left to Release
	}
	return h.flushLocked(ctx)
}

func (h *fileHandle) flushLocked(ctx context.Context) syscall.Errno {
	if !h.dirty {
		return 0
	}
	if h.stale() {
		h.dirty = false // report once
		h.n.m.log.Warn("EIO: file opened under an expired session", "path", h.path)
		return syscall.EIO
	}
	set := client.SetOp(h.path, h.data, h.version)
	var err error
	var st *client.Stat
	if hl := h.n.m.locks.get(h); hl != nil {
		// Fenced: applies only while this handle's lock is held.
		var res []client.OpResult
		if res, err = hl.l.Guard(ctx, set); err == nil && len(res) == 1 {
			st = res[0].Stat
		}
	} else {
		st, err = h.n.m.cli().Set(ctx, h.path, h.data, h.version)
		for i := 0; i < 10 && errors.Is(err, client.ErrBadVersion) && h.appendOnly(); i++ {
			st, err = h.reappend(ctx)
		}
	}
	if err != nil {
		return h.n.m.errno("write", h.path, err)
	}
	h.dirty = false
	if st != nil {
		h.version = st.Version
	} else {
		h.version = -1
	}
	return 0
}

// stale: the file was opened under a session that has since expired.
func (h *fileHandle) stale() bool { return h.cl != h.n.m.cli() }

func (h *fileHandle) appendOnly() bool {
	return h.flags&syscall.O_APPEND != 0 && !h.truncated && h.version >= 0 && len(h.data) >= h.base
}

// reappend re-reads the node and sets it to the new data plus what this
// handle appended. Called with h.mu held.
func (h *fileHandle) reappend(ctx context.Context) (*client.Stat, error) {
	cur, st, err := h.n.m.cli().Get(ctx, h.path, nil)
	if err != nil {
		return nil, err
	}
	added := h.data[h.base:]
	nd := append(append(make([]byte, 0, len(cur)+len(added)), cur...), added...)
	h.data, h.base, h.version = nd, len(cur), st.Version
	return h.n.m.cli().Set(ctx, h.path, h.data, h.version)
}

// Fsync writes the buffer now (also a pending O_TRUNC).
func (h *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.flushLocked(ctx)
}

// Release drops the handle's lock (flock's unlock arrives here).
func (h *fileHandle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	errno := h.flushLocked(ctx)
	h.mu.Unlock()
	h.n.m.locks.release(ctx, h)
	return errno
}
