package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

// Defaults for Config.
const (
	DefaultEndpoint        = "127.0.0.1:4180"
	DefaultRequestTimeout  = 10 * time.Second
	DefaultDialTimeout     = 5 * time.Second
	DefaultMaxMessageBytes = 64 << 20
)

// Retry pacing: after every endpoint has been tried once, wait between
// rounds, doubling from retryBackoffMin up to retryBackoffMax.
const (
	retryBackoffMin = 10 * time.Millisecond
	retryBackoffMax = 500 * time.Millisecond
)

// Config configures a Client. The zero value of a field means its default.
type Config struct {
	// Endpoints are the servers' host:port addresses; any of them serves
	// any request. Default: DefaultEndpoint.
	Endpoints []string
	// DialTimeout bounds connecting to one endpoint before the client
	// moves on to the next. Default: DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds a call whose ctx has no deadline (retries
	// included). Default: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// SessionTimeout is the timeout requested when a session is opened;
	// the server negotiates it into its range. 0: the server's default.
	SessionTimeout time.Duration
	// MaxMessageBytes bounds one response message. Default:
	// DefaultMaxMessageBytes. Snapshots are streamed and not bound by it.
	MaxMessageBytes int
	// UnaryCalls makes one unary gRPC call per operation instead of
	// multiplexing the data operations over one Call stream per server
	// (the default; about half the CPU per operation). For comparison and
	// for servers behind proxies that mishandle long-lived streams.
	UnaryCalls bool
	// Logger receives the client's few log lines; nil discards them.
	Logger *slog.Logger

	// TLS, when set, dials every endpoint with TLS (see LoadTLS); nil
	// means plaintext, which a TLS node refuses.
	TLS *tls.Config
}

// DefaultConfig returns a Config with every default filled in, pointing at
// the embedded default server.
func DefaultConfig() Config {
	return Config{
		Endpoints:       []string{DefaultEndpoint},
		DialTimeout:     DefaultDialTimeout,
		RequestTimeout:  DefaultRequestTimeout,
		MaxMessageBytes: DefaultMaxMessageBytes,
	}
}

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.Endpoints) == 0 {
		c.Endpoints = d.Endpoints
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	return c
}

// Validate reports every problem with the config at once. Zero values are
// fine (they mean the defaults).
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, e := range c.Endpoints {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			errs = append(errs, errors.New("empty endpoint"))
		case seen[e]:
			errs = append(errs, fmt.Errorf("endpoint %s listed twice", e))
		case !strings.Contains(e, ":"):
			errs = append(errs, fmt.Errorf("endpoint %q: want host:port", e))
		}
		seen[e] = true
	}
	if c.DialTimeout < 0 {
		errs = append(errs, errors.New("DialTimeout must not be negative"))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, errors.New("RequestTimeout must not be negative"))
	}
	if c.SessionTimeout < 0 {
		errs = append(errs, errors.New("SessionTimeout must not be negative"))
	}
	if c.MaxMessageBytes < 0 {
		errs = append(errs, errors.New("MaxMessageBytes must not be negative"))
	}
	return errors.Join(errs...)
}

// Client talks to a coord cluster. It is safe for concurrent use. See the
// package doc for the goroutines it owns and its retry rules.
type Client struct {
	cfg   Config
	log   *slog.Logger
	eps   []string
	conns []*grpc.ClientConn
	rpcs  []coordpb.CoordClient
	calls []*callClient // the Call streams behind rpcs (none with UnaryCalls)
	cur   atomic.Int32  // index of the endpoint in use (the last good one)
	// budget caps retries at a share of requests (retry.go).
	budget *retryBudget
	// throttle rejects requests locally while the servers shed (retry.go).
	throttle *throttle
	// overload counts this client's overload events (OverloadStats).
	overload overloadCounters
	seen     atomic.Uint64 // highest zxid seen in any response header

	closed atomic.Bool
	token  atomic.Pointer[string] // login session token (Login)
	sess   session
	reqs   requests

	states  stateHub
	watchMu sync.Mutex
	watches map[*Watch]struct{} // live watches, for read ordering
}

// reconnectMaxDelay caps gRPC's reconnect backoff: 3 s, or a quarter of
// the session timeout when that is shorter. A server restarted after its
// clients' backoff grew past the timeout would otherwise see their first
// keepalive only after the grace period it gave their sessions had run
// out (seen: a 2 s session expired across a 1-node restart).
func reconnectMaxDelay(sessionTimeout time.Duration) time.Duration {
	d := 3 * time.Second
	if q := sessionTimeout / 4; q > 0 && q < d {
		d = max(q, 100*time.Millisecond)
	}
	return d
}

