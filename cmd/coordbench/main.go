// Command coordbench measures a coord cluster with the Go client: ops/s
// and p50/p99/p99.9 latency per workload. It drives a running cluster
// (--endpoints) or starts a 1- or 3-node loopback cluster itself (--start
// N, in-process servers with data on disk and real fsync, removed after).
//
//	coordbench --start 3 --workload set --clients 128 --duration 10s
//	coordbench --endpoints 127.0.0.1:4180 --workload mixed --read-ratio 0.9
//
// Workloads: create, set, get, get-local, mixed, txn, lock (one contended
// lock), locks (one lock per client), session (open+close), watch (set ->
// event latency on another server), lease (renewals of one Flease lease
// per client in a 3-member in-process group, beside the coord cluster).
//
//	coordbench fsync   # the disk's durable-write rate, the floor under writes
//	coordbench scale --znodes 1000000 --pid PID   # fill, list, snapshot, RSS
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"coord/client"
	"coord/client/recipe"
	"coord/coord"
	"coord/coord/replica"
)

type options struct {
	endpoints []string
	start     int
	workload  string
	clients   int
	valueSize int
	keys      int
	duration  time.Duration
	ops       int64
	warmup    time.Duration
	readRatio float64
	json      bool
	nudge     bool
	unary     bool
	plain     bool
	parSerial bool
	// noAdmission: with --start, servers run without admission control
	// (coordd --no-admission), to check it costs nothing under load.
	noAdmission bool
	pids        []int // --server-pids: CPU accounting of the servers
}

