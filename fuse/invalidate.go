package fuse

import (
	"errors"
	"path"
	"strings"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"

	"coord/client"
)

// invalidator keeps the kernel's caches coherent: one recursive watch on
// the whole tree, and for each event the kernel forgets what it cached of
// the node (attributes, pages) and of its directory entry. The client
// queues a watch's events before it returns a read that reflects them, so
// by the time this session has seen a change the event is on its way
// here; short cache timeouts bound the gap.
func (m *Mount) invalidator() {
	defer m.wg.Done()
	backoff := 50 * time.Millisecond
	for m.ctx.Err() == nil {
		w, err := m.cli().Watch(m.ctx, "/", client.WatchRecursive, m.cli().LastZxid())
		if err != nil {
			if m.ctx.Err() == nil {
				m.log.Warn("cache watch failed; retrying", "err", err)
			}
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		for ev := range w.Events {
			m.invalidate(ev)
		}
		if err := w.Err(); err != nil && m.ctx.Err() == nil {
			// Compacted or broken: events may be missing, so drop
			// everything the kernel knows, then re-arm.
			if errors.Is(err, client.ErrCompacted) {
				m.log.Warn("cache watch compacted; invalidating all", "err", err)
			}
			m.invalidateAll(&m.root.Inode)
		}
	}
}

// inodeAt walks go-fuse's tree to the inode the kernel knows for p (nil
// if none).
func (m *Mount) inodeAt(p string) *fs.Inode {
	n := &m.root.Inode
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if name == "" {
			continue
		}
		if n = n.GetChild(name); n == nil {
			return nil
		}
	}
	return n
}

func (m *Mount) invalidate(ev client.Event) {
	if ev.Path == lockRoot || strings.HasPrefix(ev.Path, lockRoot+"/") {
		return // lock queues: not in the mount
	}
	if n := m.inodeAt(ev.Path); n != nil {
		n.NotifyContent(0, 0) // pages and attributes
		for _, v := range []string{dataName, lockName} {
			if c := n.GetChild(v); c != nil {
				c.NotifyContent(0, 0)
			}
		}
	}
	if ev.Path == "/" {
		return
	}
	dir, name := path.Split(ev.Path)
	dir = path.Clean(dir)
	if pn := m.inodeAt(dir); pn != nil {
		pn.NotifyEntry(name) // the entry may now exist, be gone or change type
		pn.NotifyContent(0, 0)
		if ev.Type == client.EventCreated && dir != "/" {
			// The parent may have just become a directory: a new inode.
			pdir, pname := path.Split(dir)
			if gp := m.inodeAt(path.Clean(pdir)); gp != nil {
				gp.NotifyEntry(pname)
			}
		}
	}
}

func (m *Mount) invalidateAll(n *fs.Inode) {
	for name, c := range n.Children() {
		n.NotifyEntry(name)
		c.NotifyContent(0, 0)
		if c.IsDir() {
			m.invalidateAll(c)
		}
	}
}
