package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"coord/client"
	"coord/client/recipe"
)

// ExpiryBound is how long past its session timeout an ephemeral may
// outlive a session whose client was cut off (expiry scan, commit of the
// close, the observer's poll).
const ExpiryBound = 1500 * time.Millisecond

// watcher records the events of one recursive watch on the registers.
type watcher struct {
	c      *client.Client
	w      *client.Watch
	after  uint64
	mu     sync.Mutex
	events []client.Event
	done   chan struct{}
}

func startWatcher(ctx context.Context, eps []string, after uint64) (*watcher, error) {
	c, err := client.New(ctx, client.Config{Endpoints: eps, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	// The watch lives as long as ctx (the whole run, checks included).
	w, err := c.Watch(ctx, regDir, client.WatchRecursive, after)
	if err != nil {
		c.Close(context.Background())
		return nil, fmt.Errorf("watch: %w", err)
	}
	wt := &watcher{c: c, w: w, after: after, done: make(chan struct{})}
	go func() {
		defer close(wt.done)
		for e := range w.Events {
			wt.mu.Lock()
			wt.events = append(wt.events, e)
			wt.mu.Unlock()
		}
	}()
	return wt, nil
}

// last is the zxid of the last event received (or the start point).
func (w *watcher) last() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.events) == 0 {
		return w.after
	}
	return w.events[len(w.events)-1].Zxid
}

func (w *watcher) snapshot() []client.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

func (w *watcher) close() {
	w.w.Cancel()
	<-w.done
	w.c.Close(context.Background())
}

// checkWatches: per watcher, events strictly increase in zxid (no
// duplicate, no reordering); the watcher from the start saw exactly one
// data event per version each register reached, the last at the
// register's mzxid (no loss); the watcher opened mid-run after zxid z saw
// exactly the first watcher's events after z (resumption without gaps).
func checkWatches(ctx context.Context, res *Result, admin *client.Client, a, b *watcher, bAfter uint64) {
	finals := make([]*client.Stat, Keys)
	var maxZ uint64
	if err := admin.Sync(ctx, "/"); err != nil {
		res.violate("watch check: sync: %v", err)
		return
	}
	for k := 0; k < Keys; k++ {
		_, st, err := admin.Get(ctx, key(k), nil)
		if err != nil {
			res.violate("watch check: read %s: %v", key(k), err)
			return
		}
		finals[k] = st
		maxZ = max(maxZ, st.Mzxid)
	}
	for _, w := range []*watcher{a, b} {
		if w == nil {
			continue
		}
		deadline := time.Now().Add(10 * time.Second)
		for w.last() < maxZ && time.Now().Before(deadline) && w.w.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		if err := w.w.Err(); err != nil {
			res.violate("watch after %d ended early: %v", w.after, err)
		}
	}
	if b == nil {
		res.violate("watch: the mid-run watcher never started")
	}
	evA := a.snapshot()
	res.WatchEvents += len(evA)
	orderCheck := func(name string, evs []client.Event, after uint64) {
		prev := after
		for i, e := range evs {
			if e.Zxid <= prev {
				res.violate("watch %s: event %d zxid %d after %d (duplicate or reordered)", name, i, e.Zxid, prev)
				return
			}
			prev = e.Zxid
		}
	}
	orderCheck("A", evA, a.after)
	count := make(map[string]int64)
	lastZ := make(map[string]uint64)
	for _, e := range evA {
		if e.Type == client.EventDataChanged {
			count[e.Path]++
			lastZ[e.Path] = e.Zxid
		}
	}
	for k, st := range finals {
		if count[key(k)] != st.Version {
			res.violate("watch A: %s reached version %d but %d data events were delivered (lost or extra events)", key(k), st.Version, count[key(k)])
		}
		if st.Version > 0 && lastZ[key(k)] != st.Mzxid {
			res.violate("watch A: %s last event zxid %d, node mzxid %d", key(k), lastZ[key(k)], st.Mzxid)
		}
	}
	if b != nil {
		evB := b.snapshot()
		res.WatchEvents += len(evB)
		orderCheck("B", evB, bAfter)
		var want []client.Event
		for _, e := range evA {
			if e.Zxid > bAfter {
				want = append(want, e)
			}
		}
		if !slices.Equal(want, evB) {
			res.violate("watch B (resumed after %d): %d events, want the %d A saw after that point", bAfter, len(evB), len(want))
		}
	}
}