// Result is one workload's measurement.
type Result struct {
	Workload string  `json:"workload"`
	Nodes    int     `json:"nodes,omitempty"`
	Clients  int     `json:"clients"`
	Ops      int64   `json:"ops"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	OpsPerS  float64 `json:"ops_per_sec"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	P999ms   float64 `json:"p999_ms"`
	// EntriesPerAppend (--start only): raft log entries per durable log
	// append over the workload (warm-up included), summed over all nodes:
	// how many writes group commit puts behind each bbolt commit.
	EntriesPerAppend float64 `json:"entries_per_append,omitempty"`
	// Shed (--start only): client requests the servers' admission
	// control shed with OVERLOADED during the workload (warm-up
	// included); the client retries them, so they need not be errors.
	Shed int64 `json:"shed"`
	// MaxInServer (--start only): the most client data requests one
	// server held at once (running or waiting for admission) since start.
	MaxInServer int64 `json:"max_in_server,omitempty"`
	// ClientCPUus is this process's CPU time (user + system) per operation
	// in the window, in microseconds; with --start the in-process servers
	// are included. ServerCPUus is that of the --server-pids processes.
	ClientCPUus float64 `json:"client_cpu_us_per_op,omitempty"`
	ServerCPUus float64 `json:"server_cpu_us_per_op,omitempty"`
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "fsync" {
		return runFsync(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "scale" {
		return runScale(args[1:], stdout, stderr)
	}
	var o options
	fs := flag.NewFlagSet("coordbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	eps := fs.String("endpoints", "127.0.0.1:4180", "servers to drive (ignored with --start)")
	fs.IntVar(&o.start, "start", 0, "start an in-process loopback cluster of 1 or 3 nodes (0: use --endpoints)")
	fs.StringVar(&o.workload, "workload", "set", "create, set, get, get-local, mixed, txn, lock, locks, session, watch, lease (a Flease group of 3 in-process members); comma-separated for several")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients, one connection each")
	fs.IntVar(&o.valueSize, "value-size", 100, "bytes per value")
	fs.IntVar(&o.keys, "keys", 1000, "keys for set/get/mixed")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window per workload")
	fs.Int64Var(&o.ops, "ops", 0, "stop after this many ops instead (0: use --duration)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "untimed warm-up before each window")
	fs.Float64Var(&o.readRatio, "read-ratio", 0.9, "share of reads in mixed")
	fs.BoolVar(&o.json, "json", false, "print results as JSON")
	fs.BoolVar(&o.unary, "unary", false, "one unary gRPC call per operation instead of the client's Call stream (for comparison)")
	fs.BoolVar(&o.plain, "plain-storage", false, "with --start: servers use plain raft-boltdb instead of PAR (docs/PAR.md)")
	fs.BoolVar(&o.parSerial, "par-serial-journal", false, "with --start: PAR writes identifiers after each bbolt commit (coord.Config.PARSerialJournal)")
	fs.BoolVar(&o.noAdmission, "no-admission", false, "with --start: servers run without admission control (coordd --no-admission)")
	fs.BoolVar(&o.nudge, "nudge", false, "with --start: servers nudge followers after sparse writes (coordd --nudge-followers)")
	pids := fs.String("server-pids", "", "comma-separated pids of the server processes: report their CPU time per operation (works for coordd, ZooKeeper, etcd)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run (servers included with --start) to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.clients < 1 || o.keys < 1 || o.valueSize < 0 || o.duration <= 0 || o.readRatio < 0 || o.readRatio > 1 {
		fmt.Fprintln(stderr, "coordbench: --clients and --keys must be >= 1, --duration > 0, --read-ratio in [0,1]")
		return 2
	}
	var err error
	if o.pids, err = parsePIDs(*pids); err != nil {
		fmt.Fprintf(stderr, "coordbench: %v\n", err)
		return 2
	}
	if o.start != 0 && o.start != 1 && o.start != 3 {
		fmt.Fprintln(stderr, "coordbench: --start takes 1 or 3")
		return 2
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "coordbench: %v\n", err)
			return 1
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o.endpoints = strings.Split(*eps, ",")
	var servers []*coord.Server
	// logAppends sums the durable log appends and entries of every
	// in-process server (--start only).
	logAppends := func() (a, e uint64) {
		for _, s := range servers {
			x, y := s.Replica().LogAppends()
			a, e = a+x, e+y
		}
		return a, e
	}
	if o.start > 0 {
		addrs, srvs, cleanup, err := startCluster(o.start, o.nudge, o.plain, o.parSerial, o.noAdmission)
		if err != nil {
			fmt.Fprintf(stderr, "coordbench: start cluster: %v\n", err)
			return 1
		}
		defer cleanup()
		o.endpoints = addrs
		servers = srvs
	}
	var results []Result
	for _, w := range strings.Split(o.workload, ",") {
		a0, e0 := logAppends()
		shed0 := shedTotal(servers)
		r, err := bench(ctx, o, strings.TrimSpace(w), stderr)
		if err != nil {
			fmt.Fprintf(stderr, "coordbench: %s: %v\n", w, err)
			return 1
		}
		if a1, e1 := logAppends(); a1 > a0 {
			r.EntriesPerAppend = float64(e1-e0) / float64(a1-a0)
		}
		r.Shed = shedTotal(servers) - shed0
		for _, s := range servers {
			r.MaxInServer = max(r.MaxInServer, s.AdmissionStats().MaxInServer)
		}
		r.Nodes = o.start
		results = append(results, r)
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(results)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "workload\tclients\tops\terrors\tops/s\tp50 ms\tp99 ms\tp99.9 ms\t")
	if len(servers) > 0 {
		fmt.Fprint(tw, "entries/append\tshed\tmax in server\t")
	}
	fmt.Fprint(tw, "cpu us/op (this process)\t")
	if len(o.pids) > 0 {
		fmt.Fprint(tw, "cpu us/op (servers)\t")
	}
	fmt.Fprintln(tw)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t", r.Workload, r.Clients, r.Ops, r.Errors, r.OpsPerS, r.P50ms, r.P99ms, r.P999ms)
		if len(servers) > 0 {
			fmt.Fprintf(tw, "%.1f\t%d\t%d\t", r.EntriesPerAppend, r.Shed, r.MaxInServer)
		}
		fmt.Fprintf(tw, "%.0f\t", r.ClientCPUus)
		if len(o.pids) > 0 {
			fmt.Fprintf(tw, "%.0f\t", r.ServerCPUus)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return 0
}

// shedTotal sums the requests the servers' admission control shed.
func shedTotal(servers []*coord.Server) int64 {
	var n int64
	for _, s := range servers {
		n += s.AdmissionStats().Shed
	}
	return n
}

// startCluster runs n in-process servers on loopback with data on disk.
func startCluster(n int, nudge, plain, parSerial, noAdmission bool) ([]string, []*coord.Server, func(), error) {
	dir, err := os.MkdirTemp("", "coordbench")
	if err != nil {
		return nil, nil, nil, err
	}
	var lns []net.Listener
	var peers []replica.Peer
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		lns = append(lns, ln)
		peers = append(peers, replica.Peer{Name: fmt.Sprintf("n%d", i+1), Address: ln.Addr().String()})
	}
	var servers []*coord.Server
	cleanup := func() {
		for _, s := range servers {
			s.Close()
		}
		os.RemoveAll(dir)
	}
	errs := make([]error, n)
	srvs := make([]*coord.Server, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		cfg := coord.DefaultConfig()
		cfg.Name = peers[i].Name
		cfg.DataDir = filepath.Join(dir, cfg.Name)
		cfg.HTTP = ""
		cfg.InitialCluster = peers
		cfg.NudgeFollowers = nudge
		cfg.PlainStorage = plain
		cfg.PARSerialJournal = parSerial
		cfg.Admission.Disabled = noAdmission
		cfg.Logger = slog.New(slog.DiscardHandler)
		wg.Add(1)
		go func(i int, cfg coord.Config) {
			defer wg.Done()
			srvs[i], errs[i] = coord.Start(cfg, lns[i])
		}(i, cfg)
	}
	wg.Wait()
	for i := range srvs {
		if srvs[i] != nil {
			servers = append(servers, srvs[i])
		}
	}
	if err := errors.Join(errs...); err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	// Wait for a leader.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range servers {
			if s.Replica().IsLeader() {
				addrs := make([]string, n)
				for i, p := range peers {
					addrs[i] = p.Address
				}
				return addrs, servers, cleanup, nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cleanup()
	return nil, nil, nil, errors.New("no leader within 15s")
}

func newClient(ctx context.Context, o options, first int) (*client.Client, error) {
	eps := o.endpoints
	cfg := client.DefaultConfig()
	cfg.UnaryCalls = o.unary
	// Spread clients over the servers, followers and leader alike.
	cfg.Endpoints = append(append([]string{}, eps[first%len(eps):]...), eps[:first%len(eps)]...)
	return client.New(ctx, cfg)
}

// op is one measured operation of a worker.
type op func(ctx context.Context, i int64) error

func bench(ctx context.Context, o options, workload string, stderr io.Writer) (Result, error) {
	clients := make([]*client.Client, o.clients)
	for i := range clients {
		c, err := newClient(ctx, o, i)
		if err != nil {
			return Result{}, err
		}
		defer c.Close(context.Background())
		clients[i] = c
	}
	value := make([]byte, o.valueSize)
	setup := clients[0]
	base := fmt.Sprintf("/bench-%d", time.Now().UnixNano())
	if _, _, err := setup.Create(ctx, base, nil, nil); err != nil {
		return Result{}, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		setup.DeleteAll(dctx, base, -1)
		cancel()
	}()
	needKeys := workload == "set" || workload == "get" || workload == "get-local" || workload == "mixed" || workload == "txn"
	if needKeys {
		var batch []client.Op
		for k := 0; k < o.keys; k++ {
			batch = append(batch, client.CreateOp(fmt.Sprintf("%s/k%06d", base, k), value, nil))
			if len(batch) == 500 || k == o.keys-1 {
				if _, err := setup.Multi(ctx, batch...); err != nil {
					return Result{}, err
				}
				batch = batch[:0]
			}
		}
	}
	var leases *leaseGroup
	if workload == "lease" {
		g, err := startLeaseGroup()
		if err != nil {
			return Result{}, fmt.Errorf("start a Flease group: %w", err)
		}
		defer g.close()
		leases = g
	}
	key := func(i int64) string { return fmt.Sprintf("%s/k%06d", base, i%int64(o.keys)) }
	mk := func(w int) (op, func(), error) {
		c := clients[w]
		switch workload {
		case "create":
			return func(ctx context.Context, i int64) error {
				_, _, err := c.Create(ctx, fmt.Sprintf("%s/w%d-%d", base, w, i), value, nil)
				return err
			}, nil, nil
		case "set":
			return func(ctx context.Context, i int64) error { _, err := c.Set(ctx, key(i), value, -1); return err }, nil, nil
		case "get", "get-local":
			ro := &client.ReadOptions{Local: workload == "get-local"}
			return func(ctx context.Context, i int64) error { _, _, err := c.Get(ctx, key(i), ro); return err }, nil, nil
		case "mixed":
			var n atomic.Int64
			return func(ctx context.Context, i int64) error {
				if float64(n.Add(1)%100) < o.readRatio*100 {
					_, _, err := c.Get(ctx, key(i), nil)
					return err
				}
				_, err := c.Set(ctx, key(i), value, -1)
				return err
			}, nil, nil
		case "txn":
			return func(ctx context.Context, i int64) error {
				_, err := c.Multi(ctx, client.SetOp(key(i), value, -1), client.SetOp(key(i+1), value, -1), client.SetOp(key(i+2), value, -1))
				return err
			}, nil, nil
		case "lock", "locks":
			dir := base + "/lock"
			if workload == "locks" {
				dir = fmt.Sprintf("%s/lock%d", base, w)
			}
			l := recipe.NewLock(c, dir)
			return func(ctx context.Context, i int64) error {
				if _, err := l.Lock(ctx); err != nil {
					return err
				}
				return l.Unlock(ctx)
			}, nil, nil
		case "session":
			return func(ctx context.Context, i int64) error {
				sc, err := newClient(ctx, o, w+int(i))
				if err != nil {
					return err
				}
				if _, err := sc.Session(ctx); err != nil {
					sc.Close(ctx)
					return err
				}
				return sc.Close(ctx)
			}, nil, nil
		case "watch":
			// Watcher on the next server; latency from set sent to event.
			wc, err := newClient(ctx, o, w+1)
			if err != nil {
				return nil, nil, err
			}
			p := fmt.Sprintf("%s/watch%d", base, w)
			if _, _, err := c.Create(ctx, p, nil, nil); err != nil {
				wc.Close(ctx)
				return nil, nil, err
			}
			if err := wc.Sync(ctx, "/"); err != nil {
				wc.Close(ctx)
				return nil, nil, err
			}
			wt, err := wc.Watch(context.Background(), p, client.WatchPersistent, 0)
			if err != nil {
				wc.Close(ctx)
				return nil, nil, err
			}
			return func(ctx context.Context, i int64) error {
					if _, err := c.Set(ctx, p, value, -1); err != nil {
						return err
					}
					select {
					case _, ok := <-wt.Events:
						if !ok {
							return fmt.Errorf("watch ended: %v", wt.Err())
						}
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}, func() {
					wt.Cancel()
					wc.Close(context.Background())
				}, nil
		case "lease":
			return leases.leaseOp(ctx, w)
		}
		return nil, nil, fmt.Errorf("unknown workload %q", workload)
	}
	ops := make([]op, o.clients)
	for w := range ops {
		f, cleanup, err := mk(w)
		if err != nil {
			return Result{}, err
		}
		if cleanup != nil {
			defer cleanup()
		}
		ops[w] = f
	}
	return measure(ctx, o, workload, ops, stderr), nil
}

// measure runs ops from one goroutine per client: warm-up, then the
// window, with a progress line each second.
func measure(ctx context.Context, o options, workload string, ops []op, stderr io.Writer) Result {
	var measuring atomic.Bool
	var count, errs atomic.Int64
	lat := make([][]time.Duration, len(ops))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var next atomic.Int64
	for w, f := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := next.Add(1)
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t0 := time.Now()
				err := f(octx, i)
				d := time.Since(t0)
				cancel()
				if !measuring.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], d)
				if n := count.Add(1); o.ops > 0 && n >= o.ops {
					return
				}
			}
		}()
	}
	time.Sleep(o.warmup)
	cpu0, cpuErr := takeCPU(o.pids)
	measuring.Store(true)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.After(o.duration)
	if o.ops > 0 {
		timer = nil
	}
loop:
	for {
		select {
		case <-tick.C:
			el := time.Since(start).Seconds()
			fmt.Fprintf(stderr, "\r%s c=%d: %d ops, %.0f ops/s, %d errors   ", workload, len(ops), count.Load(), float64(count.Load())/el, errs.Load())
		case <-timer:
			break loop
		case <-done:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	cpu1, err := takeCPU(o.pids)
	if cpuErr == nil {
		cpuErr = err
	}
	close(stop)
	<-done
	fmt.Fprintln(stderr)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	r := Result{
		Workload: workload, Clients: len(ops), Ops: int64(len(all)), Errors: errs.Load(),
		Seconds: elapsed.Seconds(), OpsPerS: float64(len(all)) / elapsed.Seconds(),
		P50ms: q(0.50), P99ms: q(0.99), P999ms: q(0.999),
	}
	if cpuErr != nil {
		fmt.Fprintf(stderr, "coordbench: cpu accounting: %v\n", cpuErr)
	} else if n := float64(len(all)); n > 0 {
		r.ClientCPUus = float64((cpu1.self - cpu0.self).Microseconds()) / n
		r.ServerCPUus = float64((cpu1.servers - cpu0.servers).Microseconds()) / n
	}
	return r
}
