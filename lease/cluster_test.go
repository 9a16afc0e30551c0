package lease

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// testConfig is the fast timing profile for real-network tests: generous
// enough for -race on a noisy 2-core machine.
func testConfig() Config {
	c := DefaultConfig()
	c.LeaseDuration = 600 * time.Millisecond
	c.MaxClockError = 10 * time.Millisecond
	c.RoundTimeout = 60 * time.Millisecond
	c.BackoffBase = 2 * time.Millisecond
	return c
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// cluster is n in-process members over real gRPC on 127.0.0.1. Every
// directed link i→j goes through its own proxy, so a member can be cut off.
type cluster struct {
	t       *testing.T
	ids     []NodeID
	lns     []net.Listener
	addrs   []string
	servers []*grpc.Server
	nodes   []*Node
	links   [][]*proxy // links[i][j]: i dials j through it
	clock   Clock
}

func newCluster(t *testing.T, n int, mod func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, clock: UncheckedClock(nil)}
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.ids = append(c.ids, NodeID(fmt.Sprint("m", i)))
		c.lns = append(c.lns, ln)
		c.addrs = append(c.addrs, ln.Addr().String())
	}
	c.links = make([][]*proxy, n)
	for i := range c.links {
		c.links[i] = make([]*proxy, n)
		for j := range c.links[i] {
			if i != j {
				c.links[i][j] = newProxy(t, c.addrs[j])
			}
		}
	}
	c.servers = make([]*grpc.Server, n)
	c.nodes = make([]*Node, n)
	for i := 0; i < n; i++ {
		c.start(i, mod)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
	})
	return c
}

func (c *cluster) config(i int, mod func(*Config)) Config {
	cfg := testConfig()
	cfg.ID, cfg.Group, cfg.Version = c.ids[i], "g", 1
	for j, id := range c.ids {
		addr := c.addrs[j]
		if j != i {
			addr = c.links[i][j].addr()
		}
		cfg.Members = append(cfg.Members, Member{ID: id, Addr: addr})
	}
	cfg.Clock = c.clock
	cfg.Logger = testLogger(c.t)
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

// start (re)starts member i on its address; it begins its restart wait.
func (c *cluster) start(i int, mod func(*Config)) {
	c.t.Helper()
	if c.lns[i] == nil {
		ln, err := net.Listen("tcp", c.addrs[i])
		if err != nil {
			c.t.Fatal(err)
		}
		c.lns[i] = ln
	}
	n, err := New(c.config(i, mod))
	if err != nil {
		c.t.Fatal(err)
	}
	s := grpc.NewServer()
	n.Register(s)
	go s.Serve(c.lns[i])
	c.nodes[i], c.servers[i] = n, s
}

// kill stops member i abruptly (no release): its leases simply expire.
func (c *cluster) kill(i int) {
	if c.nodes[i] == nil {
		return
	}
	c.servers[i].Stop()
	c.nodes[i].Close()
	c.nodes[i], c.servers[i], c.lns[i] = nil, nil, nil
}

// isolate cuts (or heals) every link to and from member i.
func (c *cluster) isolate(i int, cut bool) {
	for j := range c.links {
		if j != i {
			c.links[i][j].setBlocked(cut)
			c.links[j][i].setBlocked(cut)
		}
	}
}

// waitReady waits out the restart wait of every member.
func (c *cluster) waitReady() {
	var until time.Time
	for _, n := range c.nodes {
		if n != nil && n.RecoveringUntil().After(until) {
			until = n.RecoveringUntil()
		}
	}
	time.Sleep(time.Until(until) + 5*time.Millisecond)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
