package recipe

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"coord/client"
)

// Errors of the recipes.
var (
	// ErrNotHeld: Unlock or Guard without holding the lock.
	ErrNotHeld = errors.New("lock not held")
	// ErrLocked: TryLock found the lock held by someone else.
	ErrLocked = errors.New("lock is held by another client")
	// ErrLost: the lock was lost (session expired or node deleted).
	ErrLost = errors.New("lock lost")
)

const lockPrefix = "lock-"

// Lock is a distributed mutex at a path (and, with other rules, a read
// or write lock or a semaphore permit). One Lock value is one contender;
// it is not reentrant.
type Lock struct {
	c    *client.Client
	dir  string
	data []byte
	// prefix names this contender's node; ready says, for our position i
	// in the queue q, whether we hold it, and otherwise which node to
	// watch (only that one: no herd effect).
	prefix string
	ready  func(q []string, i int) (bool, int)

	mu    sync.Mutex
	node  string // our node while queued or holding
	token uint64
	lost  chan struct{}
	stop  chan struct{}
	wg    sync.WaitGroup
}

// NewLock returns a contender for the mutex at dir.
func NewLock(c *client.Client, dir string) *Lock {
	return &Lock{c: c, dir: dir, prefix: lockPrefix, ready: firstInLine}
}

// firstInLine: hold when first; else watch the predecessor.
func firstInLine(q []string, i int) (bool, int) { return i == 0, i - 1 }

// Lock blocks until the lock is held or ctx ends, and returns the fencing
// token of this acquisition.
func (l *Lock) Lock(ctx context.Context) (uint64, error) { return l.acquire(ctx, true) }

// TryLock takes the lock if it is free right now; otherwise ErrLocked.
func (l *Lock) TryLock(ctx context.Context) (uint64, error) { return l.acquire(ctx, false) }

func seqOf(name string) string { return name[strings.LastIndexByte(name, '-')+1:] }

// queue lists the contenders' node names (any NAME-SEQUENCE child) sorted
// by sequence number. ro may ask for a local read; see Lock.acquire for
// why a contender may use one.
func queue(ctx context.Context, c *client.Client, dir string, ro *client.ReadOptions) ([]string, error) {
	names, _, err := c.Children(ctx, dir, ro)
	if err != nil {
		return nil, err
	}
	var q []string
	for _, n := range names {
		if i := strings.LastIndexByte(n, '-'); i >= 0 && isDigits(n[i+1:]) {
			q = append(q, n)
		}
	}
	sort.Slice(q, func(i, j int) bool { return seqLess(seqOf(q[i]), seqOf(q[j])) })
	return q, nil
}