// sessionCheck runs a session owner with an ephemeral node and an
// observer that lists the ephemerals; check then looks for an ephemeral
// that vanished while its session was provably alive, and for one that
// outlived its cut-off client by more than timeout + ExpiryBound.
type sessionCheck struct {
	mu sync.Mutex
	// disturb: times a fault that can change the leader began or ended.
	// A new leader grants every session a fresh timeout, so the expiry
	// bound runs from the later of the cut and the last disturbance.
	disturb []int64
	gens    []sessGen
	probes  []sessProbe
	obs     []sessObs
}

type sessGen struct {
	name    string
	created int64 // return time of the ephemeral's create
	cuts    [][2]int64
}

type sessProbe struct {
	gen       int
	call, ret int64
}

type sessObs struct {
	call, ret int64
	names     map[string]bool
}

func (s *sessionCheck) disturbed(at int64) {
	s.mu.Lock()
	s.disturb = append(s.disturb, at)
	s.mu.Unlock()
}

func (s *sessionCheck) run(ctx context.Context, cl *Cluster, rec *recorder) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.observe(ctx, cl, rec) }()
	defer wg.Wait()
	for gen := 0; ctx.Err() == nil; gen++ {
		s.owner(ctx, cl, rec, gen)
	}
}

// owner runs one session generation until it expires or ctx ends.
func (s *sessionCheck) owner(ctx context.Context, cl *Cluster, rec *recorder, gen int) {
	c, err := client.New(ctx, client.Config{Endpoints: cl.ClientAddrs(groupSession, gen), DialTimeout: 300 * time.Millisecond, SessionTimeout: SessionTimeout})
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	name := fmt.Sprintf("owner-%d", gen)
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, _, err = c.Create(cctx, ephDir+"/"+name, nil, &client.CreateOptions{Ephemeral: true})
	cancel()
	if err != nil {
		time.Sleep(50 * time.Millisecond)
		return
	}
	s.mu.Lock()
	s.gens = append(s.gens, sessGen{name: name, created: rec.now()})
	g := len(s.gens) - 1
	s.mu.Unlock()
	cutDone := make(chan struct{})
	cutting := false
	for n := 0; ctx.Err() == nil; n++ {
		// Now and then, cut this owner off for longer than its session
		// (a paused client): the server must expire it in time.
		if !cutting && n == 4 {
			cutting = true
			start := rec.now()
			id := ClientID(groupSession)
			for j := range cl.Nodes {
				cl.Links.Cut(id, j)
				cl.Links.Cut(j, id)
			}
			dur := SessionTimeout + ExpiryBound + 500*time.Millisecond
			go func() {
				defer close(cutDone)
				select {
				case <-time.After(dur):
				case <-ctx.Done():
				}
				cl.Links.HealGroup(id)
				s.mu.Lock()
				s.gens[g].cuts = append(s.gens[g].cuts, [2]int64{start, rec.now()})
				s.mu.Unlock()
			}()
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		call := rec.now()
		_, _, err := c.Create(pctx, fmt.Sprintf("%s/p-%d-%d", ephDir, gen, n), nil, &client.CreateOptions{Ephemeral: true})
		ret := rec.now()
		cancel()
		if err == nil {
			s.mu.Lock()
			s.probes = append(s.probes, sessProbe{gen: g, call: call, ret: ret})
			s.mu.Unlock()
		} else if errors.Is(err, client.ErrSessionExpired) {
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	if cutting {
		<-cutDone
	}
}

func (s *sessionCheck) observe(ctx context.Context, cl *Cluster, rec *recorder) {
	c, err := client.New(ctx, client.Config{Endpoints: cl.Direct(), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		return
	}
	defer c.Close(context.Background())
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, time.Second)
		call := rec.now()
		names, _, err := c.Children(octx, ephDir, nil)
		ret := rec.now()
		cancel()
		if err == nil {
			set := make(map[string]bool, len(names))
			for _, n := range names {
				set[n] = true
			}
			s.mu.Lock()
			s.obs = append(s.obs, sessObs{call: call, ret: ret, names: set})
			s.mu.Unlock()
		}
		select {
		case <-time.After(40 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (s *sessionCheck) check(_ context.Context, res *Result, _ *client.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res.SessionChecks += len(s.obs)
	// 1. No ephemeral vanishes while its session is alive: a listing that
	// lacked it, followed by a later successful ephemeral create in the
	// same session, is a violation (ephemerals are never recreated).
	lastProbe := make(map[int]int64)
	for _, p := range s.probes {
		lastProbe[p.gen] = max(lastProbe[p.gen], p.call)
	}
	for g, gen := range s.gens {
		for _, o := range s.obs {
			if o.call > gen.created && o.ret < lastProbe[g] && !o.names[gen.name] {
				res.violate("session: %s missing from a listing at %v while its session later created a node at %v", gen.name, time.Duration(o.ret), time.Duration(lastProbe[g]))
				break
			}
		}
	}
	// 2. No ephemeral outlives its cut-off session by more than the bound,
	// counted from the cut or from the last fault that may have moved the
	// leader (plus an election), whichever is later.
	bound := int64(SessionTimeout + ExpiryBound)
	for _, gen := range s.gens {
		for _, cut := range gen.cuts {
			for _, o := range s.obs {
				from := cut[0]
				for _, d := range s.disturb {
					if d <= o.call {
						from = max(from, d+int64(4*ElectionTimeout))
					}
				}
				if o.call > from+bound && o.ret < cut[1] && o.names[gen.name] {
					res.violate("session: %s still present %v after its client was cut off and %v after the last leader change could have happened (bound %v)", gen.name, time.Duration(o.call-cut[0]), time.Duration(o.call-from), time.Duration(bound))
					break
				}
			}
		}
	}
}

// resource is the shared state the lock protects. Fenced, it remembers
// the highest fencing token it has seen and refuses reads and writes with
// a lower one (Kleppmann's fenced storage, Chubby's sequencer check).
type resource struct {
	mu       sync.Mutex
	fenced   bool
	max      uint64
	value    int
	accepted int
	rejected int
}

func newResource(fenced bool) *resource { return &resource{fenced: fenced} }

func (r *resource) read(tok uint64) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fenced && tok < r.max {
		r.rejected++
		return 0, false
	}
	r.max = max(r.max, tok)
	return r.value, true
}

func (r *resource) write(tok uint64, v int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fenced && tok < r.max {
		r.rejected++
		return false
	}
	r.max = max(r.max, tok)
	r.value = v
	r.accepted++
	return true
}

// waitNewer waits at least min, then until a token above tok was used or
// limit passes.
func (r *resource) waitNewer(ctx context.Context, tok uint64, min, limit time.Duration) {
	start := time.Now()
	for time.Since(start) < limit && ctx.Err() == nil {
		r.mu.Lock()
		newer := r.max > tok
		r.mu.Unlock()
		if newer && time.Since(start) >= min {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check: every accepted read-modify-write incremented the value once, so
// the value equals the accepted count; less means lost updates.
func (r *resource) check(res *Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.LockSections += r.accepted
	res.LockRejected += r.rejected
	if r.value != r.accepted {
		res.violate("lock: %d lost updates (%d critical sections accepted, value %d, fenced=%v)", r.accepted-r.value, r.accepted, r.value, r.fenced)
	}
}

// lockWorker takes the lock, increments the resource, releases, until
// ctx ends. When told to pause, it stalls inside its critical section with
// its network cut (no keepalives) for longer than its session, as a
// process in a long GC pause would.
func lockWorker(ctx context.Context, cl *Cluster, i int, r *resource, pause <-chan struct{}) {
	group := groupLocker0 + i
	for ctx.Err() == nil {
		c, err := client.New(ctx, client.Config{Endpoints: cl.ClientAddrs(group, i), DialTimeout: 300 * time.Millisecond, SessionTimeout: SessionTimeout})
		if err != nil {
			return
		}
		lk := recipe.NewLock(c, lockDir)
		for ctx.Err() == nil {
			lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			tok, err := lk.Lock(lctx)
			cancel()
			if err != nil {
				if errors.Is(err, client.ErrSessionExpired) {
					break
				}
				continue
			}
			if v, ok := r.read(tok); ok {
				select {
				case <-pause:
					id := ClientID(group)
					for j := range cl.Nodes {
						cl.Links.Cut(id, j)
						cl.Links.Cut(j, id)
					}
					// Stall until another holder has used the resource
					// (our session expired and the lock moved on), at
					// least one session timeout and at most 10 s.
					r.waitNewer(ctx, tok, SessionTimeout, 10*time.Second)
					cl.Links.HealGroup(id)
				default:
					time.Sleep(time.Millisecond)
				}
				r.write(tok, v+1)
			}
			uctx, cancel := context.WithTimeout(ctx, time.Second)
			err = lk.Unlock(uctx)
			cancel()
			if errors.Is(err, client.ErrSessionExpired) || c.SessionErr() != nil {
				break
			}
		}
		c.Close(context.Background())
	}
}
