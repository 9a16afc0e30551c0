package replica

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"coord/coord/tree"
	"coord/proto/coordpb"
)

// Errors a replica returns; the gRPC edge maps them to status codes.
var (
	// ErrNotLeader: the call needs the leader and this node is not it.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: no leader is known (election in progress or no quorum).
	ErrNoLeader = errors.New("no leader: the cluster has no quorum or is electing")
	// ErrUnknownOutcome: a write was proposed but leadership was lost before
	// it committed; it may or may not take effect.
	ErrUnknownOutcome = errors.New("leadership lost while the write was in flight: it may or may not have been applied")
	// ErrStopped: the replica is shutting down.
	ErrStopped = errors.New("node is stopping")
	// ErrMembership: a membership change was refused.
	ErrMembership = errors.New("membership change refused")
)

// Peer is one member of the initial cluster.
type Peer struct {
	Name    string
	Address string
}

// Config configures a Replica.
type Config struct {
	// Name is this node's raft server id.
	Name string
	// Address is this node's one address (clients, raft, peer RPCs).
	Address string
	// DataDir holds raft.db and snapshots.
	DataDir string
	// InitialCluster is bootstrapped on first start when Join is false.
	InitialCluster []Peer
	// Join: start empty and wait to be added with AddMember by a member.
	Join bool
	// HeartbeatTimeout and ElectionTimeout are raft's; LeaderLease bounds how
	// long a partitioned leader keeps believing it leads.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	LeaderLease      time.Duration
	// CommitTimeout: an idle leader sends an append this often (randomised
	// up to 2x), which is how followers learn that entries committed: it
	// bounds how stale a follower's applied state (and its watch events)
	// runs behind the leader, at the cost of idle traffic.
	CommitTimeout time.Duration
	// SnapshotThreshold: entries since the last snapshot that trigger one.
	SnapshotThreshold uint64
	// SnapshotBytes: command bytes applied since the last snapshot that
	// trigger one too (raft counts entries only; a log of large multis
	// would otherwise grow, and be replayed at every restart, far beyond
	// SnapshotThreshold's intent). Negative disables.
	SnapshotBytes int64
	// SnapshotInterval: how often raft checks the threshold.
	SnapshotInterval time.Duration
	// TrailingLogs: entries kept after a snapshot for slow followers.
	TrailingLogs uint64
	// Events receives the watch events of each applied batch (may be nil).
	Events EventSink
	// Logger; nil discards.
	Logger *slog.Logger
	// Storage overrides OpenStorage(DataDir) (tests, recovery wrappers).
	Storage *Storage
	// DialTLS, when set, wraps every raft connection this node dials in
	// TLS (the listener side is terminated before the Mux).
	DialTLS *tls.Config
}

// Defaults for Config.
//
// In hashicorp/raft a follower checks for its leader on a timer drawn in
// [HeartbeatTimeout, 2×HeartbeatTimeout) that contact does not reset, so
// noticing a dead or cut-off leader takes one to three heartbeat
// timeouts. The heartbeat timeout is half the election timeout, so an
// election-needing partition resumes writes within two election timeouts
// (with it at the election timeout, the default until 24 Nov 2026: ~2-4).
// It was kept at 1 s while the 1,000-session failover test expired
// sessions more often at 500 ms on a starved 2-core machine; re-measured
// with the session-expiry guard (session/guard.go), 500 ms expired no
// more sessions and caused no more elections than 1 s
// (docs/RELIABILITY.md, "Partitions, failover and quorum size"). The
// lease (check-quorum) may not exceed the heartbeat timeout; it stays
// 500 ms, the most that allows (a shorter lease deposes a leader whose
// follower stalls for less).
const (
	DefaultHeartbeatTimeout  = 500 * time.Millisecond
	DefaultElectionTimeout   = 1000 * time.Millisecond
	DefaultLeaderLease       = 500 * time.Millisecond
	DefaultCommitTimeout     = 5 * time.Millisecond
	DefaultSnapshotThreshold = 65536
	DefaultSnapshotBytes     = 64 << 20
	DefaultSnapshotInterval  = 30 * time.Second
	DefaultTrailingLogs      = 10240
)

