package coord

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/metadata"

	"coord/coord/replica"
	"coord/coord/rpc"
	"coord/coord/tree"
	"coord/proto/coordpb"
	"coord/session"
)

// sessionTick is how often the leader looks for expired sessions and a
// follower relays the keepalives it received.
const sessionTick = 100 * time.Millisecond

// sessionManager is the I/O half of sessions: the leader's deadline table
// (session.Table, with its expiry guard) fed by keepalives, and the loop
// that proposes expiry.
type sessionManager struct {
	s *Server

	mu        sync.Mutex
	table     *session.Table
	leading   bool
	syncedAt  uint64              // tree zxid the table was last synced with
	relay     map[uint64]struct{} // keepalives a follower has yet to relay
	expiring  map[uint64]bool     // close proposals in flight
	ttlBusy   bool                // a TTL expiry proposal is in flight
	kaSync    rounds              // follower keepalives' shared read-index rounds
	kaRelay   rounds              // follower keepalives relayed to the leader
	closeWait sync.WaitGroup

	guard        session.GuardStatus // at the last tick (under mu)
	holdFrom     time.Time           // when the guard started holding (zero: not)
	leadingSince time.Time           // when this node's table was last Reset (under mu)
	leadingTerm  uint64              // the raft term of that Reset (under mu)
	expired      atomic.Uint64       // sessions this node ended as leader

	// Attribution of every expiry decision and every keepalive answered
	// "session expired" (coordd runs at warn in the harnesses): a counter
	// by reason, and warn lines, at most logBudget a tick (the rest are
	// counted and summed up on the next tick).
	expiries   *prometheus.CounterVec // by reason and group kind
	kaExpired  *prometheus.CounterVec // keepalives answered "expired", by reason
	kaLate     prometheus.Counter     // found only after a read-index round
	logLeft    int                    // warn lines left this tick (under mu)
	suppressed map[string]int         // reasons not logged this tick (under mu)

	// relayBlocked, when set (tests: sessions_export_test.go), makes every relay
	// fail as if the leader could not be reached.
	relayBlocked atomic.Bool
	// ticksPaused, when set (tests), makes the session loop skip its ticks,
	// as a starved loop does.
	ticksPaused atomic.Bool
}

// relayFromKey is the gRPC metadata a follower's relay names itself by, so
// the leader's guard measures intake per follower (session.TouchVia).
const relayFromKey = "coord-relay-from"

func newSessionManager(s *Server) *sessionManager {
	g := session.DefaultGuard(sessionTick)
	if s.cfg.SessionGuard != nil {
		g = *s.cfg.SessionGuard
	}
	return &sessionManager{s: s, table: session.NewGuardedTable(g), relay: map[uint64]struct{}{}, expiring: map[uint64]bool{},
		kaSync: rounds{run: s.syncRound}, kaRelay: rounds{run: s.relayRound},
		expiries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "coord_session_expiry_decisions_total",
			Help: "Sessions this node, as leader, decided to expire (the close proposed), by reason (timeout: no keepalive for its timeout of its group's session time; bound: the guard's hard bound) and group (where its last keepalive came from: leader, relay; unheard: taken over and not heard yet; opened: opened since and not heard yet)."},
			[]string{"reason", "group"}),
		kaExpired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "coord_session_keepalive_expired_total",
			Help: "Keepalives this node answered \"session expired\", by reason (not_in_state: the applied state has no such session; expiring: its close is in flight; due_timeout, due_bound: the leader's table says it is due; leader_refused: a follower's relay came back unknown)."},
			[]string{"reason"}),
		kaLate: prometheus.NewCounter(prometheus.CounterOpts{Name: "coord_session_keepalive_unapplied_total",
			Help: "Keepalives of sessions missing from this leader's applied state at first look and found after a read-index round (a new leader not caught up): before that check they were answered \"session expired\"."}),
		logLeft: expiryLogBudget, suppressed: map[string]int{}}
}

