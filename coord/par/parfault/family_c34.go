package parfault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"coord/coord"
	"coord/coord/par"
	"coord/proto/coordpb"
	"coord/proto/parpb"
)

// Families C3 and C4 (design §5.4, §4.4). Each starts like C1: after a
// barrier write every node holds the same committed log; then the
// leader X, with both followers stopped, appends a write that cannot
// commit (it holds it alone, nobody was answered).
//
// C3 (cVarC3), "a corrupt tail whose old leader is still alive at
// t_last": X's copy is corrupted and X restarts while its two peers are
// alive but still at X's last term t_last: they serve PeerRepair from
// their stores as nodes in pre-start recovery do, their raft is not
// running, so no term moves on. Both answer DONT_HAVE with durable term
// t_last, which rule 4 must not count (design §4.4: a leader of a term
// <= t_last could still count X's stale ack). For cHold X must keep the
// entry (no truncation, no start). Then the peers start for real, elect a
// leader in a newer term, and X must discard the tail by rule 4, start,
// and the cluster must end Correct with the tail never served.
//
// C4 (cVarC4), the §4.4 double-fault state, built offline: X alone holds
// a corrupt (m, T); Y alone holds a corrupt (m, T') with T' = T+1 (Y led
// T' with X's vote, both durable at T'); Z holds neither and is still at
// T. X counts Y's nack (T' > T) but not Z's (T is not > T); Y counts
// neither (T' is not > T', T is not). Z alone cannot win a pre-vote, so no
// term moves on: in conservative GetLog mode (the only one built) both X
// and Y wait in pre-start recovery until PARRecoverTimeout and the
// cluster stays unavailable. The design expects exactly that (§5.4:
// "conservative mode: unavailable, a known, documented stall"), so the
// oracle marks the case ByDesign, never recoverable-but-unavailable.
// The state is synthetic: in a 3-node cluster no legal raft history
// reaches it (docs/PAR.md, "Families C3 and C4"): Y can only win T' with
// X's or Z's vote; X refuses while it holds (m, T) and Y does not, and
// Z's vote puts Z at T' > T, after which X can discard.
//
// C4b (cVarC4b), the reachable neighbour of C4, built live: after X's
// tail, Y and Z (X down) elect Y in T' and commit a write, then Y, with
// Z stopped, appends a second write alone; both tails are corrupted. Z
// is at T', so X's nacks (Y, Z at T' > T) count: X discards, starts, and
// with Z elects a leader in T'' > T'; then Y's nacks count and Y
// discards ("resolved one node at a time", §4.4). Expected Correct.

// Family C variants (Case.Variant).
const (
	cVarC12 = iota // C1/C2 (family_ch.go)
	cVarC3
	cVarC4
	cVarC4b
)

// cHold is how long C3 keeps X's peers at t_last once X is seen waiting;
// cHoldMax bounds the wait for that.
const (
	cHold    = 2 * time.Second
	cHoldMax = 10 * time.Second
)

// cRecoverTimeout bounds pre-start recovery in C3 and C4b, whose nodes
// wait for a term to move on (longer than the harness default).
const cRecoverTimeout = 15 * time.Second

func c34Cases() []Case {
	return []Case{{Family: "C", ID: 4, Variant: cVarC3}, {Family: "C", ID: 5, Variant: cVarC4}, {Family: "C", ID: 6, Variant: cVarC4b}}
}

func cVariantName(v int) string {
	return [...]string{"C1/C2", "C3 old-leader-tail, peers at t_last", "C4 double-fault (§4.4 state, synthetic)", "C4b double-fault, third node voted"}[v]
}

// expectedStall: the design expects this case to stay unavailable (the
// §4.4 conservative-mode stall); only with PAR (plain storage has no
// such rule).
func (h *Harness) expectedStall(c Case) bool {
	return !h.opt.Plain && c.Family == "C" && c.Variant == cVarC4
}

// errAckedWithoutQuorum: the write meant to stay uncommitted was
// acknowledged.
var errAckedWithoutQuorum = errors.New("a write without a quorum was acknowledged")

// appendAlone has s (a leader whose followers are stopped) append a
// write of marker to path; the write must not be acknowledged.
func appendAlone(ctx context.Context, s *coord.Server, path string, marker []byte) error {
	cc, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := coordpb.NewCoordClient(cc).Create(wctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: path, Data: marker}}); err == nil {
		return errAckedWithoutQuorum
	}
	return nil
}

