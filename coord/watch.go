package coord

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"coord/coord/replica"
	"coord/coord/rpc"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// watchHub keeps every node's bounded history of recent change events
// (the same on every replica: each applies the same log) and wakes watch
// streams when it grows. Streams pull from the history with their own
// cursors, so a slow stream never loses events: it only falls behind, and
// if it falls behind the history it is told so (compacted).
type watchHub struct {
	mu      sync.Mutex
	events  []tree.Event
	floor   uint64 // the history holds every event with zxid > floor
	applied uint64 // last applied index published
	max     int
	changed chan struct{} // closed and replaced on every publish
}

func newWatchHub(max int) *watchHub {
	if max <= 0 {
		max = DefaultWatchHistory
	}
	return &watchHub{max: max, changed: make(chan struct{})}
}

// publish appends a locally applied batch (raft's apply goroutine).
// Events the hub already has (pushed by the leader, see push.go) are
// skipped: the history holds each zxid's events once, in order.
func (h *watchHub) publish(b replica.Batch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if b.Reset {
		if b.Applied <= h.applied {
			// The leader's events already took the history past the
			// snapshot, contiguously: it stays complete as it is.
			return
		}
		// State replaced by a snapshot: nothing before it is known.
		h.events = h.events[:0]
		h.floor, h.applied = b.Applied, b.Applied
		h.notify()
		return
	}
	h.add(b.Applied, b.Events)
}

// publishPushed merges a batch the leader pushed: every event with
// prev < zxid <= applied. It refuses a batch that would leave a gap (prev
// beyond what the hub has); the caller then restarts from position().
func (h *watchHub) publishPushed(prev, applied uint64, evs []tree.Event) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if prev > h.applied {
		return false
	}
	h.add(applied, evs)
	return true
}

// add appends the events beyond h.applied and moves h.applied to applied.
func (h *watchHub) add(applied uint64, evs []tree.Event) {
	if applied <= h.applied {
		return
	}
	i := 0
	for i < len(evs) && evs[i].Zxid <= h.applied {
		i++
	}
	h.events = append(h.events, evs[i:]...)
	h.applied = applied
	if len(h.events) > h.max {
		// Drop the oldest half, never splitting one zxid's events.
		cut := len(h.events) - h.max/2
		for cut < len(h.events) && h.events[cut].Zxid == h.events[cut-1].Zxid {
			cut++
		}
		h.floor = h.events[cut-1].Zxid
		h.events = append(h.events[:0:0], h.events[cut:]...)
	}
	h.notify()
}

func (h *watchHub) notify() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// maxPull bounds one pull from the history.
const maxPull = 4096

// since returns up to maxPull events with zxid > cursor, the applied index
// they are complete up to, the floor, and a channel closed on the next
// publish.
func (h *watchHub) since(cursor uint64) (evs []tree.Event, upTo, floor uint64, changed <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.Search(len(h.events), func(i int) bool { return h.events[i].Zxid > cursor })
	upTo = h.applied
	if n := len(h.events) - i; n > maxPull {
		end := i + maxPull
		for end < len(h.events) && h.events[end].Zxid == h.events[end-1].Zxid {
			end++
		}
		upTo = h.events[end-1].Zxid
		evs = append(evs, h.events[i:end]...)
	} else {
		evs = append(evs, h.events[i:]...)
	}
	return evs, upTo, h.floor, h.changed
}

func (h *watchHub) position() (applied, floor uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.applied, h.floor
}

// watch is one registered watch on a stream.
type watch struct {
	id     int64
	path   string
	kind   coordpb.WatchKind
	cursor uint64 // events with zxid <= cursor are done
}

func (w *watch) oneShot() bool {
	return w.kind == coordpb.WatchKind_WATCH_DATA || w.kind == coordpb.WatchKind_WATCH_EXISTS || w.kind == coordpb.WatchKind_WATCH_CHILDREN
}

// matches applies ZooKeeper's rules for which events a watch sees.
func (w *watch) matches(e tree.Event) bool {
	switch w.kind {
	case coordpb.WatchKind_WATCH_DATA:
		return e.Path == w.path && (e.Type == tree.EventNodeDataChanged || e.Type == tree.EventNodeDeleted)
	case coordpb.WatchKind_WATCH_EXISTS:
		return e.Path == w.path && e.Type != tree.EventNodeChildrenChanged
	case coordpb.WatchKind_WATCH_CHILDREN:
		return e.Path == w.path && (e.Type == tree.EventNodeChildrenChanged || e.Type == tree.EventNodeDeleted)
	case coordpb.WatchKind_WATCH_PERSISTENT:
		return e.Path == w.path
	case coordpb.WatchKind_WATCH_PERSISTENT_RECURSIVE:
		if e.Type == tree.EventNodeChildrenChanged {
			return false
		}
		return w.path == "/" || e.Path == w.path || strings.HasPrefix(e.Path, w.path+"/")
	}
	return false
}

