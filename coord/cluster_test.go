package coord_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/coord"
	"coord/coord/coordtest"
	"coord/proto/coordpb"
	"coord/session"
)

func create(ctx context.Context, c coordpb.CoordClient, path string, data []byte) (*coordpb.CreateResponse, error) {
	return c.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: path, Data: data}})
}

// mustCreate creates p, retrying through leader changes: a create whose
// outcome was unknown and then reports NODE_EXISTS did happen.
func mustCreate(t *testing.T, ctx context.Context, c coordpb.CoordClient, p string, data []byte) {
	t.Helper()
	uncertain := false
	for {
		_, err := create(ctx, c, p, data)
		switch {
		case err == nil:
			return
		case uncertain && detailCode(err) == coordpb.ErrorCode_NODE_EXISTS:
			return
		case status.Code(err) == codes.Unavailable && ctx.Err() == nil:
			uncertain = uncertain || detailCode(err) == coordpb.ErrorCode_UNKNOWN_OUTCOME
			time.Sleep(50 * time.Millisecond)
		default:
			t.Fatalf("create %s: %v", p, err)
		}
	}
}

func detailCode(err error) coordpb.ErrorCode {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if e, ok := d.(*coordpb.ErrorDetail); ok {
			return e.Code
		}
	}
	return -1
}

func TestCluster_AnyNodeServesAnyRequest(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 20*time.Second)
	f := c.Follower()
	fc := c.Conn(f)

	// A write sent to a follower is forwarded to the leader.
	mustCreate(t, ctx, fc, "/app", []byte("v1"))
	resp, err := fc.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/app", Data: []byte("v1"), Version: -1}})
	if err != nil {
		t.Fatalf("set via follower: %v", err)
	}
	if resp.Header.GetServedBy() != c.Node(f).Name || resp.Header.GetZxid() == 0 {
		t.Fatalf("header = %v", resp.Header)
	}
	// ...and is visible, linearizably, from every node.
	for i := range c.Nodes() {
		g, err := c.Conn(i).Get(ctx, &coordpb.GetRequest{Path: "/app"})
		if err != nil || string(g.Data) != "v1" {
			t.Fatalf("get on %s: %q, %v", c.Node(i).Name, g.GetData(), err)
		}
	}
	// A local read with min_zxid never returns older state than the client saw.
	s, err := fc.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/app", Data: []byte("v2"), Version: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes() {
		g, err := c.Conn(i).Get(ctx, &coordpb.GetRequest{Path: "/app", Read: &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL, MinZxid: s.Header.Zxid}})
		if err != nil || string(g.Data) != "v2" || g.Stat.Version != 2 {
			t.Fatalf("local get on %s: %q %v, %v", c.Node(i).Name, g.GetData(), g.GetStat(), err)
		}
	}
	// Conditional set with a stale version is refused with BAD_VERSION.
	_, err = fc.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: "/app", Data: []byte("x"), Version: 1}})
	if status.Code(err) != codes.Aborted || detailCode(err) != coordpb.ErrorCode_BAD_VERSION {
		t.Fatalf("stale set: %v", err)
	}
}

// writer keeps writing distinct keys and records the acknowledged ones.
type writer struct {
	mu    sync.Mutex
	acked map[string]bool
	errs  int
}

func (w *writer) run(ctx context.Context, c coordpb.CoordClient, prefix string) {
	for i := 0; ctx.Err() == nil; i++ {
		p := fmt.Sprintf("%s/k%06d", prefix, i)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := create(cctx, c, p, []byte(p))
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked[p] = true
		} else {
			w.errs++
		}
		w.mu.Unlock()
	}
}

