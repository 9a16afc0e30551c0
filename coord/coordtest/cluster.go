// Package coordtest runs in-process coord clusters over real loopback TCP
// for tests: each node is a full coord.Server with its own data directory,
// its own listener and raft over the node's one address. It is imported
// only from _test.go files.
package coordtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"coord/coord"
	"coord/coord/replica"
	"coord/proto/coordpb"
)

// Cluster is an N-node coord cluster on 127.0.0.1.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*Node
}

// Node is one member. Server is nil while the node is stopped.
type Node struct {
	Name    string
	Addr    string
	DataDir string
	Server  *coord.Server
	cfg     coord.Config
}

// Options tune a test cluster.
type Options struct {
	// Configure, when set, edits each node's config before start.
	Configure func(*coord.Config)
	// Logs sends node logs to t.Log (noisy; off by default).
	Logs bool
}

// NewCluster starts n nodes and waits for a leader. Everything is stopped
// by t.Cleanup.
func NewCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	base := t.TempDir()
	var peers []replica.Peer
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		lns = append(lns, ln)
		name := fmt.Sprintf("n%d", i+1)
		peers = append(peers, replica.Peer{Name: name, Address: ln.Addr().String()})
	}
	for i := 0; i < n; i++ {
		cfg := coord.DefaultConfig()
		cfg.Name = peers[i].Name
		cfg.DataDir = filepath.Join(base, cfg.Name)
		cfg.HTTP = ""
		cfg.InitialCluster = peers
		cfg.HeartbeatTimeout = 500 * time.Millisecond
		cfg.ElectionTimeout = 500 * time.Millisecond
		cfg.LeaderLease = 250 * time.Millisecond
		if opts.Logs {
			cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
		if opts.Configure != nil {
			opts.Configure(&cfg)
		}
		node := &Node{Name: cfg.Name, Addr: peers[i].Address, DataDir: cfg.DataDir, cfg: cfg}
		c.nodes = append(c.nodes, node)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range c.nodes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			srv, err := coord.Start(c.nodes[i].cfg, lns[i])
			errs[i] = err
			c.nodes[i].Server = srv
		}(i)
	}
	wg.Wait()
	t.Cleanup(c.Close)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %s: %v", c.nodes[i].Name, err)
		}
	}
	c.WaitLeader(10 * time.Second)
	return c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// Nodes returns the members.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns member i.
func (c *Cluster) Node(i int) *Node { return c.nodes[i] }

// Addrs lists every member's address.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Addr)
	}
	return out
}

// WaitLeader waits until a running node leads and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for i, n := range c.nodes {
			if n.Server != nil && n.Server.Replica().IsLeader() {
				c.mu.Unlock()
				return i
			}
		}
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader within %v", timeout)
	return -1
}

// Leader returns the current leader's index (waiting for one).
func (c *Cluster) Leader() int { return c.WaitLeader(10 * time.Second) }

// Follower returns the index of some running non-leader.
func (c *Cluster) Follower() int {
	l := c.Leader()
	for i, n := range c.nodes {
		if i != l && n.Server != nil {
			return i
		}
	}
	c.t.Fatal("no running follower")
	return -1
}

// Stop closes node i (its data stays).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	srv := c.nodes[i].Server
	c.nodes[i].Server = nil
	c.mu.Unlock()
	if srv != nil {
		if err := srv.Close(); err != nil {
			c.t.Logf("stop %s: %v", c.nodes[i].Name, err)
		}
	}
}

// Restart starts a stopped node i again on its address and data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	n := c.nodes[i]
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", n.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("restart %s: listen: %v", n.Name, err)
	}
	srv, err := coord.Start(n.cfg, ln)
	if err != nil {
		c.t.Fatalf("restart %s: %v", n.Name, err)
	}
	c.mu.Lock()
	n.Server = srv
	c.mu.Unlock()
}

// Close stops every node.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// Conn dials node i's gRPC API; closed by t.Cleanup.
func (c *Cluster) Conn(i int) coordpb.CoordClient {
	c.t.Helper()
	cc, err := grpc.NewClient(c.nodes[i].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.t.Fatalf("dial %s: %v", c.nodes[i].Name, err)
	}
	c.t.Cleanup(func() { cc.Close() })
	return coordpb.NewCoordClient(cc)
}

// Ctx returns a context bounded by d, cancelled at cleanup.
func Ctx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitApplied waits until every running node has applied index.
func (c *Cluster) WaitApplied(index uint64, timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, n := range c.nodes {
		if n.Server == nil {
			continue
		}
		if err := n.Server.Replica().WaitApplied(ctx, index); err != nil {
			c.t.Fatalf("%s did not apply %d: %v", n.Name, index, err)
		}
	}
}

// RemoveData deletes node i's data dir (it must be stopped).
func (c *Cluster) RemoveData(i int) error { return os.RemoveAll(c.nodes[i].DataDir) }

// StartJoiner starts a node that joins an existing cluster (it waits to be
// added with AddMember); it is stopped by t.Cleanup.
func StartJoiner(t testing.TB, name string) *coord.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := coord.DefaultConfig()
	cfg.Name = name
	cfg.DataDir = filepath.Join(t.TempDir(), name)
	cfg.HTTP = ""
	cfg.Join = true
	cfg.HeartbeatTimeout = 500 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.LeaderLease = 250 * time.Millisecond
	srv, err := coord.Start(cfg, ln)
	if err != nil {
		t.Fatalf("start joiner %s: %v", name, err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}