func eventPB(e tree.Event) *coordpb.WatchEvent {
	t := coordpb.EventType_EVENT_NONE
	switch e.Type {
	case tree.EventNodeCreated:
		t = coordpb.EventType_NODE_CREATED
	case tree.EventNodeDeleted:
		t = coordpb.EventType_NODE_DELETED
	case tree.EventNodeDataChanged:
		t = coordpb.EventType_NODE_DATA_CHANGED
	case tree.EventNodeChildrenChanged:
		t = coordpb.EventType_NODE_CHILDREN_CHANGED
	}
	return &coordpb.WatchEvent{Type: t, Path: e.Path, Zxid: e.Zxid}
}

// Watches returns the number of watches registered on this node, over
// all its streams (Config.MaxWatches bounds it).
func (s *Server) Watches() int { return int(s.watchCount.Load()) }

// Watch serves one watch stream until the client closes it or the server
// stops. Goroutines: this handler's, plus one receiving requests, which
// ends when the stream does.
func (s *Server) Watch(stream coordpb.Coord_WatchServer) error {
	ctx := stream.Context()
	reqs := make(chan *coordpb.WatchRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	s.watchStreams.Add(1)
	defer s.watchStreams.Add(-1)
	ws := &watchStream{s: s, watches: map[int64]*watch{}, caller: rpc.CallerFrom(ctx)}
	defer func() { s.watchCount.Add(-int64(len(ws.watches))) }()
	// A bounded buffer between this loop and the stream (admission_watch.go).
	sender := newWatchSender(stream.Send, s.cfg.WatchBuffer, s.cfg.WatchSlowTimeout)
	defer sender.close()
	ws.send = sender.send
	for {
		changed := ws.deliver()
		ws.answerProgress()
		if ws.err != nil {
			if errors.Is(ws.err, rpc.ErrWatchTooSlow) {
				s.metrics.slowWatchers.Inc()
				return rpc.ToStatus(s.log, ws.err)
			}
			return ws.err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return ErrStopped
		case <-recvErr: // the client closed or broke the stream
			return nil
		case r := <-reqs:
			ws.handle(r)
		case <-changed:
		}
	}
}

type watchStream struct {
	s        *Server
	send     func(*coordpb.WatchResponse) error
	watches  map[int64]*watch
	progress []uint64 // pending progress requests (zxids)
	err      error
	caller   *tree.Caller // who the stream runs as (ACLs filter events)
}

// remove drops one watch and its place in the node's count.
func (ws *watchStream) remove(id int64) {
	delete(ws.watches, id)
	ws.s.watchCount.Add(-1)
}

// limit resolves a configured bound: 0 is def, negative is none (0).
func limit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (ws *watchStream) out(r *coordpb.WatchResponse) {
	if ws.err == nil {
		ws.err = ws.send(r)
	}
}

func (ws *watchStream) handle(r *coordpb.WatchRequest) {
	switch x := r.GetReq().(type) {
	case *coordpb.WatchRequest_Create:
		c := x.Create
		fail := func(msg string) {
			ws.out(&coordpb.WatchResponse{WatchId: c.WatchId, Canceled: true, Error: msg})
		}
		if err := tree.ValidatePath(c.Path); err != nil {
			fail(err.Error())
			return
		}
		if _, dup := ws.watches[c.WatchId]; dup {
			fail(fmt.Sprintf("watch id %d is already in use on this stream", c.WatchId))
			return
		}
		if max := limit(ws.s.cfg.MaxWatchesPerStream, DefaultMaxWatchesPerStream); max > 0 && len(ws.watches) >= max {
			fail(fmt.Sprintf("too many watches on one stream (limit %d)", max))
			return
		}
		if _, ok := coordpb.WatchKind_name[int32(c.Kind)]; !ok {
			fail(fmt.Sprintf("unknown watch kind %d", c.Kind))
			return
		}
		if err := ws.mayWatch(c); err != nil {
			fail(err.Error())
			return
		}
		applied, floor := ws.s.watches.position()
		start := c.StartZxid
		if start == 0 {
			start = applied
		}
		if start < floor {
			ws.out(&coordpb.WatchResponse{WatchId: c.WatchId, Canceled: true, Compacted: true,
				Error: fmt.Sprintf("history starts after zxid %d; events since %d may be lost: re-read and watch again", floor, start)})
			return
		}
		// The node's limit last: a refusal above must not hold a place.
		if n, max := ws.s.watchCount.Add(1), limit(ws.s.cfg.MaxWatches, DefaultMaxWatches); max > 0 && n > int64(max) {
			ws.s.watchCount.Add(-1)
			ws.s.metrics.watchesRefused.Inc()
			fail(fmt.Sprintf("too many watches on this node (limit %d): try another server or cancel some", max))
			return
		}
		ws.watches[c.WatchId] = &watch{id: c.WatchId, path: c.Path, kind: c.Kind, cursor: start}
		ws.out(&coordpb.WatchResponse{WatchId: c.WatchId, Created: true, ProgressZxid: start})
	case *coordpb.WatchRequest_Cancel:
		if _, ok := ws.watches[x.Cancel.WatchId]; ok {
			ws.remove(x.Cancel.WatchId)
			ws.out(&coordpb.WatchResponse{WatchId: x.Cancel.WatchId, Canceled: true})
		}
	case *coordpb.WatchRequest_Progress:
		ws.progress = append(ws.progress, x.Progress.GetZxid())
		ws.answerProgress()
	}
}

// mayWatch: a watch needs READ where the matching read would (exists: the
// parent); events are then filtered one by one by the ACL of the node
// that fired, so a recursive watch never shows a name the caller may not
// read.
func (ws *watchStream) mayWatch(c *coordpb.WatchCreate) error {
	t, _ := ws.s.rep.State()
	if c.Kind == coordpb.WatchKind_WATCH_EXISTS {
		return t.CheckParent(c.Path, tree.PermRead, ws.caller)
	}
	return t.Check(c.Path, tree.PermRead, ws.caller)
}

// answerProgress answers the progress requests whose zxid every watch on
// the stream has reached (deliver has sent all events up to the hub's
// applied index, which is where the cursors stand).
func (ws *watchStream) answerProgress() {
	if len(ws.progress) == 0 {
		return
	}
	ws.deliver()
	applied, _ := ws.s.watches.position()
	keep := ws.progress[:0]
	for _, z := range ws.progress {
		if z <= applied {
			ws.out(&coordpb.WatchResponse{WatchId: -1, ProgressZxid: applied})
		} else {
			keep = append(keep, z)
		}
	}
	ws.progress = keep
}

// deliver sends every pending matching event in zxid order and returns
// the channel to wait on for more.
func (ws *watchStream) deliver() <-chan struct{} {
	for {
		if len(ws.watches) == 0 {
			_, _, _, changed := ws.s.watches.since(^uint64(0))
			return changed
		}
		min := ^uint64(0)
		for _, w := range ws.watches {
			if w.cursor < min {
				min = w.cursor
			}
		}
		evs, upTo, floor, changed := ws.s.watches.since(min)
		if min < floor {
			for id, w := range ws.watches {
				if w.cursor < floor {
					ws.remove(id)
					ws.out(&coordpb.WatchResponse{WatchId: id, Canceled: true, Compacted: true,
						Error: fmt.Sprintf("this watch fell behind the server's history (zxid %d < %d): re-read and watch again", w.cursor, floor)})
				}
			}
			continue
		}
		// Stable order for watches sharing an event.
		ids := make([]int64, 0, len(ws.watches))
		for id := range ws.watches {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, e := range evs {
			for _, id := range ids {
				w, ok := ws.watches[id]
				if !ok || e.Zxid <= w.cursor || !w.matches(e) || !e.Readable(ws.caller) {
					continue
				}
				resp := &coordpb.WatchResponse{WatchId: id, Events: []*coordpb.WatchEvent{eventPB(e)}, ProgressZxid: e.Zxid}
				if w.oneShot() {
					resp.Canceled = true
					ws.remove(id)
				}
				ws.out(resp)
			}
		}
		for _, w := range ws.watches {
			if w.cursor < upTo {
				w.cursor = upTo
			}
		}
		if ws.err != nil || len(evs) < maxPull {
			return changed
		}
	}
}