// barrier commits a write and waits until every running node applied
// it, so their logs are equal up to it. A write that fails (the short
// harness timeouts move the leadership on a loaded machine) is retried
// under a new path: a failed attempt may still commit, which is harmless.
func barrier(ctx context.Context, cc *grpc.ClientConn, srvs []*coord.Server, path string) error {
	var r *coordpb.CreateResponse
	var err error
	for try := 0; try < 20; try++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err = coordpb.NewCoordClient(cc).Create(cctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: fmt.Sprintf("%s-%d", path, try), Data: []byte("b")}})
		cancel()
		if err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("barrier %s: %w", path, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, s := range srvs {
		if s != nil {
			if err := s.Replica().WaitApplied(wctx, r.Header.GetZxid()); err != nil {
				return fmt.Errorf("barrier %s: %w", path, err)
			}
		}
	}
	return nil
}

// startTail runs oldLeaderTail and, when it fails, records the outcome in
// res (a write acked without a quorum is Unsafe, anything else a harness
// failure) and returns false.
func (h *Harness) startTail(ctx context.Context, dir string, marker []byte, res *Result) (int, bool) {
	leader, err := h.oldLeaderTail(ctx, dir, marker)
	if errors.Is(err, errAckedWithoutQuorum) {
		res.Outcome, res.Detail = Unsafe, err.Error()
		return 0, false
	}
	if err != nil {
		res.Outcome, res.Detail = Unavailable, "harness: "+err.Error()
		return 0, false
	}
	return leader, true
}

// oldLeaderTail builds the common start: equal committed logs, then the
// leader alone appends marker at /uncommitted; every node is stopped on
// return. It returns the leader's index. On a loaded machine the leader,
// cut off from both followers, can lose its lease before the write
// reaches it; the write is then not in its log and the whole start is
// tried again (up to 4 times).
func (h *Harness) oldLeaderTail(ctx context.Context, dir string, marker []byte) (int, error) {
	var err error
	for try := 0; try < 4; try++ {
		var leader int
		var appended bool
		leader, appended, err = h.tryOldLeaderTail(ctx, dir, marker)
		if err != nil || appended {
			return leader, err
		}
		err = errors.New("the leader lost its lease before the uncommitted write reached it (4 tries)")
	}
	return 0, err
}

func (h *Harness) tryOldLeaderTail(ctx context.Context, dir string, marker []byte) (int, bool, error) {
	srvs, _, cc, err := h.cluster(ctx, dir)
	if err != nil {
		return 0, false, err
	}
	defer func() { closeAll(srvs) }()
	err = barrier(ctx, cc, srvs, "/barrier")
	cc.Close()
	if err != nil {
		return 0, false, err
	}
	leader := -1
	for i, s := range srvs {
		if s.Replica().IsLeader() {
			leader = i
		}
	}
	if leader < 0 {
		return 0, false, nil
	}
	var wg sync.WaitGroup
	for i := range srvs {
		if i != leader {
			wg.Add(1)
			go func(s *coord.Server) { defer wg.Done(); _ = s.Close() }(srvs[i])
		}
	}
	wg.Wait()
	for i := range srvs {
		if i != leader {
			srvs[i] = nil
		}
	}
	before := srvs[leader].Replica().Info().LastIndex
	if err := appendAlone(ctx, srvs[leader], "/uncommitted", marker); err != nil {
		return leader, false, err
	}
	return leader, srvs[leader].Replica().Info().LastIndex > before, nil
}

// durableTerm reads a stopped node's CurrentTerm.
func (h *Harness) durableTerm(dir string, i int) (uint64, error) {
	var t uint64
	err := h.withStores(filepath.Join(dir, h.names[i]), func(_ raft.LogStore, st raft.StableStore) error {
		var err error
		t, err = st.GetUint64([]byte("CurrentTerm"))
		return err
	})
	return t, err
}

// corrupt flips a bit inside every copy of marker in node i's raft.db.
func (h *Harness) corrupt(dir string, i int, marker []byte) error {
	if n, err := flipEvery(filepath.Join(dir, h.names[i], par.BoltFile), marker); err != nil || n == 0 {
		return fmt.Errorf("uncommitted entry not found on %s (%d, %v)", h.names[i], n, err)
	}
	return nil
}

