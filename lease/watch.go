package lease

import (
	"context"
	"slices"
)

// watchBuffer is the per-watcher event buffer.
const watchBuffer = 64

type watcher struct {
	ch       chan Event
	overflow bool // events were dropped; EventResync is owed
}

// Watch streams events about res: this node's tenures (Acquired, Renewed,
// Lost) and newer committed values seen from any member (HolderChanged).
// An event is never dropped silently: if the buffer overflows the watcher
// gets EventResync and should call Holder. The channel is closed when ctx
// ends or the node closes.
func (n *Node) Watch(ctx context.Context, res string) (<-chan Event, error) {
	if err := checkResource(res); err != nil {
		return nil, err
	}
	w := &watcher{ch: make(chan Event, watchBuffer)}
	if err := n.do(ctx, res, func(s *shard) {
		r := s.state(res)
		r.watchers = append(r.watchers, w)
		n.wg.Add(1) // on the loop, which is itself counted: never races Close's Wait
	}); err != nil {
		return nil, err
	}
	// Owner: the caller's ctx. Stops when ctx ends (unsubscribes and closes
	// the channel on the loop) or when the node closes (shutdown closes it).
	go func() {
		defer n.wg.Done()
		select {
		case <-ctx.Done():
		case <-n.ctx.Done():
			return
		}
		s := n.shardOf(res)
		select {
		case s.in <- func() {
			r := s.state(res)
			if i := slices.Index(r.watchers, w); i >= 0 {
				r.watchers = slices.Delete(r.watchers, i, i+1)
				close(w.ch)
			}
		}:
		case <-n.ctx.Done():
		}
	}()
	return w.ch, nil
}

// publish delivers e to every watcher of r without blocking the loop.
func (s *shard) publish(r *resState, e Event) {
	for _, w := range r.watchers {
		if w.overflow {
			select {
			case w.ch <- Event{Kind: EventResync, HolderInfo: HolderInfo{Resource: e.Resource}}:
				w.overflow = false
			default:
				continue
			}
		}
		select {
		case w.ch <- e:
		default:
			w.overflow = true
		}
	}
}