// expiryLogBudget is the most expiry / refusal warn lines per session
// tick.
const expiryLogBudget = 20

// groupKind is a guard group's metric label: a follower's name is folded
// into "relay".
func groupKind(g string) string {
	switch g {
	case "leader", "unheard", "opened":
		return g
	}
	return "relay"
}

// logExpiry logs one expiry decision or refusal at warn, within the
// tick's budget (m.mu held).
func (m *sessionManager) logExpiry(msg, reason string, id uint64, x *session.Explanation) {
	if m.s.log == nil {
		return // a bare manager (internal tests)
	}
	if m.logLeft <= 0 {
		m.suppressed[msg+" ("+reason+")"]++
		return
	}
	m.logLeft--
	args := []any{"session", fmt.Sprintf("%#x", id), "reason", reason}
	if x != nil {
		args = append(args, "over", x.Over.Round(time.Millisecond), "group", x.Group, "group_sessions", x.GroupSessions,
			"group_intake", fmt.Sprintf("%.2f", x.GroupIntake), "group_held", x.GroupHeld,
			"since_heard", x.SinceHeard.Round(time.Millisecond), "timeout", x.Timeout,
			"intake", fmt.Sprintf("%.2f", x.Status.Intake), "holding", x.Status.Holding, "sources_held", x.Status.SourcesHeld,
			"paused_for", x.Status.PausedFor.Round(time.Millisecond), "held_for", x.Status.HeldFor.Round(time.Millisecond),
			"leading_for", time.Since(m.leadingSince).Round(time.Millisecond))
	}
	m.s.log.Warn(msg, args...)
}

// flushExpiryLog reports what the last tick's budget left out and renews
// it (m.mu held).
func (m *sessionManager) flushExpiryLog() {
	m.logLeft = expiryLogBudget
	if len(m.suppressed) == 0 {
		return
	}
	args := make([]any, 0, 2*len(m.suppressed))
	for k, n := range m.suppressed {
		args = append(args, k, n)
	}
	clear(m.suppressed)
	m.s.log.Warn("more session expiries / expired answers not logged in the last tick", args...)
}

// unapplied counts (and logs) a keepalive of a session the leader's
// applied state lacked at first look and had after a read-index round.
func (m *sessionManager) unapplied(id uint64) {
	m.kaLate.Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logExpiry("keepalive of a session not applied on this leader yet: answered after a read-index round", "unapplied", id, nil)
}

// refused counts (and logs) a keepalive answered "session expired" for
// reason; x explains a "due" one (m.mu held).
func (m *sessionManager) refused(reason string, id uint64, x *session.Explanation) {
	if x != nil {
		reason = "due_" + x.Reason
	}
	m.kaExpired.WithLabelValues(reason).Inc()
	m.logExpiry("keepalive answered session expired", reason, id, x)
}

