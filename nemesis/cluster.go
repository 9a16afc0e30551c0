package nemesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"coord/client"
)

// Timing of the clusters the harness runs: short, so that a schedule of a
// few seconds sees several elections and session expiries. (A heartbeat
// timeout of half the election timeout, 125 ms, deposed healthy leaders
// on this loaded 2-core machine; the partition runs use their own, longer
// timing: PartitionConfig.)
const (
	HeartbeatTimeout = 250 * time.Millisecond
	ElectionTimeout  = 250 * time.Millisecond
	LeaderLease      = 125 * time.Millisecond
	SessionTimeout   = 1 * time.Second
)

// ClusterConfig describes a cluster of coordd processes.
type ClusterConfig struct {
	// Coordd is the path of the coordd binary.
	Coordd string
	// Nodes is the cluster size (3 or 5).
	Nodes int
	// Dir holds each node's data directory and log.
	Dir string
	// UnsafeLocalReads starts every node with the deliberately broken
	// --unsafe-local-reads (the teeth check).
	UnsafeLocalReads bool
	// Args are extra coordd flags for every node (the overload harness:
	// --no-admission).
	Args []string
	// ClientGroups is how many independent client proxy sets to make;
	// group g's clients reach node i through ClientAddr(g, i), so the
	// schedule can cut one group off (a paused or partitioned client).
	ClientGroups int
	// Metrics serves each node's /metrics on a loopback port (Node.HTTP).
	Metrics bool
	// Election, Heartbeat and Lease override the harness's short raft
	// timing (ElectionTimeout, HeartbeatTimeout, LeaderLease) when set.
	Election, Heartbeat, Lease time.Duration
	// DirectPeers: nodes advertise their real addresses, so peer traffic
	// bypasses the proxies (no link faults or delays; for load runs whose
	// harness process is too busy to proxy raft in time).
	DirectPeers bool
	// NonVoters: the last NonVoters of the Nodes start empty (--join) and
	// are added as non-voting replicas once the voters have a leader.
	NonVoters int
}

// Node is one coordd process and the proxies in front of it.
type Node struct {
	Name   string
	Listen string // real address
	Peer   *Proxy // advertised to peers
	HTTP   string // /metrics address ("" unless ClusterConfig.Metrics)
	data   string
	log    *os.File

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	paused  bool
	running bool
}

// Cluster is N coordd processes on loopback, every peer link and every
// client link through a Proxy, with the faults the schedule applies.
type Cluster struct {
	cfg ClusterConfig
	// nodesMu guards Nodes while StartCluster builds it (the proxies,
	// already accepting, look owners up in it); fixed afterwards.
	nodesMu sync.Mutex
	Nodes   []*Node
	Links   *Links
	clients [][]*Proxy // [group][node]
	// Peer connections whose dialer was not found at the first look,
	// and those never found (counted as clients).
	ownerRetried, ownerFailed atomic.Int64
	// Connections already closed by their dialer when looked up (no
	// traffic: harmless, not counted as failed).
	ownerClosed atomic.Int64
	ownerMu     sync.Mutex
	ownerMisses []string // the first few lookups that failed
}

// OwnerMisses describes the first few connections whose dialing node was
// never found (counted as clients: cuts and delays did not apply).
func (c *Cluster) OwnerMisses() []string {
	c.ownerMu.Lock()
	defer c.ownerMu.Unlock()
	return slices.Clone(c.ownerMisses)
}

// OwnerLookups reports how many accepted connections needed a second
// look to find their dialing node, and how many were never found.
func (c *Cluster) OwnerLookups() (retried, failed int64) {
	return c.ownerRetried.Load(), c.ownerFailed.Load()
}

// OwnerClosed reports how many accepted connections had been closed by
// their dialer before the lookup (no traffic flowed on them).
func (c *Cluster) OwnerClosed() int64 { return c.ownerClosed.Load() }

// ClientID is the Links id of client group g.
func ClientID(g int) int { return 100 + g }