func (c *Config) fill() {
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaderLease == 0 {
		c.LeaderLease = DefaultLeaderLease
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = DefaultSnapshotBytes
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with the config.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if c.Address == "" {
		errs = append(errs, errors.New("address is empty"))
	}
	if c.DataDir == "" && c.Storage == nil {
		errs = append(errs, errors.New("data dir is empty"))
	}
	if !c.Join {
		found := false
		seen := map[string]bool{}
		for _, p := range c.InitialCluster {
			if seen[p.Name] {
				errs = append(errs, fmt.Errorf("initial cluster names %q twice", p.Name))
			}
			seen[p.Name] = true
			if p.Name == c.Name {
				found = true
				if p.Address != c.Address {
					errs = append(errs, fmt.Errorf("initial cluster gives %s address %s but it listens on %s", p.Name, p.Address, c.Address))
				}
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("initial cluster does not contain this node %q", c.Name))
		}
	}
	if c.LeaderLease != 0 && c.HeartbeatTimeout != 0 && c.LeaderLease > c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("leader lease %v must not exceed heartbeat timeout %v", c.LeaderLease, c.HeartbeatTimeout))
	}
	return errors.Join(errs...)
}

// Replica is one raft member holding the znode tree.
//
// Goroutines: raft's own (stopped by Close); watchLeadership and
// snapshotBySize (started by New, stopped by Close); the read-index
// batcher (started on demand, ends when its queue is empty).
type Replica struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *fsm
	storage   *Storage
	transport *gatedTransport // transport.go
	log       *slog.Logger

	logStore  *countingLogStore
	readyTerm atomic.Uint64 // term in which this leader committed a barrier
	inflight  atomic.Int64  // proposals waiting for their commit
	nudging   atomic.Bool   // a Nudge barrier is in flight
	reads     readBatcher

	notifyCh chan bool
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   atomic.Bool
}

// New starts a replica whose raft traffic arrives on the mux.
func New(cfg Config, mux *Mux) (*Replica, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logw := &slogWriter{log: cfg.Logger}
	storage := cfg.Storage
	if storage == nil {
		var err error
		if storage, err = OpenStorage(cfg.DataDir, logw); err != nil {
			return nil, err
		}
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Output: logw, Level: hclog.Warn})
	transport := &gatedTransport{NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          streamLayer{chanListener: mux.raft, tls: cfg.DialTLS, advertise: tcpAddr(cfg.Address)},
		MaxPool:         4,
		Timeout:         10 * time.Second,
		Logger:          hlog.Named("net"),
		MaxRPCsInFlight: 2,
	})}
	r := &Replica{
		cfg:       cfg,
		fsm:       newFSM(cfg.Events),
		storage:   storage,
		transport: transport,
		log:       cfg.Logger,
		notifyCh:  make(chan bool, 16),
		stop:      make(chan struct{}),
	}
	r.reads.r = r

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLease
	rc.CommitTimeout = cfg.CommitTimeout
	rc.MaxAppendEntries = 1024
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NotifyCh = r.notifyCh
	rc.Logger = hlog

	has, err := raft.HasExistingState(storage.Log, storage.Stable, storage.Snaps)
	if err != nil {
		storage.Close()
		return nil, fmt.Errorf("read raft state in %s: %w", cfg.DataDir, err)
	}
	r.logStore = &countingLogStore{LogStore: storage.Log}
	ra, err := raft.NewRaft(rc, r.fsm, r.logStore, storage.Stable, storage.Snaps, transport)
	if err != nil {
		transport.Close()
		storage.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	r.raft = ra
	if !has && !cfg.Join {
		var servers []raft.Server
		for _, p := range cfg.InitialCluster {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.Name), Address: raft.ServerAddress(p.Address)})
		}
		if err := ra.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			r.Close()
			return nil, fmt.Errorf("bootstrap cluster: %w", err)
		}
	}
	r.wg.Add(2)
	go r.watchLeadership()
	go r.snapshotBySize()
	return r, nil
}

// watchLeadership forgets read readiness when leadership changes.
func (r *Replica) watchLeadership() {
	defer r.wg.Done()
	for {
		select {
		case leader := <-r.notifyCh:
			r.readyTerm.Store(0)
			r.log.Info("leadership changed", "leader", leader, "term", r.raft.CurrentTerm())
		case <-r.stop:
			return
		}
	}
}

// snapshotBySize takes a snapshot once SnapshotBytes of commands have
// been applied since the last one (checked every second).
func (r *Replica) snapshotBySize() {
	defer r.wg.Done()
	if r.cfg.SnapshotBytes < 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		if r.fsm.sinceSnap.Load() < r.cfg.SnapshotBytes {
			continue
		}
		if err := r.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			r.log.Warn("snapshot by size failed", "err", err)
		}
	}
}

