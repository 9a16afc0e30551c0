package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"coord/proto/coordpb"
)

// sessionState is the client's one session, opened lazily.
type sessionState struct {
	mu      sync.Mutex
	id      uint64
	timeout time.Duration
	done    chan struct{} // closed when the session ends (expired or closed)
	stop    chan struct{} // stops the keepalive loop
	wg      sync.WaitGroup
	err     error // why it ended
}

func (s *sessionState) init() {}

// Session returns the client's session id, opening a session on first use.
func (c *Client) Session(ctx context.Context) (uint64, error) {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	if c.sess.id != 0 {
		select {
		case <-c.sess.done:
			return 0, c.sess.err
		default:
			return c.sess.id, nil
		}
	}
	var resp *coordpb.OpenSessionResponse
	err := c.call(ctx, write, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: c.cfg.SessionTimeout.Milliseconds()})
		return err
	})
	if err != nil {
		return 0, err
	}
	c.observe(resp.Header)
	c.sess.id = resp.SessionId
	c.sess.timeout = time.Duration(resp.TimeoutMs) * time.Millisecond
	c.sess.done = make(chan struct{})
	c.sess.stop = make(chan struct{})
	c.sess.wg.Add(1)
	go c.keepAlive(c.sess.id, c.sess.timeout, c.sess.stop, c.sess.done)
	return c.sess.id, nil
}

// SessionID is the open session's id, 0 if none.
func (c *Client) SessionID() uint64 {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.id
}

// SessionTimeout is the negotiated timeout of the open session.
func (c *Client) SessionTimeout() time.Duration {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.timeout
}

// SessionDone is closed when the session ends; nil before one is opened.
func (c *Client) SessionDone() <-chan struct{} {
	c.sess.mu.Lock()
	defer c.sess.mu.Unlock()
	return c.sess.done
}

// keepAlive sends a keepalive every timeout/3 until stop; a server verdict
// of expiry ends the session.
func (c *Client) keepAlive(id uint64, timeout time.Duration, stop, done chan struct{}) {
	defer c.sess.wg.Done()
	t := time.NewTicker(timeout / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout/3)
		err := c.call(ctx, read, func(ctx context.Context, r coordpb.CoordClient) error {
			_, err := r.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id})
			return err
		})
		cancel()
		if errors.Is(err, ErrSessionExpired) {
			c.sess.mu.Lock()
			c.sess.err = err
			close(done)
			c.sess.mu.Unlock()
			c.log.Warn("session expired", "session", id)
			return
		}
		if err != nil {
			c.log.Debug("keepalive failed; retrying", "err", err)
		}
	}
}

func (c *Client) closeSession(ctx context.Context) error {
	c.sess.mu.Lock()
	id, stop, done := c.sess.id, c.sess.stop, c.sess.done
	c.sess.mu.Unlock()
	if id == 0 {
		return nil
	}
	close(stop)
	c.sess.wg.Wait()
	select {
	case <-done:
		return nil // already expired
	default:
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	// Bypass the closed flag: call() refuses once closed.
	var err error
	for i := range c.rpcs {
		_, err = c.rpcs[(int(c.cur.Load())+i)%len(c.rpcs)].CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: id})
		if mapped, transport := fromStatus(err); !transport {
			err = mapped
			break
		}
	}
	c.sess.mu.Lock()
	c.sess.err = ErrSessionExpired
	close(done)
	c.sess.mu.Unlock()
	if errors.Is(err, ErrSessionExpired) {
		return nil
	}
	return err
}
