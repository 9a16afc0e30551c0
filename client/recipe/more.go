package recipe

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"coord/client"
)

const (
	readPrefix  = "read-"
	writePrefix = "write-"
	semPrefix   = "sem-"
)

// NewReadLock returns a shared (read) contender for the read-write lock at
// dir: it holds while no writer queued before it; it watches only the
// last such writer.
func NewReadLock(c *client.Client, dir string) *Lock {
	return &Lock{c: c, dir: dir, prefix: readPrefix, ready: func(q []string, i int) (bool, int) {
		for j := i - 1; j >= 0; j-- {
			if !strings.HasPrefix(q[j], readPrefix) {
				return false, j
			}
		}
		return true, -1
	}}
}

// NewWriteLock returns an exclusive (write) contender for the read-write
// lock at dir: it holds when first in line.
func NewWriteLock(c *client.Client, dir string) *Lock {
	return &Lock{c: c, dir: dir, prefix: writePrefix, ready: firstInLine}
}

// NewSemaphore returns a contender for one of n permits at dir: it holds
// while fewer than n contenders queued before it, and watches the one n
// places ahead.
func NewSemaphore(c *client.Client, dir string, n int) *Lock {
	return &Lock{c: c, dir: dir, prefix: semPrefix, ready: func(q []string, i int) (bool, int) {
		return i < n, i - n
	}}
}

// Barrier blocks processes until a condition is met: Set raises it, Wait
// blocks while it stands, Remove lowers it (ZooKeeper's barrier recipe).
type Barrier struct {
	c    *client.Client
	node string
}

// NewBarrier returns the barrier at node.
func NewBarrier(c *client.Client, node string) *Barrier { return &Barrier{c: c, node: node} }

// Set raises the barrier (no error if it stands already).
func (b *Barrier) Set(ctx context.Context) error {
	_, _, err := b.c.Create(ctx, b.node, nil, &client.CreateOptions{Parents: true})
	if errors.Is(err, client.ErrNodeExists) {
		return nil
	}
	return err
}

// Remove lowers the barrier, releasing every waiter.
func (b *Barrier) Remove(ctx context.Context) error {
	err := b.c.Delete(ctx, b.node, -1)
	if errors.Is(err, client.ErrNoNode) {
		return nil
	}
	return err
}

// Wait blocks until the barrier is down (or ctx ends).
func (b *Barrier) Wait(ctx context.Context) error {
	for {
		st, w, err := b.c.ExistsW(ctx, b.node)
		if err != nil {
			return err
		}
		if st == nil {
			w.Cancel()
			return nil
		}
		select {
		case <-w.Done():
		case <-ctx.Done():
			w.Cancel()
			return ctx.Err()
		}
	}
}

// Group is live group membership: each member is an ephemeral node under
// dir, gone when its session ends.
type Group struct {
	c   *client.Client
	dir string
}

// NewGroup returns the group at dir.
func NewGroup(c *client.Client, dir string) *Group { return &Group{c: c, dir: dir} }

// Join adds this client as member name with data; it leaves when the
// client's session ends, or with Leave.
func (g *Group) Join(ctx context.Context, name string, data []byte) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("group %s: member name %q: want a non-empty name without /", g.dir, name)
	}
	_, _, err := g.c.Create(ctx, path.Join(g.dir, name), data, &client.CreateOptions{Ephemeral: true, Parents: true})
	return err
}

// Leave removes member name.
func (g *Group) Leave(ctx context.Context, name string) error {
	return g.c.Delete(ctx, path.Join(g.dir, name), -1)
}

// Members lists the live members' names, sorted.
func (g *Group) Members(ctx context.Context) ([]string, error) {
	names, _, err := g.c.Children(ctx, g.dir, nil)
	if errors.Is(err, client.ErrNoNode) {
		return nil, nil
	}
	return names, err
}

// Watch sends the member list now and after every change until ctx ends.
func (g *Group) Watch(ctx context.Context) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			if err := ensureDir(ctx, g.c, g.dir); err != nil {
				return
			}
			names, _, w, err := g.c.ChildrenW(ctx, g.dir)
			if err != nil {
				select { // the container vanished, or a failover: retry
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			select {
			case out <- names:
			case <-ctx.Done():
				w.Cancel()
				return
			}
			select {
			case <-w.Done():
			case <-ctx.Done():
				w.Cancel()
				return
			}
		}
	}()
	return out
}
