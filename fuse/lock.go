package fuse

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"syscall"

	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/client"
	"coord/client/recipe"
)

// lockRoot is where the lock queues live: apart from the locked nodes, so
// a lock never turns the locked file into a directory (the server
// reserves /.coord itself, so not there). The mount hides this name at
// its root. One flat queue per locked path (the path escaped into one
// name); the queues are containers and go away with their last waiter.
const lockRoot = "/" + lockRootName
const lockRootName = ".fuse-locks"

// lockDir is the recipe directory for locks on znode path p.
func lockDir(p string) string { return lockRoot + "/" + url.PathEscape(p) }

// heldLock is a lock held through one open file.
type heldLock struct {
	l      *recipe.Lock
	shared bool
	path   string
}

// lockTable maps open files to the coord locks they hold. flock and fcntl
// locks both belong to the open file: they are released by an explicit
// unlock or when the last descriptor of the open file is closed (RELEASE).
type lockTable struct {
	mu   sync.Mutex
	held map[*fileHandle]*heldLock
}

func (t *lockTable) get(h *fileHandle) *heldLock {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held[h]
}

// check fails with EIO once a handle's lock was lost (session expiry):
// the holder's next operation learns it.
func (t *lockTable) check(h *fileHandle) syscall.Errno {
	hl := t.get(h)
	if hl == nil {
		return 0
	}
	select {
	case <-hl.l.Lost():
		return syscall.EIO
	default:
		return 0
	}
}

// token is the fencing token of a lock this mount holds on p (0: none).
func (t *lockTable) token(p string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, hl := range t.held {
		if hl.path == p {
			return hl.l.Token()
		}
	}
	return 0
}

func (t *lockTable) release(ctx context.Context, h *fileHandle) {
	t.mu.Lock()
	hl := t.held[h]
	delete(t.held, h)
	t.mu.Unlock()
	if hl != nil {
		// The kernel's ctx may be short-lived; the unlock must happen.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.n.m.cli().Config().RequestTimeout)
		defer cancel()
		if err := hl.l.Unlock(uctx); err != nil && !errors.Is(err, recipe.ErrLost) {
			h.n.m.log.Warn("unlock failed", "path", hl.path, "err", err)
		}
	}
}

func (t *lockTable) releaseAll(ctx context.Context, m *Mount) {
	t.mu.Lock()
	hs := make([]*fileHandle, 0, len(t.held))
	for h := range t.held {
		hs = append(hs, h)
	}
	t.mu.Unlock()
	for _, h := range hs {
		t.release(ctx, h)
	}
}

// setlk takes, converts or drops the handle's lock. Byte ranges are
// ignored: a lock covers the whole znode.
func (h *fileHandle) setlk(ctx context.Context, lk *gf.FileLock, wait bool) syscall.Errno {
	m := h.n.m
	if lk.Typ == syscall.F_UNLCK {
		m.locks.release(ctx, h)
		return 0
	}
	shared := lk.Typ == syscall.F_RDLCK
	if hl := m.locks.get(h); hl != nil {
		if hl.shared == shared {
			return 0
		}
		// Conversion is unlock + lock (not atomic, as flock(2) says of
		// its own conversions).
		m.locks.release(ctx, h)
	}
	dir := lockDir(h.path)
	l := recipe.NewWriteLock(m.cli(), dir)
	if shared {
		l = recipe.NewReadLock(m.cli(), dir)
	}
	var err error
	if wait {
		// ctx is cancelled when the kernel interrupts the call (a
		// killed or timed-out flock); the mount's ctx ends at unmount.
		lctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(m.ctx, cancel)
		_, err = l.Lock(lctx)
		stop()
		cancel()
	} else {
		_, err = l.TryLock(ctx)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return syscall.EINTR
		}
		return m.errno("lock", h.path, err)
	}
	m.locks.mu.Lock()
	m.locks.held[h] = &heldLock{l: l, shared: shared, path: h.path}
	m.locks.mu.Unlock()
	return 0
}

// Setlk is the non-blocking form (flock -n, F_SETLK): EAGAIN when held.
func (h *fileHandle) Setlk(ctx context.Context, owner uint64, lk *gf.FileLock, flags uint32) syscall.Errno {
	return h.setlk(ctx, lk, false)
}

// Setlkw waits for the lock; EINTR when interrupted.
func (h *fileHandle) Setlkw(ctx context.Context, owner uint64, lk *gf.FileLock, flags uint32) syscall.Errno {
	return h.setlk(ctx, lk, true)
}

// Getlk reports F_UNLCK when the lock could be taken now by this open
// file, else a write lock held by someone else (pid unknown: 0).
func (h *fileHandle) Getlk(ctx context.Context, owner uint64, lk *gf.FileLock, flags uint32, out *gf.FileLock) syscall.Errno {
	m := h.n.m
	*out = *lk
	if m.locks.get(h) != nil {
		out.Typ = syscall.F_UNLCK
		return 0
	}
	names, _, err := m.cli().Children(ctx, lockDir(h.path), nil)
	if err != nil && !errors.Is(err, client.ErrNoNode) {
		return m.errno("getlk", h.path, err)
	}
	if len(names) == 0 {
		out.Typ = syscall.F_UNLCK
		return 0
	}
	out.Typ = syscall.F_WRLCK
	out.Start, out.End, out.Pid = 0, 1<<63-1, 0
	return 0
}
