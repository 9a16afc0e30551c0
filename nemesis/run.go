package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"coord/client"
)

// Workload sizes.
const (
	registerWorkers = 4
	lockers         = 2
	// Client groups: 0 register clients and watchers, 1 the session owner,
	// 2.. one per locker.
	groupRegister = 0
	groupSession  = 1
	groupLocker0  = 2
)

// Paths the workload uses.
const (
	regDir  = "/nemesis/r"
	ephDir  = "/nemesis/e"
	lockDir = "/nemesis/lock"
)

// RunConfig configures one schedule's run.
type RunConfig struct {
	Coordd   string
	Dir      string // a fresh directory for the cluster
	Schedule Schedule
	// UnsafeLocalReads: run the deliberately broken server (teeth).
	UnsafeLocalReads bool
	// Unfenced: the lock workload's resource ignores fencing tokens
	// (teeth for the lock checker).
	Unfenced bool
	// LockOnly runs only the lock workload (for long fenced-lock runs).
	LockOnly bool
	// CheckTimeout bounds porcupine (default 1 min).
	CheckTimeout time.Duration
	// Log receives progress lines (may be nil).
	Log func(format string, args ...any)
}

// Result is what one run checked and found.
type Result struct {
	Schedule Schedule
	// Ops is the number of register operations in the history (Unknown
	// outcomes included); Unknown how many had an unknown outcome.
	Ops, Unknown int
	// Linearizable is porcupine's verdict.
	Linearizable porcupine.CheckResult
	// WatchEvents delivered to the watchers and checked.
	WatchEvents int
	// SessionChecks: existence probes of the owner's ephemeral.
	SessionChecks int
	// LockSections: critical sections whose write the resource accepted;
	// LockRejected: writes it refused as stale.
	LockSections, LockRejected int
	// Recovery: time from the last heal to an accepted write.
	Recovery time.Duration
	// Violations found by any checker (empty: the run passed).
	Violations []string
	// HistoryFile is where a failing history's visualisation was written.
	HistoryFile string
}

// Failed reports whether any checker found a violation.
func (r Result) Failed() bool { return len(r.Violations) > 0 }

func (r *Result) violate(format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
}

// recorder collects the register history.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *recorder) now() int64 { return int64(time.Since(h.start)) }

