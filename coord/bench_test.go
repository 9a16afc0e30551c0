package coord_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"coord/coord/coordtest"
	"coord/proto/coordpb"
)

// benchOps runs op from `clients` goroutines spread over the nodes' gRPC
// connections and reports ops/s and p50/p99 latency.
func benchOps(b *testing.B, c *coordtest.Cluster, clients int, op func(ctx context.Context, cl coordpb.CoordClient, i int64) error) {
	conns := make([]coordpb.CoordClient, len(c.Nodes()))
	for i := range conns {
		conns[i] = c.Conn(i)
	}
	ctx := context.Background()
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			cl := conns[w%len(conns)]
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := op(ctx, cl, i); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
}

func benchCluster(b *testing.B, n int) *coordtest.Cluster {
	c := coordtest.NewCluster(b, n, coordtest.Options{})
	return c
}

// BenchmarkGRPC_* measure create/set/get through the gRPC API on a 3-node
// loopback cluster with fsync, clients spread over all nodes.
func BenchmarkGRPC_Create(b *testing.B) {
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("nodes=3/clients=%d", clients), func(b *testing.B) {
			c := benchCluster(b, 3)
			benchOps(b, c, clients, func(ctx context.Context, cl coordpb.CoordClient, i int64) error {
				_, err := create(ctx, cl, fmt.Sprintf("/k%09d", i), make([]byte, 100))
				return err
			})
		})
	}
}

func BenchmarkGRPC_Set(b *testing.B) {
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("nodes=3/clients=%d", clients), func(b *testing.B) {
			c := benchCluster(b, 3)
			seed(b, c, 1000)
			benchOps(b, c, clients, func(ctx context.Context, cl coordpb.CoordClient, i int64) error {
				_, err := cl.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: fmt.Sprintf("/s%04d", i%1000), Data: make([]byte, 100), Version: -1}})
				return err
			})
		})
	}
}

func BenchmarkGRPC_Get(b *testing.B) {
	for _, mode := range []coordpb.Consistency{coordpb.Consistency_LINEARIZABLE, coordpb.Consistency_LOCAL} {
		for _, clients := range []int{1, 16, 128} {
			b.Run(fmt.Sprintf("nodes=3/%s/clients=%d", mode, clients), func(b *testing.B) {
				c := benchCluster(b, 3)
				seed(b, c, 1000)
				benchOps(b, c, clients, func(ctx context.Context, cl coordpb.CoordClient, i int64) error {
					_, err := cl.Get(ctx, &coordpb.GetRequest{Path: fmt.Sprintf("/s%04d", i%1000), Read: &coordpb.ReadOptions{Consistency: mode}})
					return err
				})
			})
		}
	}
}

func seed(b *testing.B, c *coordtest.Cluster, n int) {
	ctx := context.Background()
	cl := c.Conn(c.Leader())
	ops := make([]*coordpb.Op, 0, n)
	for i := 0; i < n; i++ {
		ops = append(ops, &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: fmt.Sprintf("/s%04d", i), Data: make([]byte, 100)}}})
	}
	resp, err := cl.Multi(ctx, &coordpb.MultiRequest{Ops: ops})
	if err != nil {
		b.Fatal(err)
	}
	c.WaitApplied(resp.Header.Zxid, 10*time.Second)
}
