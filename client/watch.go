package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"coord/proto/coordpb"
)

// WatchKind chooses which changes a watch reports (ZooKeeper's rules).
type WatchKind int

// Watch kinds.
const (
	// WatchData: one-shot; the node's data changed or it was deleted.
	WatchData WatchKind = iota
	// WatchExists: one-shot; the node was created, deleted or changed.
	WatchExists
	// WatchChildren: one-shot; a child was added or removed, or the node
	// was deleted.
	WatchChildren
	// WatchPersistent: every event on the node, until cancelled.
	WatchPersistent
	// WatchRecursive: every create, delete and data change on the node and
	// below, until cancelled.
	WatchRecursive
)

// EventType is the kind of change an Event reports.
type EventType int

// Event types.
const (
	EventCreated EventType = iota + 1
	EventDeleted
	EventDataChanged
	EventChildrenChanged
)

func (t EventType) String() string {
	switch t {
	case EventCreated:
		return "created"
	case EventDeleted:
		return "deleted"
	case EventDataChanged:
		return "changed"
	case EventChildrenChanged:
		return "children"
	}
	return "unknown"
}

// Event is one change, with the zxid of the write that made it.
type Event struct {
	Type EventType
	Path string
	Zxid uint64
}

// Watch delivers the events of one watch in zxid order. Its goroutine
// survives server failures: it reconnects (to the next endpoint) and
// resumes after the last zxid it received, so no event is lost or
// repeated; if the server's history no longer reaches back, the watch ends
// with ErrCompacted and the caller re-reads.
//
// Ordering: a read this client makes (Get, Exists, Children and the W
// forms) returns only after every event of its live watches that the read
// reflects has been queued for Events — the client sees the event before
// the data, as in ZooKeeper. Events are queued without bound, so a slow
// consumer never stalls the client's reads.
type Watch struct {
	// Events is closed when the watch ends; Err then says why.
	Events <-chan Event

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	err     error
	queue   []Event // received, not yet handed to Events
	queued  uint64  // every matching event with zxid <= queued is queued
	ended   bool    // no more events will be queued
	wake    chan struct{}
	waiters []progressWaiter
	stream  coordpb.Coord_WatchClient // the current stream, nil between
	sendMu  sync.Mutex                // one Send at a time on stream
}

type progressWaiter struct {
	zxid uint64
	ch   chan struct{}
}

// Queued is the zxid up to which every event of this watch has been
// queued for Events: a read this client returned at zxid z had Queued >= z.
func (w *Watch) Queued() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}

// Cancel stops the watch; Events closes soon after.
func (w *Watch) Cancel() { w.cancel() }

// Done is closed when the watch has ended (its last events may still be
// waiting in Events).
func (w *Watch) Done() <-chan struct{} { return w.done }

// Err is why the watch ended: nil for a fired one-shot watch or Cancel,
// ErrCompacted, ErrClosed, the ctx error, or the server's refusal.
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *Watch) end(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// enqueue adds a received event; progress raises what is known complete.
func (w *Watch) enqueue(e *Event, progress uint64) {
	w.mu.Lock()
	if e != nil {
		w.queue = append(w.queue, *e)
		progress = max(progress, e.Zxid)
	}
	if progress > w.queued {
		w.queued = progress
	}
	keep := w.waiters[:0]
	for _, pw := range w.waiters {
		if pw.zxid <= w.queued {
			close(pw.ch)
		} else {
			keep = append(keep, pw)
		}
	}
	w.waiters = keep
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// finish marks the watch over: the pump closes Events once drained, and
// anyone waiting on its progress is released.
func (w *Watch) finish() {
	w.mu.Lock()
	w.ended = true
	for _, pw := range w.waiters {
		close(pw.ch)
	}
	w.waiters = nil
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pump hands queued events to Events in order and closes it at the end.
func (w *Watch) pump(events chan<- Event, stop <-chan struct{}) {
	defer close(events)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			ended := w.ended
			w.mu.Unlock()
			if ended {
				return
			}
			select {
			case <-w.wake:
			case <-stop:
				return
			}
			continue
		}
		e := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case events <- e:
		case <-stop:
			return
		}
	}
}