// collectors are the session guard's metrics.
func (m *sessionManager) collectors() []prometheus.Collector {
	status := func(f func(session.GuardStatus) float64) func() float64 {
		return func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			if !m.leading {
				return 0
			}
			return f(m.guard)
		}
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_session_guard_holding", Help: "1 while the leader's expiry guard holds every session's timeout (keepalive intake collapsed, or the session loop paused)."},
			status(func(g session.GuardStatus) float64 { return b2f(g.Holding) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_session_guard_sources_held", Help: "Keepalive sources (the leader's own, each follower's relay) whose sessions' timeouts the guard holds."},
			status(func(g session.GuardStatus) float64 { return float64(g.SourcesHeld) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_session_keepalive_intake_ratio", Help: "Keepalives the leader counted over the guard's window / those its live sessions send (-1: too few to tell)."},
			status(func(g session.GuardStatus) float64 { return g.Intake })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_session_expiries_deferred", Help: "Sessions past their timeout that the expiry guard holds."},
			status(func(g session.GuardStatus) float64 { return float64(g.Deferred) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "coord_session_expiries_rate_limited", Help: "Due sessions the expiry rate limit held back at the last tick."},
			status(func(g session.GuardStatus) float64 { return float64(g.Limited) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_session_guard_held_seconds", Help: "Time the guard held every session's timeout since this node became leader."},
			status(func(g session.GuardStatus) float64 { return g.HeldFor.Seconds() })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "coord_session_expiries_total", Help: "Sessions this node expired as leader."},
			func() float64 { return float64(m.expired.Load()) }),
		m.expiries, m.kaExpired, m.kaLate,
	}
}

func sessionInfos(t *tree.Tree) []session.Info {
	ss := t.Sessions()
	out := make([]session.Info, len(ss))
	for i, x := range ss {
		out[i] = session.Info{ID: x.ID, Timeout: time.Duration(x.TimeoutMs) * time.Millisecond}
	}
	return out
}

// run is the session loop; it returns when stop closes.
func (m *sessionManager) run(stop <-chan struct{}) {
	t := time.NewTicker(sessionTick)
	defer t.Stop()
	defer m.closeWait.Wait()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if !m.ticksPaused.Load() {
				m.tick(stop)
			}
		}
	}
}

func (m *sessionManager) tick(stop <-chan struct{}) {
	now := time.Now()
	m.mu.Lock()
	m.flushExpiryLog()
	m.mu.Unlock()
	if !m.s.rep.IsLeader() {
		m.mu.Lock()
		if m.leading && !m.holdFrom.IsZero() {
			m.s.log.Info("session expiry hold ended: no longer leader", "held_for", now.Sub(m.holdFrom).Round(time.Millisecond))
			m.holdFrom = time.Time{}
		}
		m.leading = false
		ids := make([]uint64, 0, len(m.relay))
		for id := range m.relay {
			ids = append(ids, id)
		}
		clear(m.relay)
		m.mu.Unlock()
		if len(ids) > 0 && !m.relayKeepAlives(ids) {
			// This node already told those clients "alive": a relay that
			// failed (no leader yet, a slow or new leader) is retried on
			// the next tick, or their sessions would expire while their
			// keepalives succeed.
			m.mu.Lock()
			for _, id := range ids {
				m.relay[id] = struct{}{}
			}
			m.mu.Unlock()
		}
		return
	}
	st, _ := m.s.rep.State()
	term := m.s.rep.Term() // every tick: not Info (leader lookup, tree size)
	m.mu.Lock()
	if !m.leading || term != m.leadingTerm {
		// New leader: every session gets a grace period of its own
		// timeout. Also when this node lost and regained leadership
		// between two ticks (a starved loop can tick seconds late): the
		// table is the old term's, and keepalives went elsewhere
		// meanwhile.
		if m.leading {
			m.s.log.Warn("session table reset: leadership lost and regained between two session ticks", "term", term, "previous_term", m.leadingTerm)
		}
		m.table.Reset(sessionInfos(st), now)
		m.leading = true
		m.leadingSince, m.leadingTerm = now, term
		m.holdFrom = time.Time{}
		m.syncedAt = st.Zxid()
	} else if st.Zxid() != m.syncedAt {
		m.table.Sync(sessionInfos(st), now)
		m.syncedAt = st.Zxid()
	}
	m.table.Advance(now)
	expire := m.table.Expire(now, func(id uint64) bool { return m.expiring[id] })
	for _, id := range expire {
		m.expiring[id] = true
	}
	m.guard = m.table.Status()
	m.logGuard(now)
	m.mu.Unlock()
	for _, id := range expire {
		m.closeWait.Add(1)
		go m.expire(id, stop)
	}
	m.expireTTL(st, now, stop)
}

// logGuard reports when the expiry guard starts and stops holding
// (m.mu held).
func (m *sessionManager) logGuard(now time.Time) {
	g := m.guard
	held := g.Holding || g.SourcesHeld > 0
	switch {
	case held && m.holdFrom.IsZero():
		m.holdFrom = now
		m.s.log.Warn("session expiry held: keepalive intake collapsed or the session loop paused",
			"intake", fmt.Sprintf("%.2f", g.Intake), "all", g.Holding, "paused", g.Paused,
			"sources_held", g.SourcesHeld, "deferred", g.Deferred)
	case !held && !m.holdFrom.IsZero():
		m.s.log.Info("session expiry released", "held_for", now.Sub(m.holdFrom).Round(time.Millisecond),
			"intake", fmt.Sprintf("%.2f", g.Intake), "deferred", g.Deferred)
		m.holdFrom = time.Time{}
	}
}

// ttlBatch bounds how many TTL nodes one ExpireTTL entry deletes.
const ttlBatch = 1000

// expireTTL proposes deleting TTL nodes the leader's clock says expired.
// The entry names each node's mzxid, so a node modified meanwhile
// survives; a failed proposal is simply retried on a later tick.
func (m *sessionManager) expireTTL(st *tree.Tree, now time.Time, stop <-chan struct{}) {
	m.mu.Lock()
	if m.ttlBusy {
		m.mu.Unlock()
		return
	}
	nodes := st.ExpiredTTL(now.UnixMilli(), ttlBatch)
	if len(nodes) == 0 {
		m.mu.Unlock()
		return
	}
	m.ttlBusy = true
	m.mu.Unlock()
	m.closeWait.Add(1)
	go func() {
		defer m.closeWait.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := m.s.propose(ctx, &coordpb.Command{Cmd: &coordpb.Command_ExpireTtl{ExpireTtl: &coordpb.ExpireTTL{Nodes: nodes}}}); err != nil {
			m.s.log.Warn("TTL expiry not committed; will retry", "nodes", len(nodes), "err", err)
		}
		m.mu.Lock()
		m.ttlBusy = false
		m.mu.Unlock()
	}()
}

// expire commits the end of one session: ONE raft entry closes it and
// deletes its ephemerals.
func (m *sessionManager) expire(id uint64, stop <-chan struct{}) {
	defer m.closeWait.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Re-check just before proposing: a keepalive may have arrived since
	// the tick listed it (the rate limit can delay it by a tick or more).
	m.mu.Lock()
	x, due := m.table.Explain(id, time.Now())
	due = due && m.leading
	if !due {
		delete(m.expiring, id)
	} else {
		// Every expiry decision is attributable (the guard's state for
		// its group at this moment).
		m.expiries.WithLabelValues(x.Reason, groupKind(x.Group)).Inc()
		m.logExpiry("session expiry proposed", x.Reason, id, &x)
	}
	m.mu.Unlock()
	if !due {
		return
	}
	res, err := m.s.propose(ctx, &coordpb.Command{Cmd: &coordpb.Command_CloseSession{CloseSession: &coordpb.CloseSession{SessionId: id, Expired: true}}})
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.expiring, id)
	if err != nil {
		m.s.log.Warn("session expiry not committed; will retry", "session", id, "err", err)
		return
	}
	if res.Code == coordpb.ErrorCode_OK || res.Code == coordpb.ErrorCode_SESSION_EXPIRED {
		m.table.Remove(id)
		m.expired.Add(1)
		m.s.log.Info("session expired", "session", fmt.Sprintf("%#x", id))
	}
}

// relayTimeout bounds one relay of keepalives to the leader.
const relayTimeout = 10 * sessionTick

// relayKeepAlives sends the keepalives a follower answered to the leader;
// false if they did not arrive (the caller keeps them for the next tick).
func (m *sessionManager) relayKeepAlives(ids []uint64) bool {
	if m.relayBlocked.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), relayTimeout)
	defer cancel()
	_, addr := m.s.rep.Leader()
	if addr == "" {
		return false
	}
	// The leader measures keepalive intake per follower (the expiry
	// guard): name this node.
	ctx = metadata.AppendToOutgoingContext(ctx, relayFromKey, m.s.cfg.Name)
	c, err := m.s.peers.get(addr)
	if err != nil {
		return false
	}
	if _, err := c.KeepAlives(ctx, &coordpb.KeepAlivesRequest{SessionIds: ids}); err != nil {
		m.s.log.Debug("relay keepalives", "err", err)
		return false
	}
	return true
}