// New makes a client. Connections are made lazily, on the first call, so
// New fails only on a bad config; ctx is for future use (name resolution).
func New(ctx context.Context, cfg Config) (*Client, error) {
	_ = ctx
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("client config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	c := &Client{cfg: cfg, log: log, watches: map[*Watch]struct{}{}, budget: newRetryBudget(time.Now), throttle: newThrottle(time.Now)}
	c.sess.open = make(chan struct{}, 1)
	for _, ep := range cfg.Endpoints {
		ep = strings.TrimSpace(ep)
		cc, err := grpc.NewClient(ep,
			grpc.WithTransportCredentials(creds),
			grpc.WithPerRPCCredentials(tokenCreds{c}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes)),
			grpc.WithConnectParams(grpc.ConnectParams{
				MinConnectTimeout: cfg.DialTimeout,
				// Reconnect to a restarted server within seconds, not
				// gRPC's default two minutes, and well within the grace
				// period a new leader gives sessions (one timeout).
				Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMaxDelay(cfg.SessionTimeout)},
			}))
		if err != nil {
			c.closeConns()
			return nil, fmt.Errorf("client config: endpoint %q: %w", ep, err)
		}
		c.eps = append(c.eps, ep)
		c.conns = append(c.conns, cc)
		if cfg.UnaryCalls {
			c.rpcs = append(c.rpcs, coordpb.NewCoordClient(cc))
		} else {
			cc := newCallClient(cc)
			c.calls = append(c.calls, cc)
			c.rpcs = append(c.rpcs, cc)
		}
	}
	return c, nil
}

func (c *Client) closeConns() {
	for _, cc := range c.calls {
		cc.close()
	}
	for _, cc := range c.conns {
		cc.Close()
	}
}

// Close closes the session, if one is open (its ephemeral nodes go at
// once), stops the keepalive goroutine and closes the connections. ctx
// bounds the CloseSession call. Calls after Close fail with ErrClosed.
func (c *Client) Close(ctx context.Context) error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := c.closeSession(ctx)
	c.closeConns()
	return err
}

// Config returns the client's configuration (with defaults filled in).
func (c *Client) Config() Config { return c.cfg }

// LastZxid is the highest zxid this client has seen in any response. Local
// reads are never served from state older than it.
func (c *Client) LastZxid() uint64 { return c.seen.Load() }

// Endpoint is the address of the endpoint the client is using now.
func (c *Client) Endpoint() string { return c.eps[int(c.cur.Load())%len(c.eps)] }

func (c *Client) observe(h *coordpb.ResponseHeader) {
	z := h.GetZxid()
	for {
		cur := c.seen.Load()
		if z <= cur || c.seen.CompareAndSwap(cur, z) {
			return
		}
	}
}

// callKind says what may be retried on another endpoint after the request
// may have reached a server.
type callKind int

const (
	// idempotent calls (reads, keepalives, session open and close) are
	// retried on any failure without a server verdict.
	idempotent callKind = iota
	// write calls are retried only when the request cannot have been
	// applied: it never left the client, or the server said UNAVAILABLE.
	write
	// exactlyOnce writes carry a session and request id the server
	// deduplicates, so they are retried like idempotent calls, also after
	// the server reported an unknown outcome.
	exactlyOnce
	// sessionCall is an idempotent call that is never throttled locally
	// (OpenSession, KeepAlive): overload must not expire sessions.
	sessionCall
)

// noRetry marks an error that call returns as is (a partial snapshot).
type noRetry struct{ err error }

func (e *noRetry) Error() string { return e.err.Error() }

// notConnectedError: the endpoint did not become ready in DialTimeout; the
// request was not sent.
type notConnectedError struct {
	addr  string
	state connectivity.State
}

func (e *notConnectedError) Error() string {
	return fmt.Sprintf("%s: not connected (%s)", e.addr, strings.ToLower(e.state.String()))
}