func (h *recorder) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Run starts a cluster, runs the workload under the schedule, heals,
// checks, and stops the cluster.
func Run(ctx context.Context, cfg RunConfig) (Result, error) {
	res := Result{Schedule: cfg.Schedule}
	logf := cfg.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = time.Minute
	}
	sch := cfg.Schedule
	cl, err := StartCluster(ctx, ClusterConfig{
		Coordd: cfg.Coordd, Nodes: sch.Nodes, Dir: cfg.Dir,
		UnsafeLocalReads: cfg.UnsafeLocalReads, ClientGroups: groupLocker0 + lockers,
	})
	if err != nil {
		return res, err
	}
	defer cl.Close()

	admin, err := client.New(ctx, client.Config{Endpoints: cl.Direct(), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer admin.Close(context.Background())
	// Setup may race the first elections: retry each create (an unknown
	// outcome shows up as ErrNodeExists on the retry).
	paths := []string{"/nemesis", regDir, ephDir, lockDir}
	for k := 0; k < Keys; k++ {
		paths = append(paths, key(k))
	}
	for _, p := range paths {
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, _, err := admin.Create(ctx, p, nil, nil)
			if err == nil || errors.Is(err, client.ErrNodeExists) {
				break
			}
			if time.Now().After(deadline) {
				return res, fmt.Errorf("setup %s: %w", p, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// Sync first: the admin's server may be a follower, and in the
	// broken UnsafeLocalReads mode a Get there could miss the creates.
	if err := admin.Sync(ctx, "/"); err != nil {
		return res, fmt.Errorf("setup: %w", err)
	}
	_, base, err := admin.Get(ctx, key(Keys-1), nil)
	if err != nil {
		return res, fmt.Errorf("setup: %w", err)
	}

	rec := &recorder{start: time.Now()}
	runCtx, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup

	defer stopWork()
	var wA, wB *watcher
	var wBAfter uint64
	defer func() {
		for _, w := range []*watcher{wA, wB} {
			if w != nil {
				w.close()
			}
		}
	}()
	sess := &sessionCheck{}
	if !cfg.LockOnly {
		// Watchers: one from the start, one opened mid-run after a zxid
		// the first saw (resumption), both through the register clients'
		// proxies.
		if wA, err = startWatcher(ctx, cl.ClientAddrs(groupRegister, 1), base.Mzxid); err != nil {
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(sch.Length / 2):
			case <-runCtx.Done():
				return
			}
			wBAfter = wA.last()
			w, err := startWatcher(ctx, cl.ClientAddrs(groupRegister, 2), wBAfter)
			if err == nil {
				wB = w
			}
		}()
		for w := 0; w < registerWorkers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				registerWorker(runCtx, cl.ClientAddrs(groupRegister, w), rec, w, sch.Seed)
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); sess.run(runCtx, cl, rec) }()
	}
	locks := newResource(!cfg.Unfenced)
	pauses := make([]chan struct{}, lockers)
	for i := range pauses {
		pauses[i] = make(chan struct{}, 1)
	}
	for i := 0; i < lockers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); lockWorker(runCtx, cl, i, locks, pauses[i]) }()
	}

	// The nemesis.
	applySchedule(runCtx, cl, sch, pauses, rec, sess, logf)
	<-time.After(time.Until(rec.start.Add(sch.Length)))
	if err := cl.HealAll(); err != nil {
		stopWork()
		wg.Wait()
		return res, err
	}
	res.Recovery, err = cl.TimeToWrite(ctx, 2*ElectionTimeout+5*time.Second)
	if err != nil {
		res.violate("recovery: %v", err)
	}
	stopWork()
	wg.Wait()

	// Checks.
	var ops []porcupine.Operation
	ops, res.Ops, res.Unknown = settleOps(ctx, admin, rec.ops)
	var info porcupine.LinearizationInfo
	res.Linearizable, info = CheckLinearizable(ops, cfg.CheckTimeout)
	if res.Linearizable != porcupine.Ok {
		res.violate("linearizability: %s over %d ops", res.Linearizable, len(ops))
		res.HistoryFile = filepath.Join(cfg.Dir, "history.html")
		_ = porcupine.VisualizePath(RegisterModel, info, res.HistoryFile)
	}
	if !cfg.LockOnly {
		checkWatches(ctx, &res, admin, wA, wB, wBAfter)
		sess.check(ctx, &res, admin)
	}
	locks.check(&res)
	if res.Failed() {
		logf("schedule %s\nviolations:\n  %s\nlogs:\n%s", sch, strings.Join(res.Violations, "\n  "), cl.Logs(4000))
	}
	return res, nil
}

// shared matches the links the schedule's own faults cut: between nodes,
// and between nodes and the register clients (not the session owner's or
// the lockers', which cut and heal themselves).
func shared(a, b int) bool {
	return a < ClientID(groupSession) && b < ClientID(groupSession)
}

func key(k int) string { return fmt.Sprintf("%s/k%d", regDir, k) }

// applySchedule applies each fault at its time and undoes it after its
// duration; it returns when the last is undone or ctx ends.
func applySchedule(ctx context.Context, cl *Cluster, s Schedule, pauses []chan struct{}, rec *recorder, sess *sessionCheck, logf func(string, ...any)) time.Time {
	start := time.Now()
	last := start
	for _, f := range s.Faults {
		select {
		case <-time.After(time.Until(start.Add(f.At))):
		case <-ctx.Done():
			return last
		}
		node := f.Node
		if node < 0 {
			node = cl.Leader(ctx)
			if node < 0 {
				node = 0
			}
		}
		logf("apply %v (node %d)", f, node)
		if f.Kind != PauseLocker && f.Kind != ClientCut {
			sess.disturbed(rec.now())
		}
		var undo func()
		switch f.Kind {
		case KillLeader, KillNode:
			cl.Kill(node)
			undo = func() {
				if err := cl.Restart(node); err != nil {
					logf("restart %d: %v", node, err)
				}
			}
		case PauseLeader, PauseNode:
			cl.Pause(node, true)
			undo = func() { cl.Pause(node, false) }
		case IsolateNode:
			for j := range cl.Nodes {
				if j != node {
					cl.Links.Cut(node, j)
					cl.Links.Cut(j, node)
				}
			}
			undo = func() { cl.Links.Heal(shared, f.Reset) }
		case SplitMajority:
			minority := map[int]bool{}
			for k := 0; k < (len(cl.Nodes)-1)/2; k++ {
				minority[(node+k)%len(cl.Nodes)] = true
			}
			for a := range cl.Nodes {
				for b := range cl.Nodes {
					if minority[a] != minority[b] {
						cl.Links.Cut(a, b)
					}
				}
			}
			undo = func() { cl.Links.Heal(shared, f.Reset) }
		case OneWay:
			cl.Links.Cut(node, f.Other)
			undo = func() { cl.Links.Heal(shared, f.Reset) }
		case ClientCut:
			cl.Links.Cut(ClientID(groupRegister), node)
			cl.Links.Cut(node, ClientID(groupRegister))
			undo = func() { cl.Links.Heal(shared, f.Reset) }
		case PauseLocker:
			select {
			case pauses[f.Node] <- struct{}{}:
			default:
			}
			undo = func() {}
		}
		select {
		case <-time.After(f.Dur):
		case <-ctx.Done():
		}
		undo()
		last = time.Now()
		if f.Kind != PauseLocker && f.Kind != ClientCut {
			sess.disturbed(rec.now())
		}
	}
	return last
}

