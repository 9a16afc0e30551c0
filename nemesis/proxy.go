package nemesis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client is the source id of a connection that no coordd process owns
// (the harness's own clients).
const Client = -1

// Links is the fault state of the network between nodes: a cut link
// (from, to) holds every byte node from sends toward node to. Holding,
// not dropping, keeps TCP streams intact: when the link heals the bytes
// arrive late (a delay), unless Heal resets the connections (a drop).
type Links struct {
	mu    sync.Mutex
	cut   map[[2]int]bool
	conns map[*pipe]struct{}
	delay linkDelay
}

// linkDelay is a one-way latency applied to the links it matches.
type linkDelay struct {
	match        func(from, to int) bool
	base, jitter time.Duration
}

// NewLinks returns a network with every link up.
func NewLinks() *Links {
	return &Links{cut: make(map[[2]int]bool), conns: make(map[*pipe]struct{})}
}

// Cut holds traffic from -> to (one way).
func (l *Links) Cut(from, to int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut[[2]int{from, to}] = true
}

// SetDelay delays every byte sent on a matching link (from, to) by base
// plus a uniform draw in [-jitter, +jitter] (at least 0), drawn per chunk
// read from the socket. Bytes keep their order: a chunk is never
// delivered before the one read before it, so a jittered link delays
// streams as a real network with in-order TCP does. A nil match or a zero
// base and jitter removes the delay. Connections already open pick the
// change up with their next chunk.
func (l *Links) SetDelay(match func(from, to int) bool, base, jitter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if match == nil || (base <= 0 && jitter <= 0) {
		l.delay = linkDelay{}
		return
	}
	l.delay = linkDelay{match: match, base: base, jitter: jitter}
}

// delayOf draws the delay of one chunk on from -> to.
func (l *Links) delayOf(from, to int) time.Duration {
	l.mu.Lock()
	d := l.delay
	l.mu.Unlock()
	if d.match == nil || !d.match(from, to) {
		return 0
	}
	out := d.base
	if d.jitter > 0 {
		out += time.Duration(rand.Int64N(int64(2*d.jitter)+1)) - d.jitter
	}
	return max(out, 0)
}

// Blocked reports whether from -> to is cut.
func (l *Links) Blocked(from, to int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut[[2]int{from, to}]
}

// HealAll restores every link; with reset, connections that crossed a cut
// link are closed (their held bytes are lost) instead of flushed.
func (l *Links) HealAll(reset bool) {
	l.Heal(func(int, int) bool { return true }, reset)
}

// HealGroup restores every link to and from id.
func (l *Links) HealGroup(id int) {
	l.Heal(func(a, b int) bool { return a == id || b == id }, false)
}

// Heal restores the cut links (from, to) that match; with reset,
// connections that crossed one are closed instead of flushed.
func (l *Links) Heal(match func(from, to int) bool, reset bool) {
	l.mu.Lock()
	healed := make(map[[2]int]bool)
	for k := range l.cut {
		if match(k[0], k[1]) {
			healed[k] = true
		}
	}
	var victims []*pipe
	if reset {
		for p := range l.conns {
			if healed[[2]int{p.src, p.dst}] || healed[[2]int{p.dst, p.src}] {
				victims = append(victims, p)
			}
		}
	}
	l.mu.Unlock()
	// Close before lifting the cut, so no held byte slips through.
	for _, p := range victims {
		p.close()
	}
	l.mu.Lock()
	for k := range healed {
		delete(l.cut, k)
	}
	l.mu.Unlock()
}

// pipe is one proxied connection between node src (the dialer) and node
// dst (behind the proxy).
type pipe struct {
	src, dst int
	a, b     net.Conn
	once     sync.Once
	closed   atomic.Bool
}

func (p *pipe) close() {
	p.once.Do(func() { p.closed.Store(true); p.a.Close(); p.b.Close() })
}

// Proxy forwards one loopback address to a node's real address, holding
// bytes on cut links. It owns one accept goroutine and two copy goroutines
// per connection; Close stops them all.
type Proxy struct {
	ln     net.Listener
	dst    int
	target func() string
	links  *Links
	// owner names the node that dialed a connection (Client if none),
	// from its two ends: the dialer's address and the one it dialed.
	owner func(dialer, dialed net.Addr) int

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// NewProxy listens on a fresh loopback port for traffic to node dst.
func NewProxy(dst int, target func() string, links *Links, owner func(dialer, dialed net.Addr) int) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{ln: ln, dst: dst, target: target, links: links, owner: owner}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.serve(c) }()
	}
}

func (p *Proxy) serve(a net.Conn) {
	src := Client
	if p.owner != nil {
		src = p.owner(a.RemoteAddr(), a.LocalAddr())
	}
	b, err := net.DialTimeout("tcp", p.target(), 2*time.Second)
	if err != nil {
		a.Close()
		return
	}
	pp := &pipe{src: src, dst: p.dst, a: a, b: b}
	p.links.mu.Lock()
	p.links.conns[pp] = struct{}{}
	p.links.mu.Unlock()
	defer func() {
		p.links.mu.Lock()
		delete(p.links.conns, pp)
		p.links.mu.Unlock()
		pp.close()
	}()
	done := make(chan struct{}, 2)
	go func() { p.copy(pp, b, a, src, p.dst); done <- struct{}{} }()
	go func() { p.copy(pp, a, b, p.dst, src); done <- struct{}{} }()
	<-done
	pp.close()
	<-done
}

// chunk is what one Read returned, stamped with when.
type chunk struct {
	b  []byte
	at time.Time
}