// Close stops raft and releases storage.
func (r *Replica) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(r.stop)
	err := r.raft.Shutdown().Error()
	r.wg.Wait()
	r.transport.Close()
	// No heartbeat may still be inside raft when the stores close (it
	// would persist the term into a closed store and raft would panic):
	// transport.go.
	r.transport.closeHeartbeats()
	if cerr := r.storage.Close(); err == nil {
		err = cerr
	}
	return err
}

// State returns the current immutable tree and the index it reflects.
func (r *Replica) State() (*tree.Tree, uint64) {
	// Load applied first: the tree published before it reflects at least it.
	applied := r.fsm.applied.Load()
	return r.fsm.state.Load(), applied
}

// Applied is the highest applied index.
func (r *Replica) Applied() uint64 { return r.fsm.applied.Load() }

// WaitApplied blocks until index has been applied locally.
func (r *Replica) WaitApplied(ctx context.Context, index uint64) error {
	ch := r.fsm.waiters.wait(index)
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for zxid %d (applied %d): %w", index, r.Applied(), ctx.Err())
	case <-r.stop:
		return ErrStopped
	}
}

// IsLeader reports whether this node currently believes it leads.
func (r *Replica) IsLeader() bool { return r.raft.State() == raft.Leader }

// Leader returns the leader's name and address ("" when unknown).
func (r *Replica) Leader() (name, addr string) {
	a, id := r.raft.LeaderWithID()
	return string(id), string(a)
}

// Propose replicates encoded command bytes; only on the leader. The result
// is the FSM's ApplyResult.
func (r *Replica) Propose(ctx context.Context, data []byte) (*coordpb.ApplyResult, error) {
	if r.closed.Load() {
		return nil, ErrStopped
	}
	if r.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	r.inflight.Add(1)
	f := r.raft.Apply(data, timeout)
	err := awaitFuture(ctx, f)
	r.inflight.Add(-1)
	if err != nil {
		return nil, r.mapRaftErr(err)
	}
	res, ok := f.Response().(*coordpb.ApplyResult)
	if !ok || res == nil {
		return nil, fmt.Errorf("propose: unexpected apply response %T", f.Response())
	}
	return res, nil
}

// ProposeMany replicates several encoded commands (leader only), handing
// them to raft together so they share log appends, and returns one result
// or error per command, in order. One goroutine waits for all the futures
// instead of one per command.
func (r *Replica) ProposeMany(ctx context.Context, cmds [][]byte) ([]*coordpb.ApplyResult, []error) {
	res := make([]*coordpb.ApplyResult, len(cmds))
	errs := make([]error, len(cmds))
	fail := func(err error) ([]*coordpb.ApplyResult, []error) {
		for i := range errs {
			if errs[i] == nil && res[i] == nil {
				errs[i] = err
			}
		}
		return res, errs
	}
	if r.closed.Load() {
		return fail(ErrStopped)
	}
	if r.raft.State() != raft.Leader {
		return fail(ErrNotLeader)
	}
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	futures := make([]raft.ApplyFuture, len(cmds))
	r.inflight.Add(int64(len(cmds)))
	defer r.inflight.Add(-int64(len(cmds)))
	for i, c := range cmds {
		futures[i] = r.raft.Apply(c, timeout)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i, f := range futures {
			if err := f.Error(); err != nil {
				errs[i] = r.mapRaftErr(err)
				continue
			}
			out, ok := f.Response().(*coordpb.ApplyResult)
			if !ok || out == nil {
				errs[i] = fmt.Errorf("propose: unexpected apply response %T", f.Response())
				continue
			}
			res[i] = out
		}
	}()
	select {
	case <-done:
		return res, errs
	case <-ctx.Done():
		// The waiter goroutine ends when raft answers the remaining
		// futures; their results are dropped.
		out := make([]error, len(cmds))
		for i := range out {
			out[i] = ctx.Err()
		}
		return make([]*coordpb.ApplyResult, len(cmds)), out
	}
}

// awaitFuture waits for a raft future or the context. raft futures have no
// channel, so the wait runs on a helper goroutine that ends when raft
// answers (raft answers every future, at the latest on shutdown).
func awaitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Replica) mapRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrAbortedByRestore):
		return ErrUnknownOutcome
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrStopped
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// Nudge tells followers promptly what has committed when writes are
// sparse: hashicorp/raft sends the commit index only with the next
// append, which an idle leader sends after CommitTimeout..2×CommitTimeout.
// Nudge appends a barrier entry (carrying the commit index) when no
// proposal is in flight; under load the next write does the same for
// free. At most one nudge runs at a time.
func (r *Replica) Nudge() {
	if r.inflight.Load() != 0 || !r.nudging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.nudging.Store(false)
		if r.raft.State() == raft.Leader {
			_ = r.raft.Barrier(r.cfg.ElectionTimeout).Error()
		}
	}()
}