// registerWorker runs random register ops until ctx ends.
func registerWorker(ctx context.Context, eps []string, rec *recorder, id int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(id)+1))
	c, err := client.New(ctx, client.Config{Endpoints: eps, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	vers := make([]int64, Keys) // last version this worker saw per key
	for n := 0; ctx.Err() == nil; n++ {
		in := Input{Key: r.IntN(Keys)}
		switch p := r.IntN(10); {
		case p < 5:
			in.Kind = OpGet
		case p < 7:
			in.Kind = OpSet
		case p < 9:
			in.Kind = OpCAS
		default:
			in.Kind = OpMulti
			in.Key2 = r.IntN(Keys)
		}
		in.Val = fmt.Sprintf("w%d-%d", id, n)
		in.Ver = vers[in.Key]
		opCtx, cancel := context.WithTimeout(ctx, time.Second)
		call := rec.now()
		var out Output
		var err error
		switch in.Kind {
		case OpGet:
			var data []byte
			var st *client.Stat
			data, st, err = c.Get(opCtx, key(in.Key), nil)
			if err == nil {
				out = Output{OK: true, Val: string(data), Ver: st.Version}
				vers[in.Key] = st.Version
			}
		case OpSet, OpCAS:
			ver := int64(-1)
			if in.Kind == OpCAS {
				ver = in.Ver
			}
			var st *client.Stat
			st, err = c.Set(opCtx, key(in.Key), []byte(in.Val), ver)
			if err == nil {
				out = Output{OK: true, Ver: st.Version}
				vers[in.Key] = st.Version
			}
		case OpMulti:
			var rs []client.OpResult
			rs, err = c.Multi(opCtx, client.CheckOp(key(in.Key), in.Ver), client.SetOp(key(in.Key2), []byte(in.Val), -1))
			if err == nil && len(rs) == 2 && rs[1].Stat != nil {
				out = Output{OK: true, Ver: rs[1].Stat.Version}
				vers[in.Key2] = rs[1].Stat.Version
			} else if err == nil {
				err = fmt.Errorf("multi returned %d results", len(rs))
			}
		}
		ret := rec.now()
		ctxDone := ctx.Err() != nil
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, client.ErrBadVersion):
			out = Output{OK: false}
		case in.Kind == OpGet:
			continue // a failed read changes nothing
		case errors.Is(err, client.ErrUnavailable) && !errors.Is(err, client.ErrConnectionLoss) && !ctxDone && !errors.Is(err, context.DeadlineExceeded):
			continue // nothing was applied
		default:
			out = Output{Unknown: true}
			ret = Infinity
		}
		rec.add(porcupine.Operation{ClientId: id, Input: in, Output: out, Call: call, Return: ret})
	}
}

// settleOps counts the recorded register operations and those with an
// unknown outcome, and resolves most of the unknown ones from the keys'
// final versions (read after a sync, so admin's node has everything).
func settleOps(ctx context.Context, admin *client.Client, ops []porcupine.Operation) (resolved []porcupine.Operation, n, unknown int) {
	for _, op := range ops {
		if op.Return == Infinity {
			unknown++
		}
	}
	final := make(map[int]int64)
	if err := admin.Sync(ctx, "/"); err == nil {
		for k := 0; k < Keys; k++ {
			if _, st, err := admin.Get(ctx, key(k), nil); err == nil {
				final[k] = st.Version
			}
		}
	}
	return ResolveUnknown(ops, final), len(ops), unknown
}
