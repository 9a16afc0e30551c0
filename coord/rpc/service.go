package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"coord/coord/replica"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// Backend is what the gRPC layer needs from the server (coord.Server
// implements it). Write and Read hide where the leader is.
type Backend interface {
	// Name is this node's name (for response headers).
	Name() string
	// MaxDataBytes is the per-node data limit.
	MaxDataBytes() int
	// Write replicates cmd through the leader and returns its result once
	// committed (this node may apply it a moment later).
	Write(ctx context.Context, cmd *coordpb.Command) (*coordpb.ApplyResult, error)
	// Read returns the state to serve a read at, per opts. A follower that
	// has not yet applied a linearizable read's index returns a
	// *BehindError instead: the handler then asks the leader.
	Read(ctx context.Context, opts *coordpb.ReadOptions) (*tree.Tree, uint64, error)
	// LeaderCoord is a Coord client for the leader at addr.
	LeaderCoord(addr string) (coordpb.CoordClient, error)
	// Sync waits until this node has applied all that was committed before
	// the call.
	Sync(ctx context.Context) (uint64, error)
	Members(ctx context.Context) ([]replica.Member, error)
	ChangeMembers(ctx context.Context, req *coordpb.ChangeMembersRequest) error
	Info() replica.Info

	OpenSession(ctx context.Context, timeoutMs int64) (id uint64, negotiatedMs int64, zxid uint64, err error)
	KeepAlive(ctx context.Context, id uint64) (timeoutMs int64, err error)
	CloseSession(ctx context.Context, id uint64) (zxid uint64, err error)

	// Peer side: called by other nodes.
	ProposeLocal(ctx context.Context, cmd []byte) (*coordpb.ApplyResult, error)
	// ProposeBatchLocal replicates several commands; one result or error
	// per command, in order.
	ProposeBatchLocal(ctx context.Context, cmds [][]byte) ([]*coordpb.ApplyResult, []error)
	ReadIndexLocal(ctx context.Context) (uint64, error)
	ChangeMembersLocal(ctx context.Context, req *coordpb.ChangeMembersRequest) error
	KeepAlivesLocal(ctx context.Context, ids []uint64) ([]uint64, error)
}

// BehindError: this follower knows the read index but has not applied it
// yet (it learns commits only with raft's next append). The read is served
// by the leader, which has, at that index.
type BehindError struct {
	Leader string // the leader's address
	Index  uint64 // the read index
}

func (e *BehindError) Error() string {
	return fmt.Sprintf("behind the read index %d; ask the leader at %s", e.Index, e.Leader)
}

// mdRedirected marks a read one node passed to another because it was
// behind; the receiver serves it (waiting if it must) rather than pass it
// on again, so two nodes that each think the other leads cannot bounce a
// read between them.
const mdRedirected = "coord-redirected"

type noRedirectKey struct{}

// NoRedirect reports whether the read in ctx was already redirected once:
// Backend.Read must then not return a *BehindError.
func NoRedirect(ctx context.Context) bool {
	v, _ := ctx.Value(noRedirectKey{}).(bool)
	return v
}

// atLeader is the read options that make the leader serve at index.
func atLeader(index uint64) *coordpb.ReadOptions {
	return &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL, MinZxid: index}
}

// Service implements the Coord and Peer gRPC services on a Backend.
type Service struct {
	coordpb.UnimplementedCoordServer
	b   Backend
	log *slog.Logger
	// Interceptor, when set, wraps each request on a Call stream the way
	// the server's unary interceptors wrap a unary call (call.go).
	Interceptor grpc.UnaryServerInterceptor

	tokenKey []byte // nil: password login off
	tokenTTL time.Duration
	// MaxSessionsPerAddress bounds the live sessions one client IP opens
	// through this node (0: no limit). Set before serving.
	MaxSessionsPerAddress int
	sessions              sessionLimit
}

// NewService returns the gRPC service for b.
func NewService(b Backend, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{b: b, log: log, MaxSessionsPerAddress: DefaultMaxSessionsPerAddress}
}

// Default and maximum page sizes for Children.
const (
	DefaultChildrenPage = 5000
	MaxChildrenPage     = 20000
)

