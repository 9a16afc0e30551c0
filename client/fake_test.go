package client

import (
	"context"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

// fakeCoord is a small in-memory Coord server over real gRPC on
// 127.0.0.1:0: enough of the service to exercise the client's error
// mapping, failover, zxid tracking, paging and sessions.
type fakeCoord struct {
	coordpb.UnimplementedCoordServer
	name string
	addr string
	srv  *grpc.Server

	mu        sync.Mutex
	zxid      uint64
	nodes     map[string][]byte
	calls     map[string]int
	minZxids  []uint64 // min_zxid of each local read
	consists  []coordpb.Consistency
	pageAfter []string // start_after of each Children call
	pageSize  int
	// failNext makes the next n calls of a method fail with the status.
	failNext map[string][]error
	// hook runs at the start of a method (under no lock).
	hook     map[string]func(ctx context.Context)
	sessions map[uint64]bool // live sessions
	nextSess uint64
	sessMs   int64
	snapshot [][]byte
	snapErr  error // sent after the chunks
}

func startFake(t *testing.T, name string) *fakeCoord {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCoord{
		name: name, addr: ln.Addr().String(), srv: grpc.NewServer(),
		nodes: map[string][]byte{"/": nil}, calls: map[string]int{}, pageSize: 3,
		failNext: map[string][]error{}, hook: map[string]func(context.Context){},
		sessions: map[uint64]bool{}, nextSess: 100, sessMs: 300,
	}
	coordpb.RegisterCoordServer(f.srv, f)
	go f.srv.Serve(ln)
	t.Cleanup(f.srv.Stop)
	return f
}

// coordErr is what the real server sends: a status with an ErrorDetail.
func coordErr(c codes.Code, code coordpb.ErrorCode, msg string) error {
	st, _ := status.New(c, msg).WithDetails(&coordpb.ErrorDetail{Code: code, FailedOp: -1})
	return st.Err()
}

func (f *fakeCoord) enter(ctx context.Context, method string) error {
	f.mu.Lock()
	f.calls[method]++
	hook := f.hook[method]
	var err error
	if q := f.failNext[method]; len(q) > 0 {
		err, f.failNext[method] = q[0], q[1:]
	}
	f.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
	return err
}

func (f *fakeCoord) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeCoord) header() *coordpb.ResponseHeader {
	return &coordpb.ResponseHeader{Zxid: f.zxid, ServedBy: f.name}
}

func (f *fakeCoord) noteRead(ro *coordpb.ReadOptions) {
	f.consists = append(f.consists, ro.GetConsistency())
	if ro.GetConsistency() == coordpb.Consistency_LOCAL {
		f.minZxids = append(f.minZxids, ro.GetMinZxid())
	}
}

func (f *fakeCoord) stat(p string) *coordpb.Stat {
	return &coordpb.Stat{Czxid: 1, Mzxid: f.zxid, Ctime: 1700000000000, Mtime: 1700000001000, DataLength: int64(len(f.nodes[p]))}
}

