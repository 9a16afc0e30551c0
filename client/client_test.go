package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

func TestClient_ErrorMappingOverGRPC(t *testing.T) {
	f := startFake(t, "n1")
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	ctx := testCtx(t)
	_, _, err := c.Get(ctx, "/a/b", nil)
	if !errors.Is(err, ErrNoNode) || err.Error() != "node does not exist" {
		t.Fatalf("get missing = %v", err)
	}
	if _, _, err := c.Create(ctx, "/a", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Create(ctx, "/a", nil, nil); !errors.Is(err, ErrNodeExists) {
		t.Fatalf("duplicate create = %v", err)
	}
	if st, err := c.Exists(ctx, "/nope", nil); st != nil || err != nil {
		t.Fatalf("exists of a missing node = %v, %v; want nil, nil", st, err)
	}
	data, st, err := c.Get(ctx, "/a", nil)
	if err != nil || string(data) != "x" || st.DataLength != 1 || !st.CTime.Equal(time.UnixMilli(1700000000000)) {
		t.Fatalf("get = %q %+v %v", data, st, err)
	}
	if _, _, err := c.Create(ctx, "/t", nil, &CreateOptions{Ephemeral: true, TTL: time.Second}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ephemeral TTL node = %v", err)
	}
	if f.count("OpenSession") != 0 {
		t.Fatal("a refused create opened a session")
	}
}

func TestClient_FailoverPastDeadEndpoint(t *testing.T) {
	f := startFake(t, "n2")
	c := newTestClient(t, Config{Endpoints: []string{deadAddr(t), f.addr}})
	ctx := testCtx(t)
	// A read fails over; so does a write whose connection was refused (it
	// cannot have been applied).
	if _, err := c.Exists(ctx, "/", nil); err != nil {
		t.Fatal(err)
	}
	if c.Endpoint() != f.addr {
		t.Fatalf("endpoint in use = %s, want %s", c.Endpoint(), f.addr)
	}
	c2 := newTestClient(t, Config{Endpoints: []string{deadAddr(t), f.addr}})
	if _, _, err := c2.Create(ctx, "/w", nil, nil); err != nil {
		t.Fatalf("write past a refused endpoint: %v", err)
	}
	if f.count("Create") != 1 {
		t.Fatalf("create reached the server %d times", f.count("Create"))
	}
}

func TestClient_AllEndpointsDown(t *testing.T) {
	c := newTestClient(t, Config{Endpoints: []string{deadAddr(t), deadAddr(t)}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := c.Get(ctx, "/a", nil)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get with every endpoint down = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("gave up after %v, want about the ctx deadline", d)
	}
	t.Logf("error text: %v", err)
}

// A write that may have reached a server is not retried elsewhere: the
// caller gets ErrConnectionLoss.
func TestClient_WriteNotRetriedAfterConnectionBreaks(t *testing.T) {
	f1, f2 := startFake(t, "n1"), startFake(t, "n2")
	f1.hook["Set"] = func(ctx context.Context) {
		go f1.srv.Stop() // the connection breaks with the request in flight
		<-ctx.Done()
	}
	f1.nodes["/a"] = nil
	c := newTestClient(t, Config{Endpoints: []string{f1.addr, f2.addr}})
	ctx := testCtx(t)
	if _, err := c.Exists(ctx, "/", nil); err != nil { // connect to f1
		t.Fatal(err)
	}
	_, err := c.Set(ctx, "/a", []byte("v"), -1)
	if !errors.Is(err, ErrConnectionLoss) {
		t.Fatalf("set with the connection breaking = %v, want ErrConnectionLoss", err)
	}
	if n := f2.count("Set"); n != 0 {
		t.Fatalf("the write was retried on the other endpoint (%d times)", n)
	}
	// The next call goes to the other endpoint.
	if _, err := c.Exists(ctx, "/", nil); err != nil || c.Endpoint() != f2.addr {
		t.Fatalf("after the break: %v, endpoint %s", err, c.Endpoint())
	}
}

// A read whose connection breaks is retried on the next endpoint.
func TestClient_ReadRetriedAfterConnectionBreaks(t *testing.T) {
	f1, f2 := startFake(t, "n1"), startFake(t, "n2")
	f1.hook["Get"] = func(ctx context.Context) {
		go f1.srv.Stop()
		<-ctx.Done()
	}
	f2.nodes["/a"] = []byte("from n2")
	c := newTestClient(t, Config{Endpoints: []string{f1.addr, f2.addr}})
	data, _, err := c.Get(testCtx(t), "/a", nil)
	if err != nil || string(data) != "from n2" {
		t.Fatalf("get = %q, %v", data, err)
	}
}

// A write refused with UNAVAILABLE (no leader: not applied) is retried with
// backoff until it succeeds.
func TestClient_WriteRetriedOnNoLeader(t *testing.T) {
	f := startFake(t, "n1")
	f.nodes["/a"] = nil
	noLeader := coordErr(codes.Unavailable, coordpb.ErrorCode_UNAVAILABLE, "no leader")
	f.failNext["Set"] = []error{noLeader, noLeader, noLeader}
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	if _, err := c.Set(testCtx(t), "/a", []byte("v"), -1); err != nil {
		t.Fatal(err)
	}
	if n := f.count("Set"); n != 4 {
		t.Fatalf("set reached the server %d times, want 4", n)
	}
	// Until the deadline, then it says so.
	f.failNext["Set"] = []error{noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader, noLeader}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Set(ctx, "/a", nil, -1)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || err.Error() != "no leader" {
		t.Fatalf("set without a leader = %v", err)
	}
	// UNKNOWN_OUTCOME is not retried.
	f.failNext["Set"] = []error{coordErr(codes.Unavailable, coordpb.ErrorCode_UNKNOWN_OUTCOME, "leadership lost")}
	before := f.count("Set")
	if _, err := c.Set(testCtx(t), "/a", nil, -1); !errors.Is(err, ErrConnectionLoss) || f.count("Set") != before+1 {
		t.Fatalf("unknown outcome = %v after %d calls", err, f.count("Set")-before)
	}
}

func TestClient_LocalReadsSendHighestZxid(t *testing.T) {
	f1, f2 := startFake(t, "n1"), startFake(t, "n2")
	f1.zxid, f2.zxid = 40, 7
	f1.nodes["/a"], f2.nodes["/a"] = nil, nil
	c := newTestClient(t, Config{Endpoints: []string{f1.addr, f2.addr}})
	ctx := testCtx(t)
	if _, _, err := c.Get(ctx, "/a", nil); err != nil { // linearizable: no min_zxid
		t.Fatal(err)
	}
	if _, err := c.Set(ctx, "/a", nil, -1); err != nil { // zxid 41
		t.Fatal(err)
	}
	if c.LastZxid() != 41 {
		t.Fatalf("LastZxid = %d, want 41", c.LastZxid())
	}
	f1.srv.Stop() // move to n2, whose zxids are lower
	if _, _, err := c.Get(ctx, "/a", &ReadOptions{Local: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exists(ctx, "/a", &ReadOptions{Local: true}); err != nil {
		t.Fatal(err)
	}
	if len(f1.consists) != 1 || f1.consists[0] != coordpb.Consistency_LINEARIZABLE {
		t.Fatalf("n1 saw consistency %v", f1.consists)
	}
	if fmt.Sprint(f2.minZxids) != "[41 41]" {
		t.Fatalf("n2 saw min_zxid %v, want [41 41]", f2.minZxids)
	}
	if c.LastZxid() != 41 {
		t.Fatalf("LastZxid went back to %d", c.LastZxid())
	}
}

func TestClient_ChildrenPaging(t *testing.T) {
	f := startFake(t, "n1")
	for i := range 8 {
		f.nodes[fmt.Sprintf("/p/c%d", i)] = nil
	}
	f.nodes["/p"], f.nodes["/p/c3/deeper"] = nil, nil
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	ctx := testCtx(t)
	names, st, err := c.Children(ctx, "/p", nil)
	if err != nil || st == nil || fmt.Sprint(names) != "[c0 c1 c2 c3 c4 c5 c6 c7]" {
		t.Fatalf("children = %v %v %v", names, st, err)
	}
	if fmt.Sprintf("%q", f.pageAfter) != `["" "c2" "c5"]` {
		t.Fatalf("pages started after %q", f.pageAfter)
	}
	names, _, more, err := c.ChildrenPage(ctx, "/p", "c5", 1, nil)
	if err != nil || fmt.Sprint(names) != "[c6]" || !more {
		t.Fatalf("page = %v more=%v %v", names, more, err)
	}
	if names, _, err := c.Children(ctx, "/p/c0", nil); err != nil || len(names) != 0 {
		t.Fatalf("leaf children = %v %v", names, err)
	}
}

func TestClient_Multi(t *testing.T) {
	f := startFake(t, "n1")
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	ctx := testCtx(t)
	_, err := c.Multi(ctx, CreateOp("/x", nil, nil), CheckOp("/missing", -1))
	var me *MultiError
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, ErrNoNode) {
		t.Fatalf("multi = %#v", err)
	}
	res, err := c.Multi(ctx, CreateOp("/e", nil, &CreateOptions{Ephemeral: true}), CheckOp("/", -1))
	if err != nil || len(res) != 2 || res[0].Path != "/e" || res[0].Stat.EphemeralOwner != c.SessionID() || c.SessionID() == 0 || res[1].Stat.Version != 4 {
		t.Fatalf("multi = %+v %v (session %d)", res, err, c.SessionID())
	}
	_, err = c.Multi(ctx, CheckOp("/", -1), CreateOp("/bad", nil, &CreateOptions{TTL: -time.Second}))
	if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad op = %v", err)
	}
}

func TestClient_SessionKeepAliveExpiryAndClose(t *testing.T) {
	f := startFake(t, "n1")
	c := newTestClient(t, Config{Endpoints: []string{f.addr}, SessionTimeout: 300 * time.Millisecond})
	ctx := testCtx(t)
	if c.SessionID() != 0 || c.SessionDone() != nil {
		t.Fatal("session opened before it was needed")
	}
	p, st, err := c.Create(ctx, "/e", nil, &CreateOptions{Ephemeral: true})
	if err != nil || p != "/e" || st.EphemeralOwner == 0 || st.EphemeralOwner != c.SessionID() {
		t.Fatalf("ephemeral create = %q %+v %v", p, st, err)
	}
	if c.SessionTimeout() != 300*time.Millisecond {
		t.Fatalf("negotiated timeout = %v", c.SessionTimeout())
	}
	// A second ephemeral shares the session.
	if _, _, err := c.Create(ctx, "/e2", nil, &CreateOptions{Ephemeral: true}); err != nil || f.count("OpenSession") != 1 {
		t.Fatalf("second ephemeral: %v, %d sessions opened", err, f.count("OpenSession"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.count("KeepAlive") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d keepalives", f.count("KeepAlive"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.expireSessions()
	select {
	case <-c.SessionDone():
	case <-time.After(5 * time.Second):
		t.Fatal("SessionDone not closed after expiry")
	}
	if !errors.Is(c.SessionErr(), ErrSessionExpired) {
		t.Fatalf("SessionErr = %v", c.SessionErr())
	}
	if _, _, err := c.Create(ctx, "/e3", nil, &CreateOptions{Ephemeral: true}); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("ephemeral create after expiry = %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if f.count("CloseSession") != 0 {
		t.Fatal("closed an expired session")
	}

	// Close closes a live session and stops the keepalive goroutine.
	c2 := newTestClient(t, Config{Endpoints: []string{f.addr}, SessionTimeout: 300 * time.Millisecond})
	id, err := c2.Session(ctx)
	if err != nil || id == 0 {
		t.Fatal(id, err)
	}
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c2.sess.loopDone:
	default:
		t.Fatal("keepalive goroutine still running after Close")
	}
	if f.count("CloseSession") != 1 || !errors.Is(c2.SessionErr(), ErrClosed) {
		t.Fatalf("CloseSession calls %d, SessionErr %v", f.count("CloseSession"), c2.SessionErr())
	}
	if _, _, err := c2.Get(ctx, "/", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close = %v", err)
	}
	if _, err := c2.Session(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("session after close = %v", err)
	}
}

// The server rejecting an ephemeral create for an expired session ends the
// client's session at once, without waiting for the next keepalive.
func TestClient_EphemeralCreateSeesExpiry(t *testing.T) {
	f := startFake(t, "n1")
	f.sessMs = 60000
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	ctx := testCtx(t)
	if _, err := c.Session(ctx); err != nil {
		t.Fatal(err)
	}
	f.expireSessions()
	if _, _, err := c.Create(ctx, "/e", nil, &CreateOptions{Ephemeral: true}); !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("create = %v", err)
	}
	select {
	case <-c.SessionDone():
	default:
		t.Fatal("session still live")
	}
}

func TestClient_Snapshot(t *testing.T) {
	f := startFake(t, "n1")
	f.snapshot = [][]byte{[]byte("abc"), []byte("def"), []byte("g")}
	c := newTestClient(t, Config{Endpoints: []string{deadAddr(t), f.addr}})
	var buf bytes.Buffer
	n, err := c.Snapshot(testCtx(t), &buf)
	if err != nil || n != 7 || buf.String() != "abcdefg" {
		t.Fatalf("snapshot = %d %q %v", n, buf.String(), err)
	}
	// A stream that breaks after the first bytes is an error, not a short
	// success, and is not retried.
	f.snapErr = status.Error(codes.Unavailable, "gone")
	buf.Reset()
	calls := f.count("Snapshot")
	if _, err := c.Snapshot(testCtx(t), &buf); err == nil || f.count("Snapshot") != calls+1 {
		t.Fatalf("broken snapshot = %v after %d calls", err, f.count("Snapshot")-calls)
	}
	// A writer error stops it too.
	f.snapErr = nil
	if _, err := c.Snapshot(testCtx(t), failWriter{}); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("snapshot into a failing writer = %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestClient_Status(t *testing.T) {
	f := startFake(t, "n1")
	f.zxid = 9
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	st, err := c.Status(testCtx(t))
	if err != nil || st.Name != "n1" || st.Leader != "n1" || st.AppliedIndex != 9 || len(st.Members) != 1 || !st.Members[0].Leader {
		t.Fatalf("status = %+v %v", st, err)
	}
	if c.LastZxid() != 9 {
		t.Fatalf("status header not observed: %d", c.LastZxid())
	}
}