// touch records a keepalive on the leader, received through via
// (session.Direct, or the relaying follower's name).
func (m *sessionManager) touch(id uint64, via string, t *tree.Tree) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.table.TouchVia(id, via, time.Now())
	if errors.Is(err, session.ErrUnknown) {
		// Opened moments ago and not synced yet.
		if ms, ok := t.SessionTimeout(id); ok {
			now := time.Now()
			m.table.Add(session.Info{ID: id, Timeout: time.Duration(ms) * time.Millisecond}, now)
			m.table.TouchVia(id, via, now)
			return nil
		}
	}
	return err
}

func newSessionID() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		if id := binary.BigEndian.Uint64(b[:]); id != 0 {
			return id, nil
		}
	}
}

// OpenSession implements rpc.Backend.
func (s *Server) OpenSession(ctx context.Context, timeoutMs int64) (uint64, int64, uint64, error) {
	if timeoutMs < 0 {
		return 0, 0, 0, fmt.Errorf("%w: negative session timeout %d ms", tree.ErrInvalidArgument, timeoutMs)
	}
	timeout := s.cfg.Sessions.Negotiate(time.Duration(timeoutMs) * time.Millisecond)
	for attempt := 0; attempt < 3; attempt++ {
		id, err := newSessionID()
		if err != nil {
			return 0, 0, 0, err
		}
		// The session belongs to its caller (see tree.Session.Owner).
		owner := tree.SessionOwner(rpc.CallerFrom(ctx))
		res, err := s.Write(ctx, &coordpb.Command{Cmd: &coordpb.Command_CreateSession{CreateSession: &coordpb.CreateSession{SessionId: id, TimeoutMs: timeout.Milliseconds(), Owner: owner}}})
		if err != nil {
			return 0, 0, 0, err
		}
		if res.Code == coordpb.ErrorCode_INVALID_ARGUMENT {
			continue // id collision: draw again
		}
		if res.Code != coordpb.ErrorCode_OK {
			return 0, 0, 0, tree.ErrorFromCode(res.Code, res.Message)
		}
		// No wait for this node to apply the session: the client's writes
		// (an ephemeral create) go to the leader, which has it; a
		// keepalive here syncs first; a local read carries the zxid
		// returned below as its min_zxid. Waiting would cost a follower up
		// to two CommitTimeouts per session.
		return id, timeout.Milliseconds(), res.Zxid, nil
	}
	return 0, 0, 0, errors.New("open session: could not draw a unique session id")
}

