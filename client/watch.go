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
// resumes after the last zxid it delivered, so no event is lost or
// repeated; if the server's history no longer reaches back, the watch ends
// with ErrCompacted and the caller re-reads.
type Watch struct {
	// Events is closed when the watch ends; Err then says why.
	Events <-chan Event

	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// Cancel stops the watch; Events closes soon after.
func (w *Watch) Cancel() { w.cancel() }

// Done is closed when the watch has ended.
func (w *Watch) Done() <-chan struct{} { return w.done }

// Err is why the watch ended: nil for a fired one-shot watch or Cancel,
// ErrCompacted, ErrClosed, the ctx error, or the server's refusal.
func (w *Watch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
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
	events := make(chan Event, 64)
	w := &Watch{Events: events, cancel: cancel, done: make(chan struct{})}
	armed := make(chan error, 1)
	go c.runWatch(wctx, w, events, path, k, after, armed)
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

func (w *Watch) end(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// runWatch owns one watch's stream; it ends when the watch does, closing
// Events and done.
func (c *Client) runWatch(ctx context.Context, w *Watch, events chan<- Event, path string, kind coordpb.WatchKind, cursor uint64, armed chan<- error) {
	defer close(w.done)
	defer close(events)
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
		fatal, err := c.watchOnce(ctx, c.rpcs[i], events, path, kind, &cursor, &first, armed)
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
		case <-time.After(pause):
		}
		pause = min(2*pause, retryBackoffMax)
	}
}

// watchOnce runs one stream. fatal means the watch is over (fired,
// refused, compacted, cancelled); otherwise the stream broke and the
// caller reconnects.
func (c *Client) watchOnce(ctx context.Context, rpc coordpb.CoordClient, events chan<- Event, path string, kind coordpb.WatchKind, cursor *uint64, first *bool, armed chan<- error) (bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := rpc.Watch(sctx)
	if err != nil {
		return false, err
	}
	if err := stream.Send(&coordpb.WatchRequest{Req: &coordpb.WatchRequest_Create{Create: &coordpb.WatchCreate{WatchId: 1, Path: path, Kind: kind, StartZxid: *cursor}}}); err != nil {
		return false, err
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
		case r.Created:
			if *cursor == 0 {
				*cursor = r.ProgressZxid
			}
			if *first {
				*first = false
				armed <- nil
			}
		}
		for _, e := range r.Events {
			if e.Zxid <= *cursor {
				continue // already delivered before a reconnect
			}
			select {
			case events <- eventFromPB(e):
				*cursor = e.Zxid
				c.observe(&coordpb.ResponseHeader{Zxid: e.Zxid})
			case <-ctx.Done():
				return true, nil
			}
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