func (f *fakeCoord) Create(ctx context.Context, r *coordpb.CreateRequest) (*coordpb.CreateResponse, error) {
	if err := f.enter(ctx, "Create"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	op := r.Op
	if op.Mode == coordpb.CreateMode_EPHEMERAL && !f.sessions[op.SessionId] {
		return nil, coordErr(codes.FailedPrecondition, coordpb.ErrorCode_SESSION_EXPIRED, "session does not exist or has expired")
	}
	if _, ok := f.nodes[op.Path]; ok {
		return nil, coordErr(codes.AlreadyExists, coordpb.ErrorCode_NODE_EXISTS, "node already exists")
	}
	f.zxid++
	f.nodes[op.Path] = op.Data
	st := f.stat(op.Path)
	st.EphemeralOwner = op.SessionId
	return &coordpb.CreateResponse{Header: f.header(), Path: op.Path, Stat: st}, nil
}

func (f *fakeCoord) Set(ctx context.Context, r *coordpb.SetRequest) (*coordpb.SetResponse, error) {
	if err := f.enter(ctx, "Set"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nodes[r.Op.Path]; !ok {
		return nil, coordErr(codes.NotFound, coordpb.ErrorCode_NO_NODE, "node does not exist")
	}
	f.zxid++
	f.nodes[r.Op.Path] = r.Op.Data
	return &coordpb.SetResponse{Header: f.header(), Stat: f.stat(r.Op.Path)}, nil
}

func (f *fakeCoord) Get(ctx context.Context, r *coordpb.GetRequest) (*coordpb.GetResponse, error) {
	if err := f.enter(ctx, "Get"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteRead(r.Read)
	d, ok := f.nodes[r.Path]
	if !ok {
		return nil, coordErr(codes.NotFound, coordpb.ErrorCode_NO_NODE, "node does not exist")
	}
	return &coordpb.GetResponse{Header: f.header(), Data: d, Stat: f.stat(r.Path)}, nil
}

func (f *fakeCoord) Exists(ctx context.Context, r *coordpb.ExistsRequest) (*coordpb.ExistsResponse, error) {
	if err := f.enter(ctx, "Exists"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteRead(r.Read)
	if _, ok := f.nodes[r.Path]; !ok {
		return &coordpb.ExistsResponse{Header: f.header()}, nil
	}
	return &coordpb.ExistsResponse{Header: f.header(), Exists: true, Stat: f.stat(r.Path)}, nil
}

func (f *fakeCoord) Children(ctx context.Context, r *coordpb.ChildrenRequest) (*coordpb.ChildrenResponse, error) {
	if err := f.enter(ctx, "Children"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteRead(r.Read)
	f.pageAfter = append(f.pageAfter, r.StartAfter)
	prefix := strings.TrimSuffix(r.Path, "/") + "/"
	var names []string
	for p := range f.nodes {
		if rest, ok := strings.CutPrefix(p, prefix); ok && rest != "" && !strings.Contains(rest, "/") && rest > r.StartAfter {
			names = append(names, rest)
		}
	}
	sort.Strings(names)
	limit := f.pageSize
	if r.Limit > 0 && int(r.Limit) < limit {
		limit = int(r.Limit)
	}
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	return &coordpb.ChildrenResponse{Header: f.header(), Names: names, Stat: f.stat(r.Path), More: more}, nil
}

func (f *fakeCoord) Multi(ctx context.Context, r *coordpb.MultiRequest) (*coordpb.MultiResponse, error) {
	if err := f.enter(ctx, "Multi"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, op := range r.Ops {
		if c := op.GetCheck(); c != nil {
			if _, ok := f.nodes[c.Path]; !ok {
				st, _ := status.New(codes.NotFound, "op 1 (check "+c.Path+"): node does not exist").
					WithDetails(&coordpb.ErrorDetail{Code: coordpb.ErrorCode_NO_NODE, FailedOp: int32(i), Path: c.Path})
				return nil, st.Err()
			}
		}
	}
	f.zxid++
	res := make([]*coordpb.OpResult, len(r.Ops))
	for i, op := range r.Ops {
		switch {
		case op.GetCreate() != nil:
			f.nodes[op.GetCreate().Path] = op.GetCreate().Data
			res[i] = &coordpb.OpResult{Result: &coordpb.OpResult_Create{Create: &coordpb.CreateResult{Path: op.GetCreate().Path, Stat: &coordpb.Stat{EphemeralOwner: op.GetCreate().SessionId}}}}
		default:
			res[i] = &coordpb.OpResult{Result: &coordpb.OpResult_Check{Check: &coordpb.CheckResult{Stat: &coordpb.Stat{Version: 4}}}}
		}
	}
	return &coordpb.MultiResponse{Header: f.header(), Results: res}, nil
}

func (f *fakeCoord) OpenSession(ctx context.Context, r *coordpb.OpenSessionRequest) (*coordpb.OpenSessionResponse, error) {
	if err := f.enter(ctx, "OpenSession"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.zxid++
	f.nextSess++
	f.sessions[f.nextSess] = true
	return &coordpb.OpenSessionResponse{Header: f.header(), SessionId: f.nextSess, TimeoutMs: f.sessMs}, nil
}

func (f *fakeCoord) KeepAlive(ctx context.Context, r *coordpb.KeepAliveRequest) (*coordpb.KeepAliveResponse, error) {
	if err := f.enter(ctx, "KeepAlive"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sessions[r.SessionId] {
		return nil, coordErr(codes.FailedPrecondition, coordpb.ErrorCode_SESSION_EXPIRED, "session does not exist or has expired")
	}
	return &coordpb.KeepAliveResponse{Header: f.header(), TimeoutMs: f.sessMs}, nil
}

func (f *fakeCoord) CloseSession(ctx context.Context, r *coordpb.CloseSessionRequest) (*coordpb.CloseSessionResponse, error) {
	if err := f.enter(ctx, "CloseSession"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sessions[r.SessionId] {
		return nil, coordErr(codes.FailedPrecondition, coordpb.ErrorCode_SESSION_EXPIRED, "session does not exist or has expired")
	}
	delete(f.sessions, r.SessionId)
	return &coordpb.CloseSessionResponse{Header: f.header()}, nil
}

func (f *fakeCoord) expireSessions() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.sessions)
}

func (f *fakeCoord) Status(ctx context.Context, r *coordpb.StatusRequest) (*coordpb.StatusResponse, error) {
	if err := f.enter(ctx, "Status"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &coordpb.StatusResponse{Header: f.header(), Name: f.name, State: "Leader", Leader: f.name, Term: 2, CommitIndex: f.zxid, AppliedIndex: f.zxid,
		Members: []*coordpb.Member{{Name: f.name, Address: f.addr, Voter: true, Leader: true}}}, nil
}

func (f *fakeCoord) Snapshot(r *coordpb.SnapshotRequest, s grpc.ServerStreamingServer[coordpb.SnapshotChunk]) error {
	if err := f.enter(s.Context(), "Snapshot"); err != nil {
		return err
	}
	f.mu.Lock()
	chunks, serr := f.snapshot, f.snapErr
	f.mu.Unlock()
	for _, c := range chunks {
		if err := s.Send(&coordpb.SnapshotChunk{Data: c}); err != nil {
			return err
		}
	}
	return serr
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