// MaxMultiOps bounds the ops of one Multi (etcd's --max-txn-ops is 128;
// coord allows more because a multi is also bounded by the request size).
const MaxMultiOps = 1024

func (s *Service) header(zxid uint64) *coordpb.ResponseHeader {
	return &coordpb.ResponseHeader{Zxid: zxid, ServedBy: s.b.Name()}
}

func (s *Service) fail(err error) error { return ToStatus(s.log, err) }

func (s *Service) checkData(data []byte) error {
	if max := s.b.MaxDataBytes(); len(data) > max {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrDataTooLarge, len(data), max)
	}
	return nil
}

// write runs a one-or-more op txn and returns its results.
func (s *Service) write(ctx context.Context, wh *coordpb.WriteHeader, ops []*coordpb.Op) (*coordpb.ApplyResult, error) {
	for i, op := range ops {
		if err := s.checkOp(op); err != nil {
			if len(ops) > 1 {
				return nil, &opError{err: fmt.Errorf("op %d: %w", i, err), failedOp: int32(i), path: opPath(op)}
			}
			return nil, err
		}
	}
	txn := &coordpb.Txn{Ops: ops, SessionId: wh.GetSessionId(), RequestId: wh.GetRequestId(), AckedBelow: wh.GetAckedBelow(), Caller: CallerFrom(ctx)}
	res, err := s.b.Write(ctx, &coordpb.Command{Cmd: &coordpb.Command_Txn{Txn: txn}})
	if err != nil {
		return nil, err
	}
	if res.Code != coordpb.ErrorCode_OK {
		path := ""
		if res.FailedOp >= 0 && int(res.FailedOp) < len(ops) {
			path = opPath(ops[res.FailedOp])
			if len(ops) > 1 {
				res.Message = fmt.Sprintf("op %d (%s %s): %s", res.FailedOp, opName(ops[res.FailedOp]), path, res.Message)
			}
		}
		return nil, resultError(res, path)
	}
	if len(res.Results) != len(ops) {
		return nil, fmt.Errorf("write: %d results for %d ops", len(res.Results), len(ops))
	}
	return res, nil
}

func (s *Service) checkOp(op *coordpb.Op) error {
	switch o := op.GetOp().(type) {
	case *coordpb.Op_Create:
		return s.checkData(o.Create.GetData())
	case *coordpb.Op_Set:
		return s.checkData(o.Set.GetData())
	case *coordpb.Op_Delete, *coordpb.Op_Check, *coordpb.Op_SetAcl:
		return nil
	}
	return fmt.Errorf("%w: empty op", ErrInvalidArgument)
}

func opPath(op *coordpb.Op) string {
	switch o := op.GetOp().(type) {
	case *coordpb.Op_Create:
		return o.Create.GetPath()
	case *coordpb.Op_Set:
		return o.Set.GetPath()
	case *coordpb.Op_Delete:
		return o.Delete.GetPath()
	case *coordpb.Op_Check:
		return o.Check.GetPath()
	case *coordpb.Op_SetAcl:
		return o.SetAcl.GetPath()
	}
	return ""
}

func opName(op *coordpb.Op) string {
	switch op.GetOp().(type) {
	case *coordpb.Op_Create:
		return "create"
	case *coordpb.Op_Set:
		return "set"
	case *coordpb.Op_Delete:
		return "delete"
	case *coordpb.Op_Check:
		return "check"
	case *coordpb.Op_SetAcl:
		return "setacl"
	}
	return "empty"
}

func missing(what string) error { return fmt.Errorf("%w: missing %s", ErrInvalidArgument, what) }

func (s *Service) Create(ctx context.Context, req *coordpb.CreateRequest) (*coordpb.CreateResponse, error) {
	if req.GetOp() == nil {
		return nil, s.fail(missing("op"))
	}
	res, err := s.write(ctx, req.GetWrite(), []*coordpb.Op{{Op: &coordpb.Op_Create{Create: req.Op}}})
	if err != nil {
		return nil, s.fail(err)
	}
	r := res.Results[0].GetCreate()
	return &coordpb.CreateResponse{Header: s.header(res.Zxid), Path: r.GetPath(), Stat: r.GetStat()}, nil
}

