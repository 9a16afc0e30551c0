package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"coord/proto/coordpb"
)

// session is the client's one session, opened lazily.
type session struct {
	// open serializes opening, so that concurrent first ephemeral
	// creates share one session. It is held across the OpenSession call;
	// mu never is.
	open chan struct{} // a 1-slot semaphore (ctx-aware, unlike a Mutex)

	mu       sync.Mutex
	id       uint64
	timeout  time.Duration
	done     chan struct{} // closed when the session ends (expired or closed)
	err      error         // why it ended
	stop     chan struct{} // closed to stop the keepalive loop
	loopDone chan struct{} // closed when the keepalive loop has returned
}

// Session returns the client's session id, opening a session (with
// Config.SessionTimeout) on first use and starting its keepalive
// goroutine. Once the session has expired it returns ErrSessionExpired:
// the client never opens a second one (make a new Client).
func (c *Client) Session(ctx context.Context) (uint64, error) {
	if id, err, ok := c.sessionNow(); ok {
		return id, err
	}
	select {
	case c.sess.open <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-c.sess.open }()
	if id, err, ok := c.sessionNow(); ok {
		return id, err
	}
	// OpenSession is safe to retry: a session opened by a lost attempt
	// owns nothing and simply expires.
	var resp *coordpb.OpenSessionResponse
	err := c.call(ctx, sessionCall, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: c.cfg.SessionTimeout.Milliseconds()})
		return err
	})
	if err != nil {
		return 0, err
	}
	c.observe(resp.Header)
	timeout := time.Duration(resp.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = c.cfg.SessionTimeout
	}
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	c.sess.mu.Lock()
	if c.closed.Load() {
		// Close ran while we were opening: it saw no session, so this one
		// is ours to close.
		c.sess.mu.Unlock()
		c.closeSessionRPC(ctx, resp.SessionId)
		return 0, ErrClosed
	}
	c.sess.id, c.sess.timeout = resp.SessionId, timeout
	c.sess.done = make(chan struct{})
	c.sess.stop = make(chan struct{})
	c.sess.loopDone = make(chan struct{})
	c.states.set(StateConnected)
	go c.keepAlive(resp.SessionId, timeout, c.sess.stop, c.sess.loopDone)
	c.sess.mu.Unlock()
	c.log.Debug("session opened", keySession, resp.SessionId, keyTimeout, timeout)
	return resp.SessionId, nil
}

// sessionNow reports the session's state when one was opened (ok).
func (c *Client) sessionNow() (id uint64, err error, ok bool) {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	if c.closed.Load() {
		return 0, ErrClosed, true
	}
	if c.sess.id == 0 {
		return 0, nil, false
	}
	select {
	case <-c.sess.done:
		return 0, c.sess.err, true
	default:
		return c.sess.id, nil, true
	}
}

// SessionID is the session's id: 0 before one is opened.
func (c *Client) SessionID() uint64 {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.id
}

// SessionTimeout is the session's negotiated timeout: 0 before one is
// opened.
func (c *Client) SessionTimeout() time.Duration {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.timeout
}

// SessionDone is closed when the session ends: the server said it expired
// (SessionErr is then ErrSessionExpired) or Close closed it (ErrClosed).
// It is nil, blocking forever, before a session is opened.
func (c *Client) SessionDone() <-chan struct{} {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.done
}

// SessionErr says why the session ended; nil while it lives.
func (c *Client) SessionErr() error {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.err
}

// endSession records that session id ended with err and closes SessionDone,
// once.
func (c *Client) endSession(id uint64, err error) {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	if c.sess.id != id || c.sess.done == nil {
		return
	}
	select {
	case <-c.sess.done:
	default:
		c.sess.err = err
		close(c.sess.done)
	}
}

// keepAlive is the one goroutine the client starts: it sends a keepalive
// every timeout/3 until stop is closed or the server says the session has
// expired. Keepalives go to whichever endpoint is in use and fail over like
// reads.
func (c *Client) keepAlive(id uint64, timeout time.Duration, stop, loopDone chan struct{}) {
	defer close(loopDone)
	// A fresh random interval per tick (retry.go: jitterTick): sessions
	// opened together do not keep their keepalives in step.
	t := time.NewTimer(jitterTick(timeout / 3))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		t.Reset(jitterTick(timeout / 3))
		ctx, cancel := context.WithTimeout(context.Background(), timeout/3)
		go func() { // stop also aborts a keepalive in flight
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := c.call(ctx, sessionCall, func(ctx context.Context, r coordpb.CoordClient) error {
			resp, err := r.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id})
			if err == nil {
				c.observe(resp.Header)
			}
			return err
		})
		cancel()
		switch {
		case errors.Is(err, ErrSessionExpired):
			c.log.Warn("session expired", keySession, id)
			c.states.set(StateExpired)
			c.endSession(id, err)
			return
		case err != nil:
			c.states.set(StateDisconnected)
			c.log.Debug("keepalive failed; retrying", keySession, id, keyErr, err)
		default:
			c.states.set(StateConnected)
		}
	}
}

// closeSession stops the keepalive loop and closes the session on the
// server (Close calls it after setting c.closed).
func (c *Client) closeSession(ctx context.Context) error {
	c.sess.mu.Lock()
	id, stop, loopDone, done := c.sess.id, c.sess.stop, c.sess.loopDone, c.sess.done
	c.sess.mu.Unlock()
	if id == 0 {
		return nil
	}
	close(stop)
	<-loopDone
	select {
	case <-done:
		return nil // already expired
	default:
	}
	err := c.closeSessionRPC(ctx, id)
	c.states.set(StateClosed)
	c.endSession(id, ErrClosed)
	return err
}

// closeSessionRPC closes session id on the first endpoint that answers. It
// bypasses call, which refuses once the client is closed.
func (c *Client) closeSessionRPC(ctx context.Context, id uint64) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	var err error
	for i := range c.rpcs {
		var resp *coordpb.CloseSessionResponse
		resp, err = c.rpcs[(int(c.cur.Load())+i)%len(c.rpcs)].CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: id})
		if err == nil {
			c.observe(resp.Header)
			return nil
		}
		mapped, transport := mapError(err)
		if !transport {
			if errors.Is(mapped, ErrSessionExpired) {
				return nil // gone already: what we wanted
			}
			return mapped
		}
		err = mapped
	}
	return err
}