// KeepAlive implements rpc.Backend.
func (s *Server) KeepAlive(ctx context.Context, id uint64) (int64, error) {
	if !s.rep.IsLeader() {
		if timeout, handled, err := s.followerKeepAlive(ctx, id); handled {
			return timeout, err // through the leader: keepalive_batch.go
		}
		// A follower's state may lag either way (a session just opened,
		// or one the leader just expired): answer from a linearizable
		// point, so a client never hears "alive" after its session ended.
		if _, err := s.sess.kaSync.join(ctx); err != nil {
			return 0, err
		}
	}
	t, _ := s.rep.State()
	leader := s.rep.IsLeader()
	if leader {
		t = s.leaderSessionState(t)
	}
	// Only the owner (or a superuser) keeps a session alive; a follower
	// checks before it relays, so the relay carries checked ids only.
	timeout, err := t.CheckSession(id, rpc.CallerFrom(ctx))
	if errors.Is(err, tree.ErrSessionExpired) && leader {
		// A leader's applied state may lack a session that exists: a new
		// leader applies what the previous one committed only once an
		// entry of its own term commits, and until then it would tell a
		// live client its session expired (seen during a 10,000-session
		// open with leader changes). Answer from a linearizable point,
		// as a follower does.
		if _, serr := s.sess.kaSync.join(ctx); serr != nil {
			return 0, serr
		}
		t, _ = s.rep.State()
		t = s.leaderSessionState(t)
		timeout, err = t.CheckSession(id, rpc.CallerFrom(ctx))
		if err == nil {
			s.sess.unapplied(id)
		}
	}
	if err != nil {
		if errors.Is(err, tree.ErrSessionExpired) {
			s.sess.mu.Lock()
			s.sess.refused("not_in_state", id, nil)
			s.sess.mu.Unlock()
		}
		return 0, err
	}
	if s.rep.IsLeader() {
		if err := s.sess.touch(id, session.Direct, t); err != nil {
			return 0, fmt.Errorf("%w: session %#x", tree.ErrSessionExpired, id)
		}
		return timeout, nil
	}
	s.sess.mu.Lock()
	s.sess.relay[id] = struct{}{}
	s.sess.mu.Unlock()
	return timeout, nil
}

