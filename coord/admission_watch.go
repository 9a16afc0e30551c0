package coord

import (
	"sync"
	"sync/atomic"
	"time"

	"coord/coord/rpc"
	"coord/proto/coordpb"
)

// Watch fan-out bounds (issue 10). A watch stream's responses go through
// a bounded buffer to one sender goroutine; when the consumer does not
// read, gRPC flow control blocks the sender, the buffer fills, and after
// WatchSlowTimeout of a full buffer the server ends the stream with
// rpc.TooSlowError (ResourceExhausted, WATCH_TOO_SLOW, resume_zxid): a
// clear "too slow, resync from zxid X" instead of a handler parked
// forever. The client's Watch treats it like any broken stream and
// resumes after the last zxid it received (the existing resume path).
//
// Memory per stream is then bounded by WatchBuffer responses plus gRPC's
// own windows; the shared history (watch.go) is bounded by WatchHistory.

// Watch fan-out defaults.
const (
	DefaultWatchBuffer      = 1024
	DefaultWatchSlowTimeout = 2 * time.Second
)

// watchSender is one stream's bounded buffer and its sender goroutine.
//
// Goroutine: run, started by newWatchSender; it ends when stop is closed
// and its current Send has returned (a Send blocked on a consumer that
// never reads returns once the handler has returned and gRPC ends the
// stream).
type watchSender struct {
	q        chan *coordpb.WatchResponse
	stop     chan struct{}
	failed   chan struct{} // closed when a Send failed
	err      error         // that Send's error (set before failed closes)
	once     sync.Once
	sent     atomic.Uint64 // the highest progress zxid actually sent
	patience time.Duration
}

func newWatchSender(send func(*coordpb.WatchResponse) error, buffer int, patience time.Duration) *watchSender {
	if buffer <= 0 {
		buffer = DefaultWatchBuffer
	}
	if patience <= 0 {
		patience = DefaultWatchSlowTimeout
	}
	w := &watchSender{q: make(chan *coordpb.WatchResponse, buffer), stop: make(chan struct{}), failed: make(chan struct{}), patience: patience}
	go w.run(send)
	return w
}

func (w *watchSender) run(send func(*coordpb.WatchResponse) error) {
	for {
		select {
		case <-w.stop:
			return
		case r := <-w.q:
			if err := send(r); err != nil {
				w.err = err
				close(w.failed)
				return
			}
			if z := r.GetProgressZxid(); z > w.sent.Load() {
				w.sent.Store(z)
			}
		}
	}
}

// send queues r; it waits up to patience for room, then reports the
// consumer too slow.
func (w *watchSender) send(r *coordpb.WatchResponse) error {
	select {
	case w.q <- r:
		return nil
	case <-w.failed:
		return w.err
	default:
	}
	t := time.NewTimer(w.patience)
	defer t.Stop()
	select {
	case w.q <- r:
		return nil
	case <-w.failed:
		return w.err
	case <-t.C:
		return &rpc.TooSlowError{ResumeZxid: w.sent.Load(), Buffered: len(w.q)}
	}
}

// close stops the sender goroutine (without waiting for a blocked Send).
func (w *watchSender) close() { w.once.Do(func() { close(w.stop) }) }