func (s *Service) Set(ctx context.Context, req *coordpb.SetRequest) (*coordpb.SetResponse, error) {
	if req.GetOp() == nil {
		return nil, s.fail(missing("op"))
	}
	res, err := s.write(ctx, req.GetWrite(), []*coordpb.Op{{Op: &coordpb.Op_Set{Set: req.Op}}})
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.SetResponse{Header: s.header(res.Zxid), Stat: res.Results[0].GetSet().GetStat()}, nil
}

func (s *Service) Delete(ctx context.Context, req *coordpb.DeleteRequest) (*coordpb.DeleteResponse, error) {
	if req.GetOp() == nil {
		return nil, s.fail(missing("op"))
	}
	res, err := s.write(ctx, req.GetWrite(), []*coordpb.Op{{Op: &coordpb.Op_Delete{Delete: req.Op}}})
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.DeleteResponse{Header: s.header(res.Zxid), Deleted: res.Results[0].GetDelete().GetDeleted()}, nil
}

func (s *Service) Multi(ctx context.Context, req *coordpb.MultiRequest) (*coordpb.MultiResponse, error) {
	if n := len(req.GetOps()); n > MaxMultiOps {
		return nil, s.fail(fmt.Errorf("%w: multi has %d ops, the limit is %d", ErrInvalidArgument, n, MaxMultiOps))
	}
	res, err := s.write(ctx, req.GetWrite(), req.GetOps())
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.MultiResponse{Header: s.header(res.Zxid), Results: res.Results}, nil
}

// read serves a read at the consistency asked for: serve runs on this
// node's tree; when this follower has not yet applied the read index, ask
// runs the same request at the leader (whose answer is already a status).
func read[R any](ctx context.Context, s *Service, opts *coordpb.ReadOptions,
	serve func(t *tree.Tree, zxid uint64) (R, error),
	ask func(ctx context.Context, c coordpb.CoordClient, at *coordpb.ReadOptions) (R, error)) (R, error) {
	var zero R
	// ValueFromIncomingContext, not FromIncomingContext: every read passes
	// here, and the latter copies the whole metadata map.
	if len(metadata.ValueFromIncomingContext(ctx, mdRedirected)) > 0 {
		ctx = context.WithValue(ctx, noRedirectKey{}, true)
	}
	t, zxid, err := s.b.Read(ctx, opts)
	var be *BehindError
	if errors.As(err, &be) {
		c, err := s.b.LeaderCoord(be.Leader)
		if err != nil {
			return zero, s.fail(err)
		}
		return ask(metadata.AppendToOutgoingContext(forwardCtx(ctx), mdRedirected, "1"), c, atLeader(be.Index))
	}
	if err != nil {
		return zero, s.fail(err)
	}
	r, err := serve(t, zxid)
	if err != nil {
		return zero, s.fail(err)
	}
	return r, nil
}

func (s *Service) Get(ctx context.Context, req *coordpb.GetRequest) (*coordpb.GetResponse, error) {
	return read(ctx, s, req.GetRead(), func(t *tree.Tree, zxid uint64) (*coordpb.GetResponse, error) {
		if err := t.Check(req.GetPath(), tree.PermRead, CallerFrom(ctx)); err != nil {
			return nil, err
		}
		data, stat, err := t.Get(req.GetPath())
		if err != nil {
			return nil, err
		}
		return &coordpb.GetResponse{Header: s.header(zxid), Data: data, Stat: stat}, nil
	}, func(ctx context.Context, c coordpb.CoordClient, at *coordpb.ReadOptions) (*coordpb.GetResponse, error) {
		return c.Get(ctx, &coordpb.GetRequest{Path: req.GetPath(), Read: at})
	})
}

func (s *Service) Exists(ctx context.Context, req *coordpb.ExistsRequest) (*coordpb.ExistsResponse, error) {
	return read(ctx, s, req.GetRead(), func(t *tree.Tree, zxid uint64) (*coordpb.ExistsResponse, error) {
		// Existence is the parent's child list: READ on the parent.
		if err := t.CheckParent(req.GetPath(), tree.PermRead, CallerFrom(ctx)); err != nil {
			return nil, err
		}
		stat, ok, err := t.Exists(req.GetPath())
		if err != nil {
			return nil, err
		}
		return &coordpb.ExistsResponse{Header: s.header(zxid), Exists: ok, Stat: stat}, nil
	}, func(ctx context.Context, c coordpb.CoordClient, at *coordpb.ReadOptions) (*coordpb.ExistsResponse, error) {
		return c.Exists(ctx, &coordpb.ExistsRequest{Path: req.GetPath(), Read: at})
	})
}