// copy moves bytes read from r (sent by node from) to w (toward node to).
// While the link has no delay and is not cut, and nothing is queued, the
// reader writes each chunk itself (one goroutine hop, one buffer: the
// harness's own latency stays far below raft's 125 ms leader lease on a
// loaded machine). Otherwise the chunk is stamped and queued, and a
// deliverer goroutine writes it once its link delay has passed and while
// the link is not cut. Bytes keep their order: the reader writes directly
// only when no queued chunk is pending (pending counts chunks queued but
// not yet written). It returns when either side fails, closing the pipe,
// after the deliverer has ended.
func (p *Proxy) copy(pp *pipe, w io.Writer, r io.Reader, from, to int) {
	ch := make(chan chunk, 256)
	var pending atomic.Int64
	deliverDone := make(chan struct{})
	go func() {
		defer close(deliverDone)
		var last time.Time // delivery time of the previous chunk
	deliver:
		for c := range ch {
			if d := p.links.delayOf(from, to); d > 0 {
				due := c.at.Add(d)
				if due.Before(last) {
					due = last
				}
				last = due
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
			}
			for p.links.Blocked(from, to) {
				if p.isClosed() || pp.closed.Load() {
					pp.close()
					pending.Add(-1)
					continue deliver
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, werr := w.Write(c.b); werr != nil {
				pp.close()
			}
			pending.Add(-1)
		}
	}()
	defer func() {
		close(ch)
		pp.close()
		<-deliverDone
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if pending.Load() == 0 && !p.links.Blocked(from, to) && p.links.delayOf(from, to) == 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
			} else {
				b := make([]byte, n)
				copy(b, buf[:n])
				pending.Add(1)
				ch <- chunk{b: b, at: time.Now()}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.links.mu.Lock()
	var victims []*pipe
	for c := range p.links.conns {
		if c.dst == p.dst {
			victims = append(victims, c)
		}
	}
	p.links.mu.Unlock()
	for _, c := range victims {
		c.close()
	}
	p.wg.Wait()
}

// errNoOwner: no listed process owns the socket.
var errNoOwner = errors.New("no process owns the socket")

// errSocketClosed: the dialer closed the connection before it was looked
// up (seen in TIME_WAIT); nothing flows on it, so it needs no link rules.
var errSocketClosed = errors.New("the dialer already closed the connection")

// socketOwner finds which of pids owns the dialing side of a TCP
// connection (local address dialer, remote address dialed: the two ends as
// the proxy's accepted socket sees them swapped), by reading
// /proc/net/tcp and each pid's fd table. Linux only; that is how the
// proxy tells peers apart when every node dials the same address.
func socketOwner(dialer, dialed net.Addr, pids map[int]int) (int, error) {
	local, err := procAddr(dialer)
	if err != nil {
		return Client, fmt.Errorf("socket owner: %w", err)
	}
	remote, err := procAddr(dialed)
	if err != nil {
		return Client, fmt.Errorf("socket owner: %w", err)
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return Client, fmt.Errorf("socket owner: %w", err)
	}
	defer f.Close()
	// Both ends must match: loopback reuses a dialer's port for
	// connections to other destinations, and matching the local address
	// alone found the harness's own socket on the same port (a peer link
	// taken for a client's, so the cuts missed it: TestPartitionShapes in
	// CI, "held by nemesis.test"). The 4-tuple can still name an older,
	// closed connection in TIME_WAIT (inode 0): a live socket wins over
	// it, whichever /proc lists first.
	inode, state := findSocket(f, local, remote)
	if inode == "" {
		return Client, fmt.Errorf("socket owner of %v -> %v: not in /proc/net/tcp: %w", dialer, dialed, errNoOwner)
	}
	if inode == "0" {
		// Already closed by the dialer (state 06 TIME_WAIT, 07 CLOSE):
		// nothing will flow on it.
		return Client, fmt.Errorf("socket owner of %v -> %v: no inode, tcp state %s: %w", dialer, dialed, state, errSocketClosed)
	}
	link := "socket:[" + inode + "]"
	if len(pids) == 0 {
		return Client, fmt.Errorf("socket owner of %v (%s): no node process listed: %w", dialer, link, errNoOwner)
	}
	for pid, node := range pids {
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == link {
				return node, nil
			}
		}
	}
	return Client, fmt.Errorf("socket owner of %v (%s): %s: %w", dialer, link, holder(link), errNoOwner)
}

// findSocket returns the inode and tcp state of the /proc/net/tcp row
// whose local and remote addresses are local and remote ("" if none): a
// live socket's (inode not 0) over a closed one's in TIME_WAIT.
func findSocket(r io.Reader, local, remote string) (inode, state string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == local && fs[2] == remote {
			inode, state = fs[9], fs[3]
			if inode != "0" {
				break
			}
		}
	}
	return inode, state
}

// procAddr is a TCP/IPv4 address as /proc/net/tcp writes it: the IP's
// bytes reversed, then the port, in hex.
func procAddr(a net.Addr) (string, error) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.To4() == nil {
		return "", fmt.Errorf("%v: not a TCP/IPv4 address", a)
	}
	ip := ta.IP.To4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port), nil
}

// holder names the processes holding the socket link (diagnostics for a
// connection no node owns), or "held by no process".
func holder(link string) string {
	procs, _ := os.ReadDir("/proc")
	var out []string
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		dir := "/proc/" + p.Name() + "/fd"
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == link {
				comm, _ := os.ReadFile("/proc/" + p.Name() + "/comm")
				out = append(out, p.Name()+" "+strings.TrimSpace(string(comm)))
				break
			}
		}
	}
	if len(out) == 0 {
		return "held by no process"
	}
	return "held by " + strings.Join(out, ", ")
}
