package replica

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftMagic opens every raft connection. Anything else on the node's one
// address (in practice an HTTP/2 preface from a gRPC client) goes to gRPC.
var raftMagic = []byte("CRAFT1\n")

// sniffTimeout bounds how long a new connection may stay silent before the
// mux decides what it is; a silent peer cannot hold up the accept loop,
// because sniffing runs on the connection's own goroutine.
const sniffTimeout = 10 * time.Second

// Mux splits one listener into a raft stream listener and a gRPC listener.
// Serve runs its accept loop; Close stops it and both child listeners.
type Mux struct {
	ln   net.Listener
	grpc *chanListener
	raft *chanListener
	// RaftCheck, when set (before Serve), vets each raft connection after
	// its first bytes (so after a TLS handshake on a TLS listener); a
	// connection it rejects is closed. coord sets it to the peer
	// allow-list check.
	RaftCheck func(net.Conn) error
	// OnReject, when set, hears about each rejected raft connection.
	OnReject func(net.Conn, error)
}

// NewMux wraps ln. Call Serve to start accepting.
func NewMux(ln net.Listener) *Mux {
	return &Mux{
		ln:   ln,
		grpc: newChanListener(ln.Addr()),
		raft: newTrackingListener(ln.Addr()),
	}
}

// GRPC is the listener to pass to grpc.Server.Serve.
func (m *Mux) GRPC() net.Listener { return m.grpc }

// Serve accepts connections until the listener is closed.
func (m *Mux) Serve() error {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.grpc.closeWith(err)
			m.raft.closeWith(err)
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go m.route(c)
	}
}

// Close closes the underlying listener, which ends Serve.
func (m *Mux) Close() error { return m.ln.Close() }

func (m *Mux) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 4096)
	head, err := br.Peek(len(raftMagic))
	_ = c.SetReadDeadline(time.Time{})
	if err == nil && string(head) == string(raftMagic) {
		_, _ = br.Discard(len(raftMagic))
		if m.RaftCheck != nil {
			if err := m.RaftCheck(c); err != nil {
				if m.OnReject != nil {
					m.OnReject(c, err)
				}
				c.Close()
				return
			}
		}
		m.raft.deliver(&bufferedConn{Conn: c, r: br})
		return
	}
	if err != nil && len(head) == 0 {
		c.Close()
		return
	}
	m.grpc.deliver(&bufferedConn{Conn: c, r: br})
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// NetConn is the wrapped connection (a *tls.Conn on a TLS listener), so
// the gRPC side can find the TLS state.
func (b *bufferedConn) NetConn() net.Conn { return b.Conn }

// chanListener is a net.Listener fed by the mux.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
	err  error
	// conns, when non-nil, tracks the delivered connections still open;
	// closing the listener closes them. raft's NetworkTransport never
	// closes the inbound connections it serves, so without this each
	// stopped replica leaks their goroutines (and through them itself)
	// until the peer's side goes away.
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func newTrackingListener(addr net.Addr) *chanListener {
	l := newChanListener(addr)
	l.conns = map[*trackedConn]struct{}{}
	return l
}

// trackedConn leaves its listener's set when closed.
type trackedConn struct {
	net.Conn
	l    *chanListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.mu.Lock(); delete(c.l.conns, c); c.l.mu.Unlock() })
	return c.Conn.Close()
}

func (l *chanListener) deliver(c net.Conn) {
	if l.conns != nil {
		tc := &trackedConn{Conn: c, l: l}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			c.Close()
			return
		default:
		}
		l.conns[tc] = struct{}{}
		l.mu.Unlock()
		c = tc
	}
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) closeWith(err error) {
	l.once.Do(func() { l.err = err; close(l.done) })
	if l.conns != nil {
		l.mu.Lock()
		open := make([]*trackedConn, 0, len(l.conns))
		for c := range l.conns {
			open = append(open, c)
		}
		l.mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	}
}

func (l *chanListener) Close() error   { l.closeWith(net.ErrClosed); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// streamLayer is the raft.StreamLayer over the mux: it accepts the raft
// side of the node's address and dials peers with the magic prefix.
type streamLayer struct {
	*chanListener
	tls *tls.Config // nil: plaintext
	// advertise, when set, is the address raft tells peers (a proxy's).
	advertise net.Addr
}

// tcpAddr is an address as configured (a proxy's may differ from the
// listener's).
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }

func (s streamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.chanListener.Addr()
}

var _ raft.StreamLayer = streamLayer{}

func (s streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if s.tls != nil {
		tc := tls.Client(c, s.tls)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("raft tls handshake with %s: %w", addr, err)
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(raftMagic); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft handshake with %s: %w", addr, err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
}