func (s *Service) Children(ctx context.Context, req *coordpb.ChildrenRequest) (*coordpb.ChildrenResponse, error) {
	limit := int(req.GetLimit())
	switch {
	case limit < 0:
		return nil, s.fail(fmt.Errorf("%w: negative limit %d", ErrInvalidArgument, limit))
	case limit == 0:
		limit = DefaultChildrenPage
	case limit > MaxChildrenPage:
		limit = MaxChildrenPage
	}
	return read(ctx, s, req.GetRead(), func(t *tree.Tree, zxid uint64) (*coordpb.ChildrenResponse, error) {
		if err := t.Check(req.GetPath(), tree.PermRead, CallerFrom(ctx)); err != nil {
			return nil, err
		}
		names, stat, more, err := t.Children(req.GetPath(), req.GetStartAfter(), limit)
		if err != nil {
			return nil, err
		}
		return &coordpb.ChildrenResponse{Header: s.header(zxid), Names: names, Stat: stat, More: more}, nil
	}, func(ctx context.Context, c coordpb.CoordClient, at *coordpb.ReadOptions) (*coordpb.ChildrenResponse, error) {
		return c.Children(ctx, &coordpb.ChildrenRequest{Path: req.GetPath(), StartAfter: req.GetStartAfter(), Limit: int32(limit), Read: at})
	})
}

func (s *Service) Sync(ctx context.Context, req *coordpb.SyncRequest) (*coordpb.SyncResponse, error) {
	if req.GetPath() != "" {
		if err := tree.ValidatePath(req.GetPath()); err != nil {
			return nil, s.fail(err)
		}
		// Syncing a path needs READ on it (what it would let you read).
		t, _, err := s.b.Read(ctx, &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL})
		if err != nil {
			return nil, s.fail(err)
		}
		if err := t.Check(req.GetPath(), tree.PermRead, CallerFrom(ctx)); err != nil {
			return nil, s.fail(err)
		}
	}
	zxid, err := s.b.Sync(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.SyncResponse{Header: s.header(zxid)}, nil
}

func (s *Service) OpenSession(ctx context.Context, req *coordpb.OpenSessionRequest) (*coordpb.OpenSessionResponse, error) {
	ip := clientIP(ctx)
	if err := s.admitSession(ctx, ip); err != nil {
		return nil, s.fail(err)
	}
	id, timeout, zxid, err := s.b.OpenSession(ctx, req.GetTimeoutMs())
	if err != nil {
		return nil, s.fail(err)
	}
	s.sessionOpened(ip, id)
	return &coordpb.OpenSessionResponse{Header: s.header(zxid), SessionId: id, TimeoutMs: timeout}, nil
}