func TestCluster_LeaderKilled_WritesContinueNothingLost(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{})
	ctx := coordtest.Ctx(t, 60*time.Second)
	leader := c.Leader()
	var survivors []int
	for i := range c.Nodes() {
		if i != leader {
			survivors = append(survivors, i)
		}
	}
	mustCreate(t, ctx, c.Conn(survivors[0]), "/w", nil)
	w := &writer{acked: map[string]bool{}}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for j, i := range survivors {
		wg.Add(1)
		go func(j, i int) { defer wg.Done(); w.run(wctx, c.Conn(i), fmt.Sprintf("/w/c%d", j)) }(j, i)
		mustCreate(t, ctx, c.Conn(i), fmt.Sprintf("/w/c%d", j), nil)
	}
	time.Sleep(300 * time.Millisecond)
	before := countAcked(w)
	killedAt := time.Now()
	c.Stop(leader)
	newLeader := c.WaitLeader(10 * time.Second)
	// Writes resume: wait for acknowledgements after the kill.
	deadline := time.Now().Add(5 * time.Second)
	for countAcked(w) < before+20 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resumed := time.Since(killedAt)
	stop()
	wg.Wait()
	if countAcked(w) < before+20 {
		t.Fatalf("writes did not resume after the leader was killed (acked %d before, %d after)", before, countAcked(w))
	}
	t.Logf("leader %s killed; %s leads; writes resumed within %v; %d acked, %d errors", c.Node(leader).Name, c.Node(newLeader).Name, resumed, countAcked(w), w.errs)

	// Nothing acknowledged is lost, on any surviving node.
	for _, i := range survivors {
		cl := c.Conn(i)
		for p := range w.acked {
			g, err := cl.Get(ctx, &coordpb.GetRequest{Path: p})
			if err != nil || string(g.Data) != p {
				t.Fatalf("acknowledged %s lost on %s: %v", p, c.Node(i).Name, err)
			}
		}
	}
	// The killed node comes back and catches up.
	c.Restart(leader)
	last, err := c.Conn(newLeader).Sync(ctx, &coordpb.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c.WaitApplied(last.Header.Zxid, 10*time.Second)
	cl := c.Conn(leader)
	for p := range w.acked {
		g, err := cl.Get(ctx, &coordpb.GetRequest{Path: p, Read: &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL}})
		if err != nil || string(g.Data) != p {
			t.Fatalf("restarted node lacks %s: %v", p, err)
		}
	}
}

func countAcked(w *writer) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