// waitQueued returns once every event with zxid <= z is queued, asking
// the server for a progress mark if need be.
func (w *Watch) waitQueued(ctx context.Context, z uint64) error {
	w.mu.Lock()
	if w.queued >= z || w.ended {
		w.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	w.waiters = append(w.waiters, progressWaiter{zxid: z, ch: ch})
	st := w.stream
	w.mu.Unlock()
	if st != nil {
		w.sendMu.Lock()
		_ = st.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Progress{Progress: &coordpb.WatchProgressRequest{Zxid: z}}})
		w.sendMu.Unlock()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// orderAfterWatches makes a read at zxid z wait until the client's live
// watches have queued every event it reflects.
func (c *Client) orderAfterWatches(ctx context.Context, z uint64) error {
	c.watchMu.Lock()
	ws := make([]*Watch, 0, len(c.watches))
	for w := range c.watches {
		ws = append(ws, w)
	}
	c.watchMu.Unlock()
	for _, w := range ws {
		if err := w.waitQueued(ctx, z); err != nil {
			return err
		}
	}
	return nil
}

func kindPB(k WatchKind) (coordpb.WatchKind, error) {
	switch k {
	case WatchData:
		return coordpb.WatchKind_WATCH_DATA, nil
	case WatchExists:
		return coordpb.WatchKind_WATCH_EXISTS, nil
	case WatchChildren:
		return coordpb.WatchKind_WATCH_CHILDREN, nil
	case WatchPersistent:
		return coordpb.WatchKind_WATCH_PERSISTENT, nil
	case WatchRecursive:
		return coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE, nil
	}
	return 0, &Error{Message: fmt.Sprintf("invalid argument: unknown watch kind %d", k), failedOp: -1, err: ErrInvalidArgument}
}

func eventFromPB(e *coordpb.WatchEvent) Event {
	t := EventType(0)
	switch e.Type {
	case coordpb.EventType_NODE_CREATED:
		t = EventCreated
	case coordpb.EventType_NODE_DELETED:
		t = EventDeleted
	case coordpb.EventType_NODE_DATA_CHANGED:
		t = EventDataChanged
	case coordpb.EventType_NODE_CHILDREN_CHANGED:
		t = EventChildrenChanged
	}
	return Event{Type: t, Path: e.Path, Zxid: e.Zxid}
}

// Watch arms a watch on path and returns once the server has it. Events
// with zxid > after are delivered; pass the zxid of the read the watch
// belongs to (GetW does) so that nothing between the read and the watch is
// missed, or 0 for "from now". The watch lives until it fires (one-shot
// kinds), Cancel, ctx ends or the client closes.
func (c *Client) Watch(ctx context.Context, path string, kind WatchKind, after uint64) (*Watch, error) {
	k, err := kindPB(kind)
	if err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, ErrClosed
	}
	wctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event)
	w := &Watch{Events: events, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1), queued: after}
	armed := make(chan error, 1)
	c.watchMu.Lock()
	c.watches[w] = struct{}{}
	c.watchMu.Unlock()
	go w.pump(events, wctx.Done())
	go c.runWatch(wctx, w, path, k, after, armed)
	// Stop the watch when the caller's ctx ends, too.
	go func() {
		select {
		case <-ctx.Done():
			w.end(ctx.Err())
			cancel()
		case <-w.done:
		}
	}()
	select {
	case err := <-armed:
		if err != nil {
			cancel()
			<-w.done
			return nil, err
		}
		return w, nil
	case <-ctx.Done():
		cancel()
		<-w.done
		return nil, ctx.Err()
	}
}

// runWatch owns one watch's streams; it ends when the watch does.
func (c *Client) runWatch(ctx context.Context, w *Watch, path string, kind coordpb.WatchKind, cursor uint64, armed chan<- error) {
	defer close(w.done)
	defer func() {
		c.watchMu.Lock()
		delete(c.watches, w)
		c.watchMu.Unlock()
	}()
	defer w.finish()
	first := true
	pause := retryBackoffMin
	for {
		if c.closed.Load() {
			w.end(ErrClosed)
			if first {
				armed <- ErrClosed
			}
			return
		}
		i := int(c.cur.Load()) % len(c.rpcs)
		fatal, err := c.watchOnce(ctx, w, c.rpcs[i], path, kind, &cursor, &first, armed)
		if fatal || ctx.Err() != nil {
			w.end(err)
			return
		}
		// The stream broke: next endpoint, resume after cursor.
		c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.rpcs)))
		c.log.Debug("watch stream broke; resuming", keyEndpoint, c.eps[i], keyErr, err)
		select {
		case <-ctx.Done():
			w.end(nil)
			return
		case <-time.After(fullJitter(pause)):
		}
		pause = min(2*pause, retryBackoffMax)
	}
}

