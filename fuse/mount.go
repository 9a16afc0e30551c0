package fuse

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gf "github.com/hanwen/go-fuse/v2/fuse"

	"coord/client"
)

// ErrMount: the kernel mount failed (no /dev/fuse, no fusermount3, a bad
// mountpoint); the message says which.
var ErrMount = errors.New("mount failed")

// Mount is one mounted coord tree: a FUSE server backed by one client with
// one session.
type Mount struct {
	cfg    Config
	dir    string
	cl     atomic.Pointer[client.Client] // the client of the live session
	log    *slog.Logger
	server *gf.Server
	root   *node
	ctlMu  sync.Mutex
	ctl    *fs.Inode // the .coord directory, made on first lookup

	ctx    context.Context // ends at Close: stops the goroutines below
	cancel context.CancelFunc
	wg     sync.WaitGroup

	locks lockTable

	unmounted chan struct{} // closed when the kernel mount is gone

	closeOnce sync.Once
	closeErr  error
}

// New mounts the coord tree at dir and returns once the kernel serves it.
// It opens the client's session first, so ephemerals and locks made
// through the mount belong to it. Close unmounts.
func New(ctx context.Context, dir string, cfg Config) (*Mount, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fuse config: %w", err)
	}
	cfg = cfg.withDefaults()
	c, err := client.New(ctx, cfg.Client)
	if err != nil {
		return nil, err
	}
	if _, err := c.Session(ctx); err != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("open session: %w", err)
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &Mount{cfg: cfg, dir: dir, log: cfg.Logger, ctx: mctx, cancel: cancel}
	m.cl.Store(c)
	m.locks.held = map[*fileHandle]*heldLock{}
	m.root = &node{m: m, kind: kindZnode}
	timeout := cfg.CacheTimeout
	opts := &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		UID:             uint32(os.Getuid()),
		GID:             uint32(os.Getgid()),
		MountOptions: gf.MountOptions{
			FsName:            "coord",
			Name:              "coord",
			EnableLocks:       true,
			ExtraCapabilities: gf.CAP_ATOMIC_O_TRUNC,
			Debug:             cfg.Debug,
			MaxWrite:          1 << 20,
		},
	}
	if cfg.Debug {
		opts.Logger = log.New(os.Stderr, "go-fuse: ", 0)
	}
	server, err := fs.Mount(dir, m.root, opts)
	if err != nil {
		cancel()
		_ = c.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%w at %s: %w", ErrMount, dir, err)
	}
	m.server = server
	m.unmounted = make(chan struct{})
	go func() { server.Wait(); close(m.unmounted) }() // ends with the mount
	m.wg.Add(2)
	go m.invalidator()
	go m.sessionWatcher()
	m.log.Info("mounted", "dir", dir, "session", fmt.Sprintf("%#x", c.SessionID()), "timeout", c.SessionTimeout())
	return m, nil
}

// Client is the mount's current client (for tests and status).
func (m *Mount) Client() *client.Client { return m.cli() }

// cli is the client of the live session (replaced when one expires).
func (m *Mount) cli() *client.Client { return m.cl.Load() }

// Dir is the mountpoint.
func (m *Mount) Dir() string { return m.dir }

// Wait blocks until the filesystem is unmounted (by Close, or from
// outside with fusermount3 -u). Call Close afterwards to free the rest.
func (m *Mount) Wait() { m.server.Wait() }

// Close wakes every blocked watch read, unmounts (falling back to a lazy
// fusermount3 -u -z if the kernel says busy), stops the mount's
// goroutines and closes the client, which closes the session: the
// mount's ephemerals and locks go at once.
func (m *Mount) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		m.cancel() // wakes watch readers and lock waiters first (else EBUSY)
		var err error
		for i := 0; i < 5; i++ {
			select {
			case <-m.unmounted: // from outside (fusermount3 -u)
				err = nil
			default:
				err = m.server.Unmount()
			}
			if err == nil {
				break
			}
			select {
			case <-m.unmounted:
				err = nil // it went from outside meanwhile
			case <-time.After(100 * time.Millisecond):
			}
			if err == nil {
				break
			}
		}
		if err != nil {
			m.log.Warn("unmount failed; detaching lazily", "dir", m.dir, "err", err)
			if out, lerr := exec.Command("fusermount3", "-u", "-z", m.dir).CombinedOutput(); lerr != nil {
				err = fmt.Errorf("unmount %s: %w (fusermount3 -u -z: %v: %s)", m.dir, err, lerr, out)
			} else {
				err = nil
			}
		}
		m.wg.Wait()
		m.locks.releaseAll(ctx, m)
		if cerr := m.cli().Close(ctx); cerr != nil && !errors.Is(cerr, client.ErrClosed) && err == nil {
			err = cerr
		}
		m.closeErr = err
	})
	return m.closeErr
}

// sessionWatcher replaces an expired session: it logs loudly, opens a
// new client and session (retrying until it succeeds or the mount
// closes) and makes it current. The old session's ephemerals and locks
// are gone; files opened under it fail with EIO (fileHandle.stale).
func (m *Mount) sessionWatcher() {
	defer m.wg.Done()
	for {
		old := m.cli()
		select {
		case <-m.ctx.Done():
			return
		case <-old.SessionDone():
		}
		if m.ctx.Err() != nil {
			return
		}
		m.log.Error("SESSION LOST: this mount's ephemerals and locks are gone; opening a new session",
			"dir", m.dir, "session", fmt.Sprintf("%#x", old.SessionID()), "err", old.SessionErr())
		for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
			c, err := client.New(m.ctx, m.cfg.Client)
			if err == nil {
				if _, err = c.Session(m.ctx); err == nil {
					m.cl.Store(c)
					m.log.Error("new session", "dir", m.dir, "session", fmt.Sprintf("%#x", c.SessionID()))
					break
				}
				_ = c.Close(context.WithoutCancel(m.ctx))
			}
			m.log.Warn("new session failed; retrying", "err", err)
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = old.Close(cctx) // ends its watches: the invalidator re-arms on the new client
		cancel()
	}
}

// errno maps err for the kernel, logging the cause of an EIO.
func (m *Mount) errno(op, path string, err error) syscall.Errno {
	e := ToErrno(err)
	if e == syscall.EIO {
		m.log.Warn("EIO", "op", op, "path", path, "err", err)
	}
	return e
}