func (s *Service) KeepAlive(ctx context.Context, req *coordpb.KeepAliveRequest) (*coordpb.KeepAliveResponse, error) {
	timeout, err := s.b.KeepAlive(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.KeepAliveResponse{Header: s.header(0), TimeoutMs: timeout}, nil
}

func (s *Service) CloseSession(ctx context.Context, req *coordpb.CloseSessionRequest) (*coordpb.CloseSessionResponse, error) {
	zxid, err := s.b.CloseSession(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.CloseSessionResponse{Header: s.header(zxid)}, nil
}

func toPBMembers(ms []replica.Member) []*coordpb.Member {
	out := make([]*coordpb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, &coordpb.Member{Name: m.Name, Address: m.Address, Voter: m.Voter, Leader: m.Leader})
	}
	return out
}

func (s *Service) Members(ctx context.Context, _ *coordpb.MembersRequest) (*coordpb.MembersResponse, error) {
	ms, err := s.b.Members(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.MembersResponse{Header: s.header(s.b.Info().AppliedIndex), Members: toPBMembers(ms)}, nil
}

func (s *Service) AddMember(ctx context.Context, req *coordpb.AddMemberRequest) (*coordpb.AddMemberResponse, error) {
	if err := s.b.ChangeMembers(ctx, &coordpb.ChangeMembersRequest{Change: &coordpb.ChangeMembersRequest_Add{Add: req}}); err != nil {
		return nil, s.fail(err)
	}
	ms, err := s.b.Members(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.AddMemberResponse{Header: s.header(s.b.Info().AppliedIndex), Members: toPBMembers(ms)}, nil
}

func (s *Service) RemoveMember(ctx context.Context, req *coordpb.RemoveMemberRequest) (*coordpb.RemoveMemberResponse, error) {
	if err := s.b.ChangeMembers(ctx, &coordpb.ChangeMembersRequest{Change: &coordpb.ChangeMembersRequest_Remove{Remove: req}}); err != nil {
		return nil, s.fail(err)
	}
	ms, err := s.b.Members(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.RemoveMemberResponse{Header: s.header(s.b.Info().AppliedIndex), Members: toPBMembers(ms)}, nil
}

func (s *Service) Status(ctx context.Context, _ *coordpb.StatusRequest) (*coordpb.StatusResponse, error) {
	info := s.b.Info()
	ms, err := s.b.Members(ctx)
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.StatusResponse{
		Header:       s.header(info.AppliedIndex),
		Name:         info.Name,
		State:        info.State,
		Leader:       info.LeaderName,
		Term:         info.Term,
		CommitIndex:  info.CommitIndex,
		AppliedIndex: info.AppliedIndex,
		LastLogIndex: info.LastIndex,
		Znodes:       int64(info.Znodes),
		Members:      toPBMembers(ms),
	}, nil
}

// SetACL replaces a node's ACL (ADMIN on it, checked at apply).
func (s *Service) SetACL(ctx context.Context, req *coordpb.SetACLRequest) (*coordpb.SetACLResponse, error) {
	if req.GetOp() == nil {
		return nil, s.fail(missing("op"))
	}
	res, err := s.write(ctx, req.GetWrite(), []*coordpb.Op{{Op: &coordpb.Op_SetAcl{SetAcl: req.Op}}})
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.SetACLResponse{Header: s.header(res.Zxid), Stat: res.Results[0].GetSetAcl().GetStat()}, nil
}

// GetACL returns a node's ACL to a caller with READ or ADMIN on it.
func (s *Service) GetACL(ctx context.Context, req *coordpb.GetACLRequest) (*coordpb.GetACLResponse, error) {
	return read(ctx, s, req.GetRead(), func(t *tree.Tree, zxid uint64) (*coordpb.GetACLResponse, error) {
		c := CallerFrom(ctx)
		if err := t.Check(req.GetPath(), tree.PermRead, c); err != nil {
			if t.Check(req.GetPath(), tree.PermAdmin, c) != nil {
				return nil, err
			}
		}
		acl, stat, err := t.ACL(req.GetPath())
		if err != nil {
			return nil, err
		}
		return &coordpb.GetACLResponse{Header: s.header(zxid), Acl: acl, Stat: stat}, nil
	}, func(ctx context.Context, c coordpb.CoordClient, at *coordpb.ReadOptions) (*coordpb.GetACLResponse, error) {
		return c.GetACL(ctx, &coordpb.GetACLRequest{Path: req.GetPath(), Read: at})
	})
}

// snapshotChunk is the size of each streamed snapshot message.
const snapshotChunk = 256 << 10

func (s *Service) Snapshot(_ *coordpb.SnapshotRequest, stream coordpb.Coord_SnapshotServer) error {
	ctx := stream.Context()
	at, err := s.b.Sync(ctx)
	if err != nil {
		return s.fail(err)
	}
	t, zxid, err := s.b.Read(ctx, &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL, MinZxid: at})
	if err != nil {
		return s.fail(err)
	}
	w := &chunkWriter{send: func(b []byte) error { return stream.Send(&coordpb.SnapshotChunk{Data: b}) }}
	if err := replica.WriteSnapshot(w, t, zxid); err != nil {
		return s.fail(err)
	}
	return s.fail(w.flush())
}

// chunkWriter buffers writes into snapshotChunk-sized messages.
type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := snapshotChunk - len(w.buf)
		if room > len(p) {
			room = len(p)
		}
		w.buf = append(w.buf, p[:room]...)
		p = p[room:]
		if len(w.buf) == snapshotChunk {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = make([]byte, 0, snapshotChunk)
	return err
}

var _ io.Writer = (*chunkWriter)(nil)

// PeerService implements the node-to-node Peer service.
type PeerService struct {
	coordpb.UnimplementedPeerServer
	b   Backend
	log *slog.Logger
}

// NewPeerService returns the Peer service for b.
func NewPeerService(b Backend, log *slog.Logger) *PeerService {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PeerService{b: b, log: log}
}

func (p *PeerService) Propose(ctx context.Context, req *coordpb.ProposeRequest) (*coordpb.ProposeResponse, error) {
	res, err := p.b.ProposeLocal(ctx, req.GetCommand())
	if err != nil {
		return nil, ToStatus(p.log, err)
	}
	return &coordpb.ProposeResponse{Result: res}, nil
}

func (p *PeerService) ProposeBatch(ctx context.Context, req *coordpb.ProposeBatchRequest) (*coordpb.ProposeBatchResponse, error) {
	cmds := req.GetCommands()
	if len(cmds) == 0 {
		return nil, ToStatus(p.log, fmt.Errorf("%w: a batch needs at least one command", ErrInvalidArgument))
	}
	res, errs := p.b.ProposeBatchLocal(ctx, cmds)
	out := make([]*coordpb.ProposeOutcome, len(cmds))
	for i := range cmds {
		o := &coordpb.ProposeOutcome{}
		if errs[i] != nil {
			o.Status = EncodeStatus(ToStatus(p.log, errs[i]))
		} else {
			o.Result = res[i]
		}
		out[i] = o
	}
	return &coordpb.ProposeBatchResponse{Outcomes: out}, nil
}

func (p *PeerService) ReadIndex(ctx context.Context, _ *coordpb.ReadIndexRequest) (*coordpb.ReadIndexResponse, error) {
	idx, err := p.b.ReadIndexLocal(ctx)
	if err != nil {
		return nil, ToStatus(p.log, err)
	}
	return &coordpb.ReadIndexResponse{Index: idx}, nil
}

func (p *PeerService) ChangeMembers(ctx context.Context, req *coordpb.ChangeMembersRequest) (*coordpb.ChangeMembersResponse, error) {
	if err := p.b.ChangeMembersLocal(ctx, req); err != nil {
		return nil, ToStatus(p.log, err)
	}
	return &coordpb.ChangeMembersResponse{}, nil
}

func (p *PeerService) KeepAlives(ctx context.Context, req *coordpb.KeepAlivesRequest) (*coordpb.KeepAlivesResponse, error) {
	unknown, err := p.b.KeepAlivesLocal(ctx, req.GetSessionIds())
	if err != nil {
		return nil, ToStatus(p.log, err)
	}
	return &coordpb.KeepAlivesResponse{Unknown: unknown}, nil
}

// Watcher is the optional Backend ability to serve watch streams.
type Watcher interface {
	Watch(stream coordpb.Coord_WatchServer) error
}

func (s *Service) Watch(stream coordpb.Coord_WatchServer) error {
	w, ok := s.b.(Watcher)
	if !ok {
		return s.fail(fmt.Errorf("%w: watches are not served here", ErrInvalidArgument))
	}
	return w.Watch(stream)
}

// EventSource is the optional Backend ability to stream applied events to
// a follower (Peer.Events).
type EventSource interface {
	EventsLocal(req *coordpb.EventsRequest, stream coordpb.Peer_EventsServer) error
}

func (p *PeerService) Events(req *coordpb.EventsRequest, stream coordpb.Peer_EventsServer) error {
	es, ok := p.b.(EventSource)
	if !ok {
		return ToStatus(p.log, fmt.Errorf("%w: event streams are not served here", ErrInvalidArgument))
	}
	if err := es.EventsLocal(req, stream); err != nil {
		return ToStatus(p.log, err)
	}
	return nil
}