// checkTails: a write that was never acknowledged may be absent or hold
// one of its intact values; anything else is damaged data being served.
func (h *Harness) checkTails(srvs []*coord.Server, tails map[string][][]byte) (Outcome, string) {
	for i, s := range srvs {
		if s == nil {
			continue
		}
		t, _ := s.Replica().State()
		for path, intact := range tails {
			v, _, err := t.Get(path)
			if err != nil {
				continue
			}
			ok := false
			for _, m := range intact {
				ok = ok || bytes.Equal(v, m)
			}
			if !ok {
				return Unsafe, fmt.Sprintf("%s serves a damaged uncommitted entry at %s", h.names[i], path)
			}
		}
	}
	return Correct, ""
}

func (h *Harness) runC34(ctx context.Context, c Case, dir string, res *Result) {
	res.Recoverable = true // every committed entry is intact on every node
	res.ByDesign = h.expectedStall(c)
	marker := []byte(fmt.Sprintf("PARMARK-tail1-%d-PARMARK", time.Now().UnixNano()))
	x, ok := h.startTail(ctx, dir, marker, res)
	if !ok {
		return
	}
	switch c.Variant {
	case cVarC3:
		res.Outcome, res.Detail = h.runC3(ctx, dir, x, marker)
	case cVarC4:
		res.Outcome, res.Detail = h.runC4(ctx, dir, x, marker)
	case cVarC4b:
		res.Outcome, res.Detail = h.runC4b(ctx, dir, x, marker)
	}
}

// bareRepair is a node in pre-start recovery as its peers see it: its
// PeerRepair service over its stores, no raft.
type bareRepair struct {
	st      *par.Store
	g       *grpc.Server
	entries atomic.Int64 // GetEntries calls served
	done    chan struct{}
}

func (h *Harness) serveBare(dir string, i int) (*bareRepair, error) {
	st, err := par.Open(par.Config{Dir: filepath.Join(dir, h.names[i]), Name: h.names[i]})
	if err != nil {
		return nil, err
	}
	ln, err := listenRetry(h.addrs[i])
	if err != nil {
		st.Close()
		return nil, err
	}
	b := &bareRepair{st: st, done: make(chan struct{})}
	b.g = grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, hd grpc.UnaryHandler) (any, error) {
		if strings.HasSuffix(info.FullMethod, "/GetEntries") {
			b.entries.Add(1)
		}
		return hd(ctx, req)
	}))
	parpb.RegisterPeerRepairServer(b.g, par.NewServer(st))
	go func() { defer close(b.done); _ = b.g.Serve(ln) }()
	return b, nil
}

// stop stops serving, then closes the stores.
func (b *bareRepair) stop() {
	b.g.Stop()
	<-b.done
	_ = b.st.Close()
}