func isDigits(s string) bool {
	if len(s) < 10 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// seqLess orders sequence suffixes numerically (10 digits or more).
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// ensureDir makes the lock's directory (a container: it goes away with
// its last contender).
func ensureDir(ctx context.Context, c *client.Client, dir string) error {
	if st, err := c.Exists(ctx, dir, nil); err != nil || st != nil {
		return err
	}
	if parent := path.Dir(dir); parent != "/" {
		if err := ensureDir(ctx, c, parent); err != nil {
			return err
		}
	}
	_, _, err := c.Create(ctx, dir, nil, &client.CreateOptions{Container: true})
	if errors.Is(err, client.ErrNodeExists) {
		return nil
	}
	return err
}

func (l *Lock) acquire(ctx context.Context, wait bool) (uint64, error) {
	l.mu.Lock()
	if l.node != "" {
		l.mu.Unlock()
		return 0, fmt.Errorf("lock %s: already held or queued by this contender", l.dir)
	}
	l.mu.Unlock()
	// Open the session first: every write below is then exactly-once,
	// so a leader change mid-acquisition is retried, not reported.
	if _, err := l.c.Session(ctx); err != nil {
		return 0, fmt.Errorf("lock %s: %w", l.dir, err)
	}
	// Parents: the lock's directory is a container that goes away with its
	// last contender; making it in the same write keeps an uncontended
	// acquire at one write.
	p, st, err := l.c.Create(ctx, path.Join(l.dir, l.prefix), l.data, &client.CreateOptions{Ephemeral: true, Sequential: true, Parents: true})
	if err != nil {
		return 0, fmt.Errorf("lock %s: %w", l.dir, err)
	}
	node, token := p, st.Czxid
	name := path.Base(node)
	giveUp := func(err error) (uint64, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.c.Config().RequestTimeout)
		defer cancel()
		_ = l.c.Delete(dctx, node, -1)
		return 0, err
	}
	// The queue is read locally (never older than our own create, which the
	// client has seen): once our node exists, no node with a lower
	// sequence number can appear (the counter only grows, and the
	// directory cannot be re-made while our node is in it), so a stale
	// view can only show predecessors that are already gone. That makes
	// us wait on a watch that fires at once, never take the lock early;
	// and it saves a leader round trip on every hand-over.
	local := &client.ReadOptions{Local: true}
	for {
		q, err := queue(ctx, l.c, l.dir, local)
		if err != nil {
			return giveUp(fmt.Errorf("lock %s: %w", l.dir, err))
		}
		i := indexOf(q, name)
		if i < 0 {
			return giveUp(fmt.Errorf("lock %s: %w: our node %s is gone", l.dir, ErrLost, node))
		}
		ok, watch := l.ready(q, i)
		if ok {
			break
		}
		if !wait {
			return giveUp(fmt.Errorf("lock %s: %w", l.dir, ErrLocked))
		}
		// Watch one node only: one release wakes one waiter.
		st, w, err := l.c.ExistsW(ctx, path.Join(l.dir, q[watch]))
		if err != nil {
			return giveUp(fmt.Errorf("lock %s: %w", l.dir, err))
		}
		if st != nil {
			select {
			case <-w.Done():
			case <-ctx.Done():
				w.Cancel()
				return giveUp(ctx.Err())
			case <-l.c.SessionDone():
				w.Cancel()
				return giveUp(fmt.Errorf("lock %s: %w: %v", l.dir, ErrLost, l.c.SessionErr()))
			}
		}
		w.Cancel()
	}
	l.mu.Lock()
	l.node, l.token = node, token
	l.lost, l.stop = make(chan struct{}), make(chan struct{})
	l.mu.Unlock()
	l.wg.Add(1)
	go l.guard(node, token, l.lost, l.stop)
	return token, nil
}

func indexOf(q []string, name string) int {
	for i, n := range q {
		if n == name {
			return i
		}
	}
	return -1
}

// guard closes lost when the session ends or our node disappears.
func (l *Lock) guard(node string, token uint64, lost, stop chan struct{}) {
	defer l.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
		case <-l.c.SessionDone():
		}
		cancel()
	}()
	after := token // the node existed at its own czxid
	for ctx.Err() == nil {
		w, err := l.c.Watch(ctx, node, client.WatchPersistent, after)
		if err != nil {
			// History compacted or a failure: look, then watch from now.
			st, eerr := l.c.Exists(ctx, node, nil)
			if eerr == nil && st == nil {
				break // our node is gone
			}
			after = 0
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		gone := false
		for e := range w.Events {
			if e.Type == client.EventDeleted {
				gone = true
				break
			}
			after = e.Zxid
		}
		w.Cancel()
		if gone {
			break
		}
	}
	select {
	case <-stop: // Unlock: not lost
	default:
		close(lost)
	}
}

// Token is the fencing token of the current hold (0 when not held).
func (l *Lock) Token() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.token
}

// Node is the holder's node path (for CheckOp in a Multi).
func (l *Lock) Node() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.node
}

// Lost is closed when the held lock is lost: the session expired or the
// node was deleted. Nil when not held.
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Guard runs ops atomically only while this contender still holds the
// lock: the Multi's first op checks that the holder's node exists.
func (l *Lock) Guard(ctx context.Context, ops ...client.Op) ([]client.OpResult, error) {
	node := l.Node()
	if node == "" {
		return nil, ErrNotHeld
	}
	res, err := l.c.Multi(ctx, append([]client.Op{client.CheckOp(node, -1)}, ops...)...)
	var me *client.MultiError
	if errors.As(err, &me) && me.Index == 0 {
		return nil, fmt.Errorf("lock %s: %w", l.dir, ErrLost)
	}
	if err != nil {
		return nil, err
	}
	return res[1:], nil
}

// Unlock releases the lock.
func (l *Lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	node, stop := l.node, l.stop
	l.node, l.token = "", 0
	l.mu.Unlock()
	if node == "" {
		return ErrNotHeld
	}
	close(stop)
	l.wg.Wait()
	err := l.c.Delete(ctx, node, -1)
	if errors.Is(err, client.ErrNoNode) {
		return fmt.Errorf("lock %s: %w", l.dir, ErrLost)
	}
	return err
}