// watchOnce runs one stream. fatal means the watch is over (fired,
// refused, compacted, cancelled); otherwise the stream broke and the
// caller reconnects.
func (c *Client) watchOnce(ctx context.Context, w *Watch, rpc coordpb.CoordClient, path string, kind coordpb.WatchKind, cursor *uint64, first *bool, armed chan<- error) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rpc.Watch(sctx)
	if err != nil {
		return false, err
	}
	w.sendMu.Lock()
	err = stream.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: 1, Path: path, Kind: kind, StartZxid: *cursor}}})
	w.sendMu.Unlock()
	if err != nil {
		return false, err
	}
	w.mu.Lock()
	w.stream = stream
	var pending uint64
	for _, pw := range w.waiters {
		pending = max(pending, pw.zxid)
	}
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.stream = nil
		w.mu.Unlock()
	}()
	if pending > 0 {
		// Progress asked of the broken stream: ask again here.
		w.sendMu.Lock()
		_ = stream.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Progress{Progress: &coordpb.WatchProgressRequest{Zxid: pending}}})
		w.sendMu.Unlock()
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			if err == io.EOF {
				err = errors.New("watch stream closed by the server")
			}
			return false, err
		}
		switch {
		case r.Compacted:
			err := &Error{Message: r.Error, failedOp: -1, err: ErrCompacted}
			if *first {
				armed <- err
			}
			return true, err
		case r.Error != "":
			err := &Error{Message: r.Error, failedOp: -1, err: ErrInvalidArgument}
			if *first {
				armed <- err
			}
			return true, err
		case r.WatchId == -1:
			w.enqueue(nil, r.ProgressZxid) // a progress mark
			continue
		case r.Created:
			if *cursor == 0 {
				*cursor = r.ProgressZxid
			}
			w.enqueue(nil, *cursor)
			if *first {
				*first = false
				armed <- nil
			}
		}
		for _, e := range r.Events {
			if e.Zxid <= *cursor {
				continue // already received before a reconnect
			}
			ev := eventFromPB(e)
			w.enqueue(&ev, 0)
			*cursor = e.Zxid
			c.observe(&coordpb.ResponseHeader{Zxid: e.Zxid})
		}
		if r.Canceled {
			return true, nil // a one-shot watch fired
		}
	}
}

// GetW reads a node and arms a one-shot data watch at the read's zxid, so
// the first change after the read is never missed.
func (c *Client) GetW(ctx context.Context, path string) ([]byte, *Stat, *Watch, error) {
	var resp *coordpb.GetResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Get(ctx, &coordpb.GetRequest{Path: path})
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	c.observe(resp.Header)
	if err := c.orderAfterWatches(ctx, resp.Header.GetZxid()); err != nil {
		return nil, nil, nil, err
	}
	w, err := c.Watch(ctx, path, WatchData, resp.Header.GetZxid())
	if err != nil {
		return nil, nil, nil, err
	}
	return resp.Data, statFromPB(resp.Stat), w, nil
}

// ExistsW checks a node and arms a one-shot exists watch at the read's
// zxid: it fires when the node is created, changed or deleted.
func (c *Client) ExistsW(ctx context.Context, path string) (*Stat, *Watch, error) {
	var resp *coordpb.ExistsResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Exists(ctx, &coordpb.ExistsRequest{Path: path})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	c.observe(resp.Header)
	if err := c.orderAfterWatches(ctx, resp.Header.GetZxid()); err != nil {
		return nil, nil, err
	}
	w, err := c.Watch(ctx, path, WatchExists, resp.Header.GetZxid())
	if err != nil {
		return nil, nil, err
	}
	if !resp.Exists {
		return nil, w, nil
	}
	return statFromPB(resp.Stat), w, nil
}

// ChildrenW lists a node's children (all pages) and arms a one-shot
// children watch at the first page's zxid: a change during or after the
// listing fires it.
func (c *Client) ChildrenW(ctx context.Context, path string) ([]string, *Stat, *Watch, error) {
	var all []string
	var stat *Stat
	var first uint64
	after := ""
	for {
		var resp *coordpb.ChildrenResponse
		err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
			resp, err = r.Children(ctx, &coordpb.ChildrenRequest{Path: path, StartAfter: after})
			return err
		})
		if err != nil {
			return nil, nil, nil, err
		}
		c.observe(resp.Header)
		if err := c.orderAfterWatches(ctx, resp.Header.GetZxid()); err != nil {
			return nil, nil, nil, err
		}
		if first == 0 {
			first = resp.Header.GetZxid()
		}
		all, stat = append(all, resp.Names...), statFromPB(resp.Stat)
		if !resp.More || len(resp.Names) == 0 {
			break
		}
		after = resp.Names[len(resp.Names)-1]
	}
	w, err := c.Watch(ctx, path, WatchChildren, first)
	if err != nil {
		return nil, nil, nil, err
	}
	return all, stat, w, nil
}