// ReadIndex returns an index at which a linearizable read may be served
// once it is applied locally. Only the leader answers; concurrent callers
// share one leadership check.
func (r *Replica) ReadIndex(ctx context.Context) (uint64, error) {
	if r.closed.Load() {
		return 0, ErrStopped
	}
	if r.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	return r.reads.get(ctx)
}

// readBatcher coalesces read-index requests: one leadership check (a
// heartbeat round) answers every request that arrived before it started.
type readBatcher struct {
	r       *Replica
	mu      sync.Mutex
	waiting []chan readResult
	running bool
}

type readResult struct {
	index uint64
	err   error
}

func (b *readBatcher) get(ctx context.Context) (uint64, error) {
	ch := make(chan readResult, 1)
	b.mu.Lock()
	b.waiting = append(b.waiting, ch)
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case res := <-ch:
		return res.index, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (b *readBatcher) run() {
	for {
		b.mu.Lock()
		batch := b.waiting
		b.waiting = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		idx, err := b.r.confirmLeadership()
		for _, ch := range batch {
			ch <- readResult{idx, err}
		}
	}
}

// confirmLeadership returns the commit index after proving this node still
// leads. A new leader first commits a barrier in its term: until it does,
// its commit index may trail entries the previous leader acknowledged.
func (r *Replica) confirmLeadership() (uint64, error) {
	term := r.raft.CurrentTerm()
	if r.readyTerm.Load() != term {
		if err := r.raft.Barrier(r.cfg.ElectionTimeout).Error(); err != nil {
			return 0, r.mapRaftErr(err)
		}
		r.readyTerm.Store(term)
	}
	idx := r.lastStateChange(r.raft.CommitIndex())
	if err := r.raft.VerifyLeader().Error(); err != nil {
		return 0, r.mapRaftErr(err)
	}
	return idx, nil
}

// lastStateChange returns the highest index <= idx of an entry the FSM
// sees (a command or a configuration). Raft keeps no-ops and barriers from
// the FSM, so the FSM's applied index never reaches an index that ends in
// them; waiting for the last entry that changes state is equivalent.
// Entries compacted into a snapshot are applied already.
func (r *Replica) lastStateChange(idx uint64) uint64 {
	var l raft.Log
	for i := idx; i > 0; i-- {
		if err := r.storage.Log.GetLog(i, &l); err != nil {
			return i // compacted: at or below the snapshot, hence applied
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return 0
}

// Barrier waits until everything committed before the call is applied on
// this node (leader only).
func (r *Replica) Barrier(ctx context.Context) error {
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := awaitFuture(ctx, r.raft.Barrier(timeout)); err != nil {
		return r.mapRaftErr(err)
	}
	return nil
}

// Member is one server in the raft configuration.
type Member struct {
	Name    string
	Address string
	Voter   bool
	Leader  bool
}

// Members returns the current configuration, sorted by name.
func (r *Replica) Members() ([]Member, error) {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, r.mapRaftErr(err)
	}
	_, leaderID := r.raft.LeaderWithID()
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{
			Name:    string(s.ID),
			Address: string(s.Address),
			Voter:   s.Suffrage == raft.Voter,
			Leader:  s.ID == leaderID,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// AddMember adds a voter (or non-voter) on the leader.
func (r *Replica) AddMember(ctx context.Context, name, addr string, nonVoter bool) error {
	if r.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if name == "" || addr == "" {
		return fmt.Errorf("%w: name and address are required", ErrMembership)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: address %q: %v", ErrMembership, addr, err)
	}
	members, err := r.Members()
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.Name == name && m.Address != addr {
			return fmt.Errorf("%w: %s is already a member at %s", ErrMembership, name, m.Address)
		}
		if m.Address == addr && m.Name != name {
			return fmt.Errorf("%w: address %s already belongs to %s", ErrMembership, addr, m.Name)
		}
	}
	var f raft.IndexFuture
	if nonVoter {
		f = r.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(addr), 0, 0)
	} else {
		f = r.raft.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, 0)
	}
	if err := awaitFuture(ctx, f); err != nil {
		return r.mapRaftErr(err)
	}
	return nil
}

// RemoveMember removes a server on the leader.
func (r *Replica) RemoveMember(ctx context.Context, name string) error {
	if _, err := r.memberOnLeader(name); err != nil {
		return err
	}
	if err := awaitFuture(ctx, r.raft.RemoveServer(raft.ServerID(name), 0, 0)); err != nil {
		return r.mapRaftErr(err)
	}
	return nil
}

// TransferLeadership hands leadership from this node (the leader) to the
// voter named name (raft's leadership transfer: the target is caught up,
// then told to start an election at once, bypassing pre-vote and leader
// stickiness). It returns once the transfer ended; the new leader's term
// is higher than this one's.
func (r *Replica) TransferLeadership(ctx context.Context, name string) error {
	m, err := r.memberOnLeader(name)
	if err != nil {
		return err
	}
	if !m.Voter || m.Leader {
		return fmt.Errorf("%w: %s cannot take leadership (voter %v, leader %v)", ErrMembership, name, m.Voter, m.Leader)
	}
	if err := awaitFuture(ctx, r.raft.LeadershipTransferToServer(raft.ServerID(m.Name), raft.ServerAddress(m.Address))); err != nil {
		return r.mapRaftErr(err)
	}
	return nil
}

// memberOnLeader returns the member named name, on the leader only
// (ErrNotLeader elsewhere; ErrMembership if there is none).
func (r *Replica) memberOnLeader(name string) (Member, error) {
	if r.raft.State() != raft.Leader {
		return Member{}, ErrNotLeader
	}
	members, err := r.Members()
	if err != nil {
		return Member{}, err
	}
	for _, m := range members {
		if m.Name == name {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("%w: %s is not a member", ErrMembership, name)
}

// Info is a point-in-time view for status commands and metrics.
type Info struct {
	Name         string
	State        string
	LeaderName   string
	LeaderAddr   string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastIndex    uint64
	Znodes       int
}

// Term is raft's current term.
func (r *Replica) Term() uint64 { return r.raft.CurrentTerm() }

// Info reports the replica's raft state.
func (r *Replica) Info() Info {
	la, lid := r.raft.LeaderWithID()
	t, applied := r.State()
	return Info{
		Name:         r.cfg.Name,
		State:        r.raft.State().String(),
		LeaderName:   string(lid),
		LeaderAddr:   string(la),
		Term:         r.Term(),
		CommitIndex:  r.raft.CommitIndex(),
		AppliedIndex: applied,
		LastIndex:    r.raft.LastIndex(),
		Znodes:       t.Len(),
	}
}

// countingLogStore counts raft's log appends (each one durable write: a
// bbolt commit with its fsyncs) and the entries they carry, to show how
// well group commit works.
type countingLogStore struct {
	raft.LogStore
	appends atomic.Uint64
	entries atomic.Uint64
}

func (c *countingLogStore) StoreLog(l *raft.Log) error {
	c.appends.Add(1)
	c.entries.Add(1)
	return c.LogStore.StoreLog(l)
}

func (c *countingLogStore) StoreLogs(logs []*raft.Log) error {
	c.appends.Add(1)
	c.entries.Add(uint64(len(logs)))
	return c.LogStore.StoreLogs(logs)
}

// LogAppends reports how many durable log appends this node has made and
// how many entries they carried (entries/appends is the group-commit
// factor).
func (r *Replica) LogAppends() (appends, entries uint64) {
	return r.logStore.appends.Load(), r.logStore.entries.Load()
}

// SnapshotStats reports how many FSM snapshots this node has taken and
// the time their Persist took in all (writing the tree to the snapshot
// file and closing it, which syncs it).
func (r *Replica) SnapshotStats() (taken int64, persist time.Duration) {
	return r.fsm.snapshots.Load(), time.Duration(r.fsm.persistNanos.Load())
}

// LastSnapshotIndex is the index of this node's latest snapshot (0: none).
func (r *Replica) LastSnapshotIndex() uint64 {
	idx, _ := strconv.ParseUint(r.raft.Stats()["last_snapshot_index"], 10, 64)
	return idx
}

// TakeSnapshot asks raft for a snapshot now (tests, operators).
func (r *Replica) TakeSnapshot() error { return r.raft.Snapshot().Error() }

// slogWriter adapts hclog's text output to slog (raft and its stores log
// through io.Writers).
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := string(p)
	for len(msg) > 0 && (msg[len(msg)-1] == '\n') {
		msg = msg[:len(msg)-1]
	}
	w.log.Warn(msg, "component", "raft")
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