// KeepAlivesLocal implements rpc.Backend: keepalives relayed by followers.
func (s *Server) KeepAlivesLocal(ctx context.Context, ids []uint64) ([]uint64, error) {
	if !s.rep.IsLeader() {
		return nil, replica.ErrNotLeader
	}
	t, _ := s.rep.State()
	t = s.leaderSessionState(t)
	via := "relay" // a follower that does not name itself
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(relayFromKey); len(v) > 0 && v[0] != "" {
			via = v[0]
		}
	}
	var unknown, unapplied []uint64
	for _, id := range ids {
		if err := s.sess.touchLive(id, via, t, false); errors.Is(err, errNotInState) {
			unapplied = append(unapplied, id)
		} else if err != nil {
			unknown = append(unknown, id)
		}
	}
	if len(unapplied) > 0 {
		// Not in this leader's applied state: maybe not applied yet (a
		// new leader, see KeepAlive). Look again from a linearizable
		// point; an error fails the relay (the follower's clients hear
		// an error and retry, never "expired").
		if _, err := s.sess.kaSync.join(ctx); err != nil {
			return nil, err
		}
		t, _ = s.rep.State()
		t = s.leaderSessionState(t)
		for _, id := range unapplied {
			if err := s.sess.touchLive(id, via, t, true); err != nil {
				unknown = append(unknown, id)
			} else {
				s.sess.unapplied(id)
			}
		}
	}
	return unknown, nil
}

// errNotInState: the leader's applied state has no such session.
var errNotInState = fmt.Errorf("%w: not in the applied state", session.ErrUnknown)

// testHookLeaderState, when set (tests), replaces the applied state a
// leader checks keepalives against (node name, state).
var testHookLeaderState atomic.Pointer[func(string, *tree.Tree) *tree.Tree]

// leaderSessionState is the state a leader checks a keepalive against:
// t, or what the test hook makes of it.
func (s *Server) leaderSessionState(t *tree.Tree) *tree.Tree {
	if h := testHookLeaderState.Load(); h != nil {
		return (*h)(s.cfg.Name, t)
	}
	return t
}

// CloseSession implements rpc.Backend.
func (s *Server) CloseSession(ctx context.Context, id uint64) (uint64, error) {
	// The caller rides in the command: apply checks it owns the session.
	res, err := s.Write(ctx, &coordpb.Command{Cmd: &coordpb.Command_CloseSession{CloseSession: &coordpb.CloseSession{SessionId: id, Caller: rpc.CallerFrom(ctx)}}})
	if err != nil {
		return 0, err
	}
	if res.Code != coordpb.ErrorCode_OK {
		return 0, tree.ErrorFromCode(res.Code, res.Message)
	}
	return res.Zxid, nil
}
