package lease

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// benchGroup is one 3-member group on loopback gRPC (no proxies).
type benchGroup struct {
	nodes   []*Node
	servers []*grpc.Server
}

func newBenchGroup(b *testing.B, g int) *benchGroup {
	var lns []net.Listener
	var members []Member
	for i := 0; i < 3; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns = append(lns, ln)
		members = append(members, Member{ID: NodeID(fmt.Sprintf("g%d-m%d", g, i)), Addr: ln.Addr().String()})
	}
	clock := UncheckedClock(nil)
	bg := &benchGroup{}
	for i := 0; i < 3; i++ {
		cfg := DefaultConfig()
		cfg.LeaseDuration, cfg.MaxClockError, cfg.RoundTimeout = 2*time.Second, 10*time.Millisecond, 250*time.Millisecond
		cfg.ID, cfg.Group, cfg.Version, cfg.Members, cfg.Clock = members[i].ID, fmt.Sprint("bench-", g), 1, members, clock
		n, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		s := grpc.NewServer()
		n.Register(s)
		go s.Serve(lns[i])
		bg.nodes, bg.servers = append(bg.nodes, n), append(bg.servers, s)
	}
	return bg
}

func (bg *benchGroup) close() {
	for i := range bg.nodes {
		bg.servers[i].Stop()
		bg.nodes[i].Close()
	}
}

// BenchmarkGroups is the paper's experiment on one host: G independent
// groups of 3 members on loopback gRPC; every member holds leasesPerNode
// leases and a client per lease renews it back to back (each renewal is a
// full 2-phase round, as is the acquisition). Reported: aggregate lease
// operations (acquire + renew) per second, and p50/p99 operation latency.
func BenchmarkGroups(b *testing.B) {
	const leasesPerNode = 4
	for _, G := range []int{1, 3, 10, 30} {
		b.Run(fmt.Sprintf("G=%d", G), func(b *testing.B) {
			var groups []*benchGroup
			for g := 0; g < G; g++ {
				groups = append(groups, newBenchGroup(b, g))
			}
			defer func() {
				for _, g := range groups {
					g.close()
				}
			}()
			time.Sleep(time.Until(groups[G-1].nodes[2].RecoveringUntil()) + 10*time.Millisecond)
			ctx := context.Background()
			var leases []*Lease
			var lat []time.Duration
			var mu sync.Mutex
			for gi, g := range groups {
				for ni, n := range g.nodes {
					for k := 0; k < leasesPerNode; k++ {
						t0 := time.Now()
						l, err := n.Acquire(ctx, fmt.Sprintf("g%d/n%d/r%d", gi, ni, k))
						if err != nil {
							b.Fatal(err)
						}
						lat = append(lat, time.Since(t0))
						leases = append(leases, l)
					}
				}
			}
			var ops atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, l := range leases {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for ops.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if err := l.Renew(ctx); err != nil {
							failed.Add(1)
							continue
						}
						mine = append(mine, time.Since(t0))
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/el.Seconds(), "ops/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(failed.Load()), "failed")
			b.ReportMetric(0, "ns/op")
		})
	}
}
