package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"coord/client"
)

// QuorumConfig configures a stability run of a larger cluster under
// jittered link delay: no faults, only latency, and the question is
// whether the leader stays put.
type QuorumConfig struct {
	Coordd string
	Dir    string
	// Voters (5 or 7) and NonVoters (non-voting replicas added after
	// the voters elect a leader; they serve local reads).
	Voters, NonVoters int
	// Delay ± Jitter is every peer link's one-way delay (default 20 ms ±
	// 10 ms); client links are not delayed.
	Delay, Jitter time.Duration
	// Duration is the measured window (default 1 min).
	Duration time.Duration
	// Election, Heartbeat and Lease override the harness's raft timing
	// (ClusterConfig) when set.
	Election, Heartbeat, Lease time.Duration
	Log                        func(format string, args ...any)
}

// QuorumResult is what a stability run measured.
type QuorumResult struct {
	Voters, NonVoters int
	Delay, Jitter     time.Duration
	Duration          time.Duration
	// Elections (terms started) and LeaderChanges in the window, and
	// elections per minute.
	Elections, LeaderChanges int
	ElectionsPerMin          float64
	// Writes completed by one sequential writer, their latency p50/p99,
	// and the longest time without one.
	Writes             int
	WriteP50, WriteP99 time.Duration
	MaxWriteGap        time.Duration
	// LocalReads served by each node (voters first, then non-voters) to
	// one sequential local reader per node; NonVoterReadsOK is false if a
	// non-voter served none.
	LocalReads      []int
	NonVoterReadsOK bool
}

func (r QuorumResult) String() string {
	return fmt.Sprintf("%d voters + %d non-voters, peer delay %v ± %v, %v: elections %d (%.2f/min), leader changes %d; %d writes p50 %v p99 %v, longest gap %v; local reads per node %v",
		r.Voters, r.NonVoters, r.Delay, r.Jitter, r.Duration.Round(time.Second), r.Elections, r.ElectionsPerMin, r.LeaderChanges,
		r.Writes, r.WriteP50.Round(100*time.Microsecond), r.WriteP99.Round(100*time.Microsecond), r.MaxWriteGap.Round(time.Millisecond), r.LocalReads)
}

// peerLink matches links between two nodes (not client groups).
func peerLink(from, to int) bool { return from >= 0 && to >= 0 && from < 100 && to < 100 }

// RunQuorum starts the cluster, delays every peer link, and measures
// elections, write latency and local reads for Duration.
func RunQuorum(ctx context.Context, cfg QuorumConfig) (QuorumResult, error) {
	if cfg.Delay == 0 && cfg.Jitter == 0 {
		cfg.Delay, cfg.Jitter = 20*time.Millisecond, 10*time.Millisecond
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Minute
	}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	res := QuorumResult{Voters: cfg.Voters, NonVoters: cfg.NonVoters, Delay: cfg.Delay, Jitter: cfg.Jitter}
	n := cfg.Voters + cfg.NonVoters
	cl, err := StartCluster(ctx, ClusterConfig{Coordd: cfg.Coordd, Nodes: n, NonVoters: cfg.NonVoters, Dir: cfg.Dir,
		Election: cfg.Election, Heartbeat: cfg.Heartbeat, Lease: cfg.Lease})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	cl.Links.SetDelay(peerLink, cfg.Delay, cfg.Jitter)
	// Let the delayed links settle (open connections pick the delay up
	// with their next chunk) before measuring.
	if err := cl.WaitWritable(ctx, 20*time.Second); err != nil {
		return res, err
	}
	admin, err := client.New(ctx, client.Config{Endpoints: cl.Direct(), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer admin.Close(context.Background())
	if _, _, err := admin.Create(ctx, "/quorum", nil, nil); err != nil && !errors.Is(err, client.ErrNodeExists) {
		return res, err
	}

	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	terms, termsDone := watchTerms(workCtx, cl.Direct(), 100*time.Millisecond)
	var wg sync.WaitGroup
	var lat []time.Duration
	var oks []time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := client.New(workCtx, client.Config{Endpoints: cl.Direct()[:cfg.Voters], DialTimeout: 300 * time.Millisecond})
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		for workCtx.Err() == nil {
			octx, cancel := context.WithTimeout(workCtx, 2*time.Second)
			t0 := time.Now()
			_, err := c.Set(octx, "/quorum", []byte("q"), -1)
			cancel()
			if err == nil {
				lat = append(lat, time.Since(t0))
				oks = append(oks, time.Now())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res.LocalReads = make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.New(workCtx, client.Config{Endpoints: []string{cl.Direct()[i]}, DialTimeout: 300 * time.Millisecond})
			if err != nil {
				return
			}
			defer c.Close(context.Background())
			for workCtx.Err() == nil {
				octx, cancel := context.WithTimeout(workCtx, time.Second)
				_, _, err := c.Get(octx, "/quorum", &client.ReadOptions{Local: true})
				cancel()
				if err == nil {
					res.LocalReads[i]++
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	start := time.Now()
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	end := time.Now()
	stopWork()
	wg.Wait()
	<-termsDone
	if r, f := cl.OwnerLookups(); r > 0 || cl.OwnerClosed() > 0 {
		logf("peer connections whose dialer needed a second look: %d (never found: %d) %v; closed before the look: %d", r, f, cl.OwnerMisses(), cl.OwnerClosed())
	}
	res.Duration = end.Sub(start)
	res.Elections, res.LeaderChanges = terms.between(start, end)
	res.ElectionsPerMin = float64(res.Elections) / res.Duration.Minutes()
	res.Writes = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.WriteP50 = lat[len(lat)/2]
		res.WriteP99 = lat[len(lat)*99/100]
	}
	res.MaxWriteGap, _ = gap(oks, start, end)
	res.NonVoterReadsOK = true
	for _, r := range res.LocalReads[cfg.Voters:] {
		if r == 0 {
			res.NonVoterReadsOK = false
		}
	}
	logf("%v", res)
	return res, ctx.Err()
}