// call runs fn against the current endpoint, failing over and retrying
// per kind until ctx (or RequestTimeout when ctx has no deadline) ends.
func (c *Client) call(ctx context.Context, kind callKind, fn func(context.Context, coordpb.CoordClient) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	pause := retryBackoffMin
	var last error // the last error worth retrying
	c.budget.request()
	for attempt := 1; ; attempt++ {
		i := int(c.cur.Load()) % len(c.rpcs)
		if kind != sessionCall {
			if ok, p := c.throttle.admit(); !ok {
				c.overload.throttled.Add(1)
				return &Error{Message: fmt.Sprintf("overloaded: rejected by the client without sending (the servers shed recent requests; local rejection rate %.0f%%)", 100*p), failedOp: -1, err: throttledError{}}
			}
		}
		err := c.ready(ctx, i)
		if err == nil {
			err = fn(ctx, c.rpcs[i])
			if err == nil {
				c.throttle.record(true)
				return nil
			}
		}
		var nr *noRetry
		if errors.As(err, &nr) {
			return nr.err
		}
		mapped, transport := mapError(err)
		if verdict(err, transport) {
			shed := errors.Is(mapped, ErrOverloaded)
			c.throttle.record(!shed)
			if shed {
				c.overload.shed.Add(1)
			}
		}
		if nc := (*notConnectedError)(nil); errors.As(err, &nc) {
			mapped, transport = &Error{Message: err.Error(), failedOp: -1, err: ErrConnectionLoss}, true
		}
		if c.closed.Load() {
			return ErrClosed
		}
		retry, overloaded := false, false
		switch {
		case transport:
			// This endpoint is down: the next call goes elsewhere.
			c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.rpcs)))
			retry = kind != write || neverSent(err)
		case kind != write && errors.Is(mapped, ErrConnectionLoss):
			// Leadership moved with the request in flight. An exactly-once
			// write's retry is answered from the server's memory if it was
			// applied; an idempotent call (OpenSession, CloseSession) may
			// simply run again.
			retry = true
		case errors.Is(mapped, ErrOverloaded):
			// Shed before anything ran: any kind may retry, after the
			// server's hint (retry.go: overloadPause).
			retry, overloaded = true, true
		case errors.Is(mapped, ErrUnavailable):
			// The server said no leader: nothing was applied. Another
			// server may know a leader.
			c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.rpcs)))
			retry = true
		case ctx.Err() != nil && last != nil:
			// The deadline hit while retrying: report why we retried.
			return &unavailableError{last: last, ctx: ctx.Err()}
		}
		if ctx.Err() != nil || errors.Is(mapped, ErrConnectionLoss) {
			// No verdict in time (a server cut off from the cluster, or a
			// connection whose bytes go nowhere, answers nothing) or the
			// request was lost: the next call tries another endpoint, so
			// a half-partitioned server cannot hold a client for longer
			// than one call's deadline (docs/RELIABILITY.md, partitions).
			c.cur.CompareAndSwap(int32(i), int32((i+1)%len(c.rpcs)))
		}
		if !retry {
			return mapped
		}
		if !c.budget.tryRetry() {
			return &budgetError{last: mapped}
		}
		last = mapped
		if overloaded {
			c.overload.retried.Add(1)
		}
		c.log.Debug("retrying", keyEndpoint, c.eps[i], keyAttempt, attempt, keyErr, mapped)
		if ctx.Err() != nil {
			return &unavailableError{last: last, ctx: ctx.Err()}
		}
		if overloaded {
			// Wait out the hint; do not hop endpoints (every node shares
			// the leader's load).
			t := time.NewTimer(overloadPause(mapped, pause))
			select {
			case <-ctx.Done():
				t.Stop()
				return &unavailableError{last: last, ctx: ctx.Err()}
			case <-t.C:
			}
			pause = min(2*pause, retryBackoffMax)
			continue
		}
		// Go round every endpoint once at once, then pause between rounds.
		if attempt%len(c.rpcs) == 0 {
			// Full jitter: clients that failed together do not retry
			// together (retry.go).
			t := time.NewTimer(fullJitter(pause))
			select {
			case <-ctx.Done():
				t.Stop()
				return &unavailableError{last: last, ctx: ctx.Err()}
			case <-t.C:
			}
			pause = min(2*pause, retryBackoffMax)
		}
	}
}

// verdict reports whether err is a server's answer (not a transport
// failure or the caller's deadline): what the throttle counts.
func verdict(err error, transport bool) bool {
	if transport {
		return false
	}
	switch status.Code(err) {
	case codes.OK, codes.DeadlineExceeded, codes.Canceled, codes.Unknown:
		return false
	}
	return true
}

// ready waits until endpoint i's connection is up, at most DialTimeout. A
// connection in transient failure is returned at once: the call on it
// fails fast with the dial error, which says why.
func (c *Client) ready(ctx context.Context, i int) error {
	cc := c.conns[i]
	state := cc.GetState()
	if state == connectivity.Ready || state == connectivity.TransientFailure {
		return nil
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	cc.Connect()
	for {
		switch state = cc.GetState(); state {
		case connectivity.Ready, connectivity.TransientFailure:
			return nil
		case connectivity.Shutdown:
			return ErrClosed
		}
		if !cc.WaitForStateChange(dctx, state) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &notConnectedError{addr: c.eps[i], state: state}
		}
	}
}