// StartCluster starts the processes and waits until a leader accepts a
// write.
func StartCluster(ctx context.Context, cfg ClusterConfig) (*Cluster, error) {
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("cluster: %d nodes", cfg.Nodes)
	}
	c := &Cluster{cfg: cfg, Links: NewLinks()}
	owner := func(dialer, dialed net.Addr) int {
		// /proc/net/tcp is not read atomically: a socket created while
		// it is read can be missed, so look again before calling the
		// dialer a client (a peer link taken for a client link would
		// escape the cuts and delays).
		for try := 0; ; try++ {
			n, err := socketOwner(dialer, dialed, c.pids())
			if err == nil {
				return n
			}
			if try == 0 {
				c.ownerRetried.Add(1)
			}
			if try == 20 && errors.Is(err, errSocketClosed) {
				// Closed by its dialer before we looked (and still only
				// that after 40 ms): no traffic will flow on it.
				c.ownerClosed.Add(1)
				return Client
			}
			if try == 20 {
				c.ownerFailed.Add(1)
				c.ownerMu.Lock()
				if len(c.ownerMisses) < 5 {
					c.ownerMisses = append(c.ownerMisses, err.Error())
				}
				c.ownerMu.Unlock()
				return Client
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	var peers []string
	// freePort closes its listener, so the kernel may hand the same port
	// out again: a cluster got one port for two nodes ("endpoint listed
	// twice", seen once in 30 failover runs).
	taken := map[string]bool{}
	uniquePort := func() (string, error) {
		for range 20 {
			p, err := freePort()
			if err != nil || !taken[p] {
				taken[p] = true
				return p, err
			}
		}
		return "", errors.New("free port: only ports already taken came back")
	}
	for i := 0; i < cfg.Nodes; i++ {
		port, err := uniquePort()
		if err != nil {
			c.Close()
			return nil, err
		}
		n := &Node{Name: fmt.Sprintf("n%d", i+1), Listen: port, data: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1))}
		if cfg.Metrics {
			if n.HTTP, err = uniquePort(); err != nil {
				c.Close()
				return nil, err
			}
		}
		listen := n.Listen
		n.Peer, err = NewProxy(i, func() string { return listen }, c.Links, owner)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.nodesMu.Lock()
		c.Nodes = append(c.Nodes, n)
		c.nodesMu.Unlock()
		peers = append(peers, n.Name+"="+c.advertise(n))
	}
	for g := 0; g < cfg.ClientGroups; g++ {
		var row []*Proxy
		for i, n := range c.Nodes {
			listen, id := n.Listen, ClientID(g)
			p, err := NewProxy(i, func() string { return listen }, c.Links, func(_, _ net.Addr) int { return id })
			if err != nil {
				c.Close()
				return nil, err
			}
			row = append(row, p)
		}
		c.clients = append(c.clients, row)
	}
	voters := cfg.Nodes - cfg.NonVoters
	if voters < 1 {
		c.Close()
		return nil, fmt.Errorf("cluster: %d nodes with %d non-voters", cfg.Nodes, cfg.NonVoters)
	}
	for i := range c.Nodes {
		p := strings.Join(peers[:voters], ",")
		if i >= voters {
			p = "" // --join
		}
		if err := c.start(i, p); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitWritable(ctx, 20*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.addNonVoters(ctx, voters); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *Cluster) pids() map[int]int {
	c.nodesMu.Lock()
	nodes := c.Nodes
	c.nodesMu.Unlock()
	out := make(map[int]int, len(nodes))
	for i, n := range nodes {
		n.mu.Lock()
		if n.cmd != nil && n.cmd.Process != nil && n.running {
			out[n.cmd.Process.Pid] = i
		}
		n.mu.Unlock()
	}
	return out
}

func (c *Cluster) start(i int, peers string) error {
	n := c.Nodes[i]
	if err := os.MkdirAll(n.data, 0o755); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	args := []string{
		"--name", n.Name, "--data-dir", n.data, "--listen", n.Listen,
		"--advertise", c.advertise(n), "--http", n.HTTP,
		"--heartbeat-timeout", orDefault(c.cfg.Heartbeat, HeartbeatTimeout).String(),
		"--election-timeout", orDefault(c.cfg.Election, ElectionTimeout).String(),
		"--leader-lease", orDefault(c.cfg.Lease, LeaderLease).String(),
		"--session-min-timeout", "500ms",
		"--log-level", "warn",
	}
	if peers != "" {
		args = append(args, "--initial-cluster", peers)
	} else if i >= c.cfg.Nodes-c.cfg.NonVoters {
		args = append(args, "--join")
	}
	if c.cfg.UnsafeLocalReads {
		args = append(args, "--unsafe-local-reads")
	}
	args = append(args, c.cfg.Args...)
	if n.log == nil {
		f, err := os.OpenFile(filepath.Join(c.cfg.Dir, n.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("node %s log: %w", n.Name, err)
		}
		n.log = f
	}
	cmd := exec.Command(c.cfg.Coordd, args...)
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	// A node never outlives the harness, even if the harness is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.running, n.paused = cmd, exited, true, false
	n.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		n.mu.Lock()
		if n.cmd == cmd {
			n.running = false
		}
		n.mu.Unlock()
		close(exited)
	}()
	return nil
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) {
	n := c.Nodes[i]
	n.mu.Lock()
	cmd, exited, running := n.cmd, n.exited, n.running
	n.mu.Unlock()
	if cmd == nil || !running {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// advertise is the address node n's peers dial.
func (c *Cluster) advertise(n *Node) string {
	if c.cfg.DirectPeers {
		return n.Listen
	}
	return n.Peer.Addr()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// addNonVoters adds nodes voters.. as non-voting replicas.
func (c *Cluster) addNonVoters(ctx context.Context, voters int) error {
	if voters == len(c.Nodes) {
		return nil
	}
	cl, err := client.New(ctx, client.Config{Endpoints: c.Direct()[:voters], DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return err
	}
	defer cl.Close(context.Background())
	for _, n := range c.Nodes[voters:] {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := cl.AddMember(actx, n.Name, c.advertise(n), true)
		cancel()
		if err != nil {
			return fmt.Errorf("add non-voter %s: %w", n.Name, err)
		}
	}
	return nil
}

// Restart starts a killed node again on its data (the bootstrap config
// is already in its log, so no --initial-cluster is needed; passing it
// again is harmless and keeps one code path).
func (c *Cluster) Restart(i int) error {
	n := c.Nodes[i]
	n.mu.Lock()
	running := n.running
	n.mu.Unlock()
	if running {
		return nil
	}
	var peers []string
	for _, m := range c.Nodes {
		peers = append(peers, m.Name+"="+c.advertise(m))
	}
	return c.start(i, strings.Join(peers, ","))
}

// Pause sends SIGSTOP (pause) or SIGCONT (!pause) to node i.
func (c *Cluster) Pause(i int, pause bool) {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || !n.running || n.paused == pause {
		return
	}
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if n.cmd.Process.Signal(sig) == nil {
		n.paused = pause
	}
}

// ClientAddrs lists group g's proxy addresses, starting with node first.
func (c *Cluster) ClientAddrs(g, first int) []string {
	var out []string
	for k := range c.Nodes {
		out = append(out, c.clients[g][(first+k)%len(c.Nodes)].Addr())
	}
	return out
}

// Direct lists the nodes' real addresses (for checks that must bypass
// the faults).
func (c *Cluster) Direct() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Listen)
	}
	return out
}

// Leader returns the index of the node that says it leads, or -1.
func (c *Cluster) Leader(ctx context.Context) int {
	for i, n := range c.Nodes {
		cl, err := client.New(ctx, client.Config{Endpoints: []string{n.Listen}, DialTimeout: 200 * time.Millisecond})
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		st, err := cl.Status(cctx)
		cancel()
		_ = cl.Close(ctx)
		if err == nil && st.State == "Leader" {
			return i
		}
	}
	return -1
}

// HealAll resumes paused nodes, restarts killed ones and restores the
// links between nodes and to the register clients (client groups that
// cut themselves off heal themselves).
func (c *Cluster) HealAll() error {
	c.Links.Heal(shared, false)
	var errs []error
	for i := range c.Nodes {
		c.Pause(i, false)
		if err := c.Restart(i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WaitWritable waits until a write through the direct addresses
// succeeds, and returns how long that took.
func (c *Cluster) WaitWritable(ctx context.Context, limit time.Duration) error {
	_, err := c.TimeToWrite(ctx, limit)
	return err
}

// TimeToWrite measures how long until a write succeeds.
func (c *Cluster) TimeToWrite(ctx context.Context, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	cl, err := client.New(ctx, client.Config{Endpoints: c.Direct(), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return 0, err
	}
	defer cl.Close(context.Background())
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		_, err := cl.Set(ctx, "/nemesis-probe", nil, -1)
		if errors.Is(err, client.ErrNoNode) {
			if _, _, err = cl.Create(ctx, "/nemesis-probe", nil, nil); errors.Is(err, client.ErrNodeExists) {
				err = nil
			}
		}
		if err == nil {
			return time.Since(start), nil
		}
		if ctx.Err() != nil {
			return time.Since(start), fmt.Errorf("cluster not writable after %v: %w", limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close kills every process and stops the proxies.
func (c *Cluster) Close() {
	for i := range c.Nodes {
		c.Pause(i, false)
		c.Kill(i)
	}
	for _, n := range c.Nodes {
		if n.Peer != nil {
			n.Peer.Close()
		}
		if n.log != nil {
			n.log.Close()
		}
	}
	for _, row := range c.clients {
		for _, p := range row {
			p.Close()
		}
	}
}

// Logs returns the tail of every node's log (for failure reports).
func (c *Cluster) Logs(max int) string {
	var b strings.Builder
	for _, n := range c.Nodes {
		f, err := os.Open(filepath.Join(c.cfg.Dir, n.Name+".log"))
		if err != nil {
			continue
		}
		data, _ := io.ReadAll(f)
		f.Close()
		if len(data) > max {
			data = data[len(data)-max:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", n.Name, data)
	}
	return b.String()
}