func listenRetry(addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// startAsync starts node i with a longer pre-start recovery bound; the
// result arrives on the channel.
type started struct {
	s   *coord.Server
	err error
}

func (h *Harness) startAsync(dir string, i int) <-chan started {
	ch := make(chan started, 1)
	go func() {
		ln, err := listenRetry(h.addrs[i])
		if err != nil {
			ch <- started{nil, err}
			return
		}
		cfg := h.config(dir, i)
		cfg.PARRecoverTimeout = cRecoverTimeout
		s, err := startRecovering(cfg, ln)
		ch <- started{s, err}
	}()
	return ch
}

// parStatus asks node addr's PeerRepair service for its counters (served
// before raft starts).
func parStatus(ctx context.Context, addr string) (*parpb.StatusResponse, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	return parpb.NewPeerRepairClient(cc).Status(cctx, &parpb.StatusRequest{})
}

func (h *Harness) runC3(ctx context.Context, dir string, x int, marker []byte) (Outcome, string) {
	tLast, err := h.durableTerm(dir, x)
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	if err := h.corrupt(dir, x, marker); err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	srvs := make([]*coord.Server, Nodes)
	defer func() { closeAll(srvs) }()
	// X's peers, alive at t_last (PAR only: plain storage has no
	// PeerRepair; there they are simply down during the hold).
	var bare []*bareRepair
	defer func() {
		for _, b := range bare {
			b.stop()
		}
	}()
	if !h.opt.Plain {
		for i := 0; i < Nodes; i++ {
			if i == x {
				continue
			}
			b, err := h.serveBare(dir, i)
			if err != nil {
				return Unavailable, "harness: " + err.Error()
			}
			bare = append(bare, b)
		}
	}
	xs := h.startAsync(dir, x)
	var early *started
	// The hold lasts cHold from the first time X reports its faulty tail
	// and both peers have been asked (at most cHoldMax in all: a loaded
	// machine may take a while to open X's stores).
	start := time.Now()
	var held time.Time // when the hold began (zero: not yet)
	asked := func() bool {
		for _, b := range bare {
			if b.entries.Load() == 0 {
				return false
			}
		}
		return true
	}
	for early == nil || h.opt.Plain {
		now := time.Now()
		if h.opt.Plain && now.Sub(start) >= cHold || !held.IsZero() && now.Sub(held) >= cHold || now.Sub(start) >= cHoldMax {
			break
		}
		if early != nil { // plain: X runs alone for the hold, as scheduled
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case r := <-xs:
			early = &r
			continue
		case <-time.After(100 * time.Millisecond):
		}
		if h.opt.Plain {
			continue
		}
		if st, err := parStatus(ctx, h.addrs[x]); err == nil {
			if st.Truncations > 0 {
				return Unsafe, fmt.Sprintf("%s discarded its tail while both peers were at t_last %d (rule 4's term condition not applied)", h.names[x], tLast)
			}
			if held.IsZero() && st.EntriesFaulty > 0 && asked() {
				held = time.Now()
			}
		}
	}
	if !h.opt.Plain {
		if early != nil {
			if early.s == nil {
				return Unavailable, fmt.Sprintf("harness: %s did not start: %v", h.names[x], early.err)
			}
			srvs[x] = early.s
			return Unsafe, fmt.Sprintf("%s finished pre-start recovery while both peers were at t_last %d", h.names[x], tLast)
		}
		if held.IsZero() {
			return Unavailable, fmt.Sprintf("harness: in %v %s never reported its faulty tail with both peers asked", cHoldMax, h.names[x])
		}
		for _, b := range bare {
			b.stop()
		}
		bare = nil
	}
	// The term moves on: the peers start raft and elect a leader.
	others := map[int]<-chan started{}
	for i := 0; i < Nodes; i++ {
		if i != x {
			others[i] = h.startAsync(dir, i)
		}
	}
	var errs []error
	for i, ch := range others {
		r := <-ch
		srvs[i] = r.s
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if early == nil {
		r := <-xs
		srvs[x] = r.s
		if r.err != nil {
			errs = append(errs, r.err)
		}
	} else {
		srvs[x] = early.s
	}
	out, detail := h.probe(ctx, srvs)
	if out != Unsafe {
		if o, d := h.checkTails(srvs, map[string][][]byte{"/uncommitted": {marker}}); o == Unsafe {
			return o, d
		}
	}
	if out == Unavailable && len(errs) > 0 && detail == "" {
		detail = errors.Join(errs...).Error()
	}
	if out == Correct && srvs[x] != nil && srvs[x].PAR() != nil {
		st := srvs[x].PAR().Log.Stats()
		if st.Truncations == 0 {
			return Unsafe, fmt.Sprintf("%s started with its damaged tail kept", h.names[x])
		}
		detail = fmt.Sprintf("%s kept the tail for %v while its peers were at t_last %d, then discarded it (%d suffix discards)", h.names[x], cHold, tLast, st.Truncations)
	}
	return out, detail
}

func (h *Harness) runC4(ctx context.Context, dir string, x int, marker []byte) (Outcome, string) {
	y, z := (x+1)%Nodes, (x+2)%Nodes
	t, err := h.durableTerm(dir, x)
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	tz, err := h.durableTerm(dir, z)
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	// Same length as marker: it replaces marker inside an encoded command.
	marker2 := bytes.Replace(marker, []byte("-tail1-"), []byte("-tail2-"), 1)
	// X's tail entry, rewritten as Y's (m, T') with the other marker.
	var tail *raft.Log
	err = h.withStores(filepath.Join(dir, h.names[x]), func(ls raft.LogStore, _ raft.StableStore) error {
		last, err := ls.LastIndex()
		if err != nil {
			return err
		}
		var l raft.Log
		if err := ls.GetLog(last, &l); err != nil {
			return err
		}
		if !bytes.Contains(l.Data, marker) {
			return fmt.Errorf("%s's last entry %d is not the uncommitted write", h.names[x], last)
		}
		tail = &l
		return nil
	})
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	t2 := t + 1
	yEntry := &raft.Log{Index: tail.Index, Term: t2, Type: tail.Type, Data: bytes.ReplaceAll(tail.Data, marker, marker2)}
	vote := func(st raft.StableStore) error {
		return errors.Join(st.SetUint64([]byte("CurrentTerm"), t2), st.SetUint64([]byte("LastVoteTerm"), t2),
			st.Set([]byte("LastVoteCand"), []byte(h.addrs[y])))
	}
	err = h.withStores(filepath.Join(dir, h.names[y]), func(ls raft.LogStore, st raft.StableStore) error {
		last, err := ls.LastIndex()
		if err != nil {
			return err
		}
		if last != tail.Index-1 {
			return fmt.Errorf("%s's last entry is %d, want %d", h.names[y], last, tail.Index-1)
		}
		if err := vote(st); err != nil { // Y led T', voting for itself
			return err
		}
		return ls.StoreLogs([]*raft.Log{yEntry})
	})
	if err == nil {
		err = h.withStores(filepath.Join(dir, h.names[x]), func(_ raft.LogStore, st raft.StableStore) error { return vote(st) })
	}
	if err == nil {
		err = errors.Join(h.corrupt(dir, x, marker), h.corrupt(dir, y, marker2))
	}
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	srvs, startErr := h.start(dir, nil)
	defer closeAll(srvs)
	out, detail := h.probe(ctx, srvs)
	if out != Unsafe {
		// Y's entry carries marker2 at the same path.
		if o, d := h.checkTails(srvs, map[string][][]byte{"/uncommitted": {marker, marker2}}); o == Unsafe {
			return o, d
		}
	}
	if out == Unavailable && !h.opt.Plain {
		zt := uint64(0)
		if srvs[z] != nil && srvs[z].PAR() != nil {
			zt, _ = srvs[z].PAR().Stable.DurableTerm()
		}
		detail = fmt.Sprintf("stall: %s holds (%d,%d), %s holds (%d,%d), %s at term %d before the start and %d while running alone: %s",
			h.names[x], tail.Index, t, h.names[y], tail.Index, t2, h.names[z], tz, zt, strings.ReplaceAll(fmt.Sprint(startErr), "\n", "; "))
	}
	return out, detail
}

func (h *Harness) runC4b(ctx context.Context, dir string, x int, marker []byte) (Outcome, string) {
	srvs := make([]*coord.Server, Nodes)
	defer func() { closeAll(srvs) }()
	// X down: the two others elect a leader Y in T' and commit a write.
	var errs []error
	chs := map[int]<-chan started{}
	for i := 0; i < Nodes; i++ {
		if i != x {
			chs[i] = h.startAsync(dir, i)
		}
	}
	for i, ch := range chs {
		r := <-ch
		srvs[i] = r.s
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	cc, err := h.dialLeader(ctx, srvs)
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	err = barrier(ctx, cc, srvs, "/barrier2")
	cc.Close()
	if err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	y := -1
	for i, s := range srvs {
		if s != nil && s.Replica().IsLeader() {
			y = i
		}
	}
	if y < 0 {
		return Unavailable, "harness: leader lost"
	}
	z := 3 - x - y
	_ = srvs[z].Close()
	srvs[z] = nil
	marker2 := []byte(fmt.Sprintf("PARMARK-tail2-%d-PARMARK", time.Now().UnixNano()))
	if err := appendAlone(ctx, srvs[y], "/uncommitted2", marker2); err != nil {
		if errors.Is(err, errAckedWithoutQuorum) {
			return Unsafe, err.Error()
		}
		return Unavailable, "harness: " + err.Error()
	}
	_ = srvs[y].Close()
	srvs[y] = nil
	if err := errors.Join(h.corrupt(dir, x, marker), h.corrupt(dir, y, marker2)); err != nil {
		return Unavailable, "harness: " + err.Error()
	}
	all, startErr := h.start(dir, nil, func(_ int, cfg *coord.Config) { cfg.PARRecoverTimeout = cRecoverTimeout })
	copy(srvs, all)
	out, detail := h.probe(ctx, srvs)
	if out != Unsafe {
		if o, d := h.checkTails(srvs, map[string][][]byte{"/uncommitted": {marker}, "/uncommitted2": {marker2}}); o == Unsafe {
			return o, d
		}
	}
	if out == Unavailable && startErr != nil && detail == "" {
		detail = startErr.Error()
	}
	if out == Correct && !h.opt.Plain {
		var tr [Nodes]int64
		for i, s := range srvs {
			if s != nil {
				tr[i] = s.PAR().Log.Stats().Truncations
			}
		}
		if tr[x] == 0 || tr[y] == 0 {
			return Unsafe, fmt.Sprintf("a damaged tail was kept (suffix discards %v)", tr)
		}
		detail = fmt.Sprintf("%s (T) and %s (T') discarded their tails (suffix discards %v)", h.names[x], h.names[y], tr)
	}
	return out, detail
}
