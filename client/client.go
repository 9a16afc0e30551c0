package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"coord/proto/coordpb"
)

// Defaults for Config.
const (
	DefaultEndpoint       = "127.0.0.1:4180"
	DefaultRequestTimeout = 10 * time.Second
	DefaultDialTimeout    = 5 * time.Second
)

// Config configures a Client.
type Config struct {
	// Endpoints are the servers' addresses; any of them serves any request.
	Endpoints []string
	// RequestTimeout bounds a call whose ctx has no deadline.
	RequestTimeout time.Duration
	// DialTimeout bounds connecting to one endpoint.
	DialTimeout time.Duration
	// SessionTimeout is requested when a session is opened (0: server
	// default); the server negotiates it into its range.
	SessionTimeout time.Duration
	// MaxMessageBytes bounds a response (large children pages, snapshots
	// are streamed); 0 means 64 MiB.
	MaxMessageBytes int
	// Logger; nil discards.
	Logger *slog.Logger
}

// DefaultConfig talks to the embedded default server.
func DefaultConfig() Config {
	return Config{Endpoints: []string{DefaultEndpoint}, RequestTimeout: DefaultRequestTimeout, DialTimeout: DefaultDialTimeout}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("no endpoints"))
	}
	for _, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			errs = append(errs, errors.New("empty endpoint"))
		}
	}
	if c.RequestTimeout < 0 || c.DialTimeout < 0 || c.SessionTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

// Client talks to a coord cluster. It is safe for concurrent use.
//
// Goroutines: the session keepalive loop (session.go), started when a
// session is first opened and stopped by Close; gRPC's own connection
// goroutines, stopped by Close.
type Client struct {
	cfg   Config
	log   *slog.Logger
	conns []*grpc.ClientConn
	rpcs  []coordpb.CoordClient
	cur   atomic.Int32  // index of the endpoint in use
	seen  atomic.Uint64 // highest zxid seen in any response

	sess   sessionState
	closed atomic.Bool
	mu     sync.Mutex
}

// New makes a client. Connections are made lazily; New fails only on a bad
// config.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 64 << 20
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log}
	for _, ep := range cfg.Endpoints {
		// TLS arrives with the security work; this is the seam.
		cc, err := grpc.NewClient(strings.TrimSpace(ep),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes)))
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("endpoint %q: %w", ep, err)
		}
		c.conns = append(c.conns, cc)
		c.rpcs = append(c.rpcs, coordpb.NewCoordClient(cc))
	}
	c.sess.init()
	return c, nil
}

func (c *Client) closeConns() {
	for _, cc := range c.conns {
		cc.Close()
	}
}

// Close ends the session (if any; its ephemerals go at once) and closes
// the connections.
func (c *Client) Close(ctx context.Context) error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := c.closeSession(ctx)
	c.closeConns()
	return err
}

// LastZxid is the highest zxid this client has seen.
func (c *Client) LastZxid() uint64 { return c.seen.Load() }

func (c *Client) observe(h *coordpb.ResponseHeader) {
	z := h.GetZxid()
	for {
		cur := c.seen.Load()
		if z <= cur || c.seen.CompareAndSwap(cur, z) {
			return
		}
	}
}

// callKind says what may be retried on another endpoint.
type callKind int

const (
	// read: safe to retry anywhere.
	read callKind = iota
	// write: retried only when the server said nothing was applied.
	write
)

// call runs fn against the current endpoint, failing over per kind.
func (c *Client) call(ctx context.Context, kind callKind, fn func(context.Context, coordpb.CoordClient) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	for attempt := 0; ; attempt++ {
		i := int(c.cur.Load()) % len(c.rpcs)
		err := fn(ctx, c.rpcs[i])
		if err == nil {
			return nil
		}
		mapped, transport := fromStatus(err)
		retry := false
		switch {
		case transport && (kind == read || neverSent(err)):
			// Another endpoint may serve it; this one is down.
			c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.rpcs)))
			retry = true
		case errors.Is(mapped, ErrUnavailable) && !errors.Is(mapped, ErrConnectionLoss):
			// The server said no leader: nothing applied.
			retry = true
		}
		if !retry || ctx.Err() != nil {
			if transport && ctx.Err() != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), mapped)
			}
			return mapped
		}
		// Cycle through all endpoints quickly once, then back off.
		if attempt >= len(c.rpcs) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), mapped)
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}

// neverSent reports a failure to connect: the request cannot have reached
// a server, so even a write may go elsewhere.
func neverSent(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Error while dialing") || strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host")
}