func snapshotBytes(t *testing.T, ctx context.Context, c coordpb.CoordClient) []byte {
	t.Helper()
	st, err := c.Snapshot(ctx, &coordpb.SnapshotRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for {
		ch, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		buf.Write(ch.Data)
	}
	if buf.Len() == 0 {
		t.Fatal("empty snapshot")
	}
	return buf.Bytes()
}

func TestCluster_FullRestart_DataIdentical(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.SnapshotThreshold = 50 // force snapshots + log replay on restart
		cfg.TrailingLogs = 10
	}})
	ctx := coordtest.Ctx(t, 60*time.Second)
	cl := c.Conn(c.Leader())
	for i := 0; i < 120; i++ {
		mustCreate(t, ctx, cl, fmt.Sprintf("/n%03d", i), []byte{byte(i)})
	}
	if _, err := cl.Multi(ctx, &coordpb.MultiRequest{Ops: []*coordpb.Op{
		{Op: &coordpb.Op_Set{Set: &coordpb.SetOp{Path: "/n001", Data: []byte("multi"), Version: -1}}},
		{Op: &coordpb.Op_Delete{Delete: &coordpb.DeleteOp{Path: "/n002", Version: -1}}},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Node(0).Server.Replica().TakeSnapshot(); err != nil {
		t.Logf("snapshot: %v", err)
	}
	before := snapshotBytes(t, ctx, cl)
	for i := range c.Nodes() {
		c.Stop(i)
	}
	for i := range c.Nodes() {
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	for i := range c.Nodes() {
		after := snapshotBytes(t, ctx, c.Conn(i))
		// The 16-byte header holds the applied index, which moves on restart
		// (a new leader commits a no-op); the tree itself must be identical
		// apart from the tree snapshot's own zxid header.
		if !bytes.Equal(stripHeaders(before), stripHeaders(after)) {
			t.Fatalf("%s: tree after full restart differs (%d vs %d bytes)", c.Node(i).Name, len(before), len(after))
		}
	}
	g, err := c.Conn(1).Get(ctx, &coordpb.GetRequest{Path: "/n001"})
	if err != nil || string(g.Data) != "multi" {
		t.Fatalf("after restart /n001 = %q, %v", g.GetData(), err)
	}
}

// stripHeaders drops the FSM header; the tree snapshot that follows
// carries only znodes, sessions and a zxid that does not change on a
// restart without writes.
func stripHeaders(b []byte) []byte { return b[16:] }

func TestCluster_NoQuorum_UnavailableWithinDeadline(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{})
	f := c.Follower()
	for i := range c.Nodes() {
		if i != f {
			c.Stop(i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := create(ctx, c.Conn(f), "/x", nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("write without quorum succeeded")
	}
	if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
		t.Fatalf("write without quorum: %v (code %v)", err, c)
	}
	if took > 3*time.Second {
		t.Fatalf("took %v, beyond the 2s deadline", took)
	}
	_, err = c.Conn(f).Get(ctx, &coordpb.GetRequest{Path: "/"})
	if err == nil {
		t.Fatal("linearizable read without quorum succeeded")
	}
	// Local reads still work without quorum.
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer lcancel()
	if _, err := c.Conn(f).Get(lctx, &coordpb.GetRequest{Path: "/", Read: &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL}}); err != nil {
		t.Fatalf("local read without quorum: %v", err)
	}
}

func TestCluster_Membership_AddAndRemove(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{})
	ctx := coordtest.Ctx(t, 30*time.Second)
	cl := c.Conn(0)
	mustCreate(t, ctx, cl, "/before", []byte("x"))
	n2 := coordtest.StartJoiner(t, "n2")
	if _, err := cl.AddMember(ctx, &coordpb.AddMemberRequest{Name: "n2", Address: n2.Addr()}); err != nil {
		t.Fatalf("add member: %v", err)
	}
	m, err := cl.Members(ctx, &coordpb.MembersRequest{})
	if err != nil || len(m.Members) != 2 {
		t.Fatalf("members = %v, %v", m.GetMembers(), err)
	}
	// The new member catches up with what was written before it joined.
	if err := n2.Replica().WaitApplied(ctx, m.Header.Zxid); err != nil {
		t.Fatal(err)
	}
	st, _ := n2.Replica().State()
	if data, _, err := st.Get("/before"); err != nil || string(data) != "x" {
		t.Fatalf("joined node: %q, %v", data, err)
	}
	// Adding a second member under an address already taken is refused.
	_, err = cl.AddMember(ctx, &coordpb.AddMemberRequest{Name: "n3", Address: n2.Addr()})
	if detailCode(err) != coordpb.ErrorCode_MEMBERSHIP {
		t.Fatalf("duplicate address: %v", err)
	}
	if _, err := cl.RemoveMember(ctx, &coordpb.RemoveMemberRequest{Name: "n2"}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := cl.RemoveMember(ctx, &coordpb.RemoveMemberRequest{Name: "nope"}); detailCode(err) != coordpb.ErrorCode_MEMBERSHIP {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestSessions_ExpiryDeletesEphemerals(t *testing.T) {
	c := coordtest.NewCluster(t, 3, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.Sessions = session.Limits{Min: 300 * time.Millisecond, Max: 10 * time.Second, Default: time.Second}
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	cl := c.Conn(c.Follower())
	open, err := cl.OpenSession(ctx, &coordpb.OpenSessionRequest{TimeoutMs: 1500})
	if err != nil {
		t.Fatal(err)
	}
	if open.TimeoutMs != 1500 {
		t.Fatalf("negotiated %d", open.TimeoutMs)
	}
	id := open.SessionId
	if _, err := cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/eph", Mode: coordpb.CreateMode_EPHEMERAL, SessionId: id}}); err != nil {
		t.Fatal(err)
	}
	// Keepalives through a follower keep it alive well past its timeout.
	var lastKA time.Time
	for i := 0; i < 8; i++ {
		lastKA = time.Now()
		if _, err := cl.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id}); err != nil {
			t.Fatalf("keepalive %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if e, err := cl.Exists(ctx, &coordpb.ExistsRequest{Path: "/eph"}); err != nil || !e.Exists {
		t.Fatalf("ephemeral gone while its session was kept alive: %v", err)
	}
	// Silence: the leader expires it, ephemeral and all, within the bound.
	stopped := time.Now()
	for {
		e, err := cl.Exists(ctx, &coordpb.ExistsRequest{Path: "/eph"})
		if err != nil {
			t.Fatal(err)
		}
		if !e.Exists {
			break
		}
		if time.Since(stopped) > 5*time.Second {
			t.Fatal("ephemeral outlived its session by 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	gone := time.Since(lastKA)
	if gone < 1500*time.Millisecond {
		t.Fatalf("ephemeral deleted %v after the last keepalive, before the session timeout", gone)
	}
	if _, err := cl.KeepAlive(ctx, &coordpb.KeepAliveRequest{SessionId: id}); detailCode(err) != coordpb.ErrorCode_SESSION_EXPIRED {
		t.Fatalf("keepalive after expiry: %v", err)
	}
	_, err = cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: "/eph2", Mode: coordpb.CreateMode_EPHEMERAL, SessionId: id}})
	if detailCode(err) != coordpb.ErrorCode_SESSION_EXPIRED {
		t.Fatalf("ephemeral create on expired session: %v", err)
	}
	t.Logf("ephemeral removed %v after the last keepalive (timeout 1.5s)", gone)
}

func TestSessions_CloseDeletesEphemeralsAtOnce(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{})
	ctx := coordtest.Ctx(t, 10*time.Second)
	cl := c.Conn(0)
	open, err := cl.OpenSession(ctx, &coordpb.OpenSessionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if open.TimeoutMs != session.DefaultTimeout.Milliseconds() {
		t.Fatalf("default timeout %d", open.TimeoutMs)
	}
	for _, p := range []string{"/a", "/b"} {
		if _, err := cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: p, Mode: coordpb.CreateMode_EPHEMERAL, SessionId: open.SessionId}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: open.SessionId}); err != nil {
		t.Fatal(err)
	}
	ch, err := cl.Children(ctx, &coordpb.ChildrenRequest{Path: "/"})
	if err != nil || len(ch.Names) != 0 {
		t.Fatalf("children after close: %v, %v", ch.GetNames(), err)
	}
	_, err = cl.CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: open.SessionId})
	if detailCode(err) != coordpb.ErrorCode_SESSION_EXPIRED {
		t.Fatalf("second close: %v", err)
	}
}

func TestTTLNodes_ExpireWhenUnmodified(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{})
	ctx := coordtest.Ctx(t, 20*time.Second)
	cl := c.Conn(0)
	mk := func(p string) {
		if _, err := cl.Create(ctx, &coordpb.CreateRequest{Op: &coordpb.CreateOp{Path: p, Mode: coordpb.CreateMode_TTL, TtlMs: 400}}); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	mk("/ttl")
	mk("/busy")
	mustCreate(t, ctx, cl, "/busy/child", nil)
	start := time.Now()
	for {
		e, err := cl.Exists(ctx, &coordpb.ExistsRequest{Path: "/ttl"})
		if err != nil {
			t.Fatal(err)
		}
		if !e.Exists {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("TTL node never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(before); took < 400*time.Millisecond {
		t.Fatalf("TTL node deleted after %v, before its 400ms TTL", took)
	}
	// A TTL node with children stays.
	if e, err := cl.Exists(ctx, &coordpb.ExistsRequest{Path: "/busy"}); err != nil || !e.Exists {
		t.Fatalf("TTL node with a child was deleted: %v", err)
	}
}

// Big multis trigger a snapshot by size long before the entry-count
// threshold, so a restart restores a snapshot instead of replaying them.
func TestCluster_SnapshotBySize(t *testing.T) {
	c := coordtest.NewCluster(t, 1, coordtest.Options{Configure: func(cfg *coord.Config) {
		cfg.SnapshotBytes = 256 << 10
	}})
	ctx := coordtest.Ctx(t, 30*time.Second)
	cl := c.Conn(0)
	rep := c.Node(0).Server.Replica()
	if idx := rep.LastSnapshotIndex(); idx != 0 {
		t.Fatalf("snapshot at %d before any write", idx)
	}
	for m := 0; m < 4; m++ { // 4 entries of ~100 KB: far below 65536 entries
		var ops []*coordpb.Op
		for i := 0; i < 100; i++ {
			ops = append(ops, &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: fmt.Sprintf("/m%d-%03d", m, i), Data: make([]byte, 1000)}}})
		}
		if _, err := cl.Multi(ctx, &coordpb.MultiRequest{Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for rep.LastSnapshotIndex() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no snapshot after 400 KB of commands with SnapshotBytes 256 KB")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Stop(0)
	c.Restart(0)
	c.WaitLeader(10 * time.Second)
	g, err := c.Conn(0).Get(ctx, &coordpb.GetRequest{Path: "/m3-099"})
	if err != nil || len(g.Data) != 1000 {
		t.Fatalf("after restart: %d bytes, %v", len(g.GetData()), err)
	}
}
