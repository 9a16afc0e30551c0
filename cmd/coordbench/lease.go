package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"

	"coord/lease"
)

// leaseGroup is one in-process Flease group of three members on loopback
// gRPC, for the lease workload: Flease needs no coord cluster, so the
// workload measures the lease library on its own, side by side with coord
// locks in the same run.
type leaseGroup struct {
	nodes   []*lease.Node
	servers []*grpc.Server
}

func startLeaseGroup() (*leaseGroup, error) {
	var lns []net.Listener
	var members []lease.Member
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
		members = append(members, lease.Member{ID: lease.NodeID(fmt.Sprintf("m%d", i+1)), Addr: ln.Addr().String()})
	}
	g := &leaseGroup{}
	for i := 0; i < 3; i++ {
		cfg := lease.DefaultConfig()
		// lease/bench_test.go's timing: a new member sits out one lease
		// duration, so keep it short.
		cfg.LeaseDuration, cfg.MaxClockError, cfg.RoundTimeout = 2*time.Second, 10*time.Millisecond, 250*time.Millisecond
		// Loopback and one host: the clocks are the same clock.
		cfg.ID, cfg.Group, cfg.Version, cfg.Members, cfg.Clock = members[i].ID, "coordbench", 1, members, lease.UncheckedClock(nil)
		n, err := lease.New(cfg)
		if err != nil {
			g.close()
			return nil, err
		}
		s := grpc.NewServer()
		n.Register(s)
		go s.Serve(lns[i])
		g.nodes, g.servers = append(g.nodes, n), append(g.servers, s)
	}
	// A new member waits out one lease duration before it takes part
	// (it may have forgotten promises made before a restart).
	time.Sleep(time.Until(g.nodes[2].RecoveringUntil()) + 10*time.Millisecond)
	return g, nil
}

func (g *leaseGroup) close() {
	for i := range g.nodes {
		g.servers[i].Stop()
		g.nodes[i].Close()
	}
}

// leaseOp: worker w holds resource r<w> from member w%3 and renews it back
// to back; each renewal is a full Flease round (prepare and accept on a
// majority).
func (g *leaseGroup) leaseOp(ctx context.Context, w int) (op, func(), error) {
	l, err := g.nodes[w%3].Acquire(ctx, fmt.Sprintf("r%d", w))
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, i int64) error { return l.Renew(ctx) },
		func() { _ = l.Release(context.Background()) }, nil
}
