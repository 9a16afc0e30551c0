package rpc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/coordpb"
)

// The Call stream: the data operations of the unary methods, multiplexed
// over one stream per client connection. Each request runs through the
// same method and the same interceptor chain (Service.Interceptor) as its
// unary twin, under the FullMethod name of that twin, so metrics and
// permission checks cannot tell the two apart.
//
// Goroutines: the handler's (receiving), one sender per stream, one per
// request in flight; all end when the stream does (requests in flight are
// cancelled with it).

// maxCallsInFlight bounds one stream's concurrent requests; beyond it the
// stream stops reading (gRPC flow control then pushes back on the client).
const maxCallsInFlight = 4096

// Call implements the Coord.Call stream.
func (s *Service) Call(stream coordpb.Coord_CallServer) error {
	ctx, cancelAll := context.WithCancel(stream.Context())
	defer cancelAll()
	out := make(chan *coordpb.CallResponse, 256)
	sendDone := make(chan error, 1)
	go func() {
		var err error
		for r := range out {
			if err == nil {
				err = stream.Send(r)
				if err != nil {
					cancelAll()
				}
			}
		}
		sendDone <- err
	}()
	var (
		mu       sync.Mutex
		inflight = map[uint64]context.CancelFunc{}
		wg       sync.WaitGroup
		slots    = make(chan struct{}, maxCallsInFlight)
	)
	defer func() {
		cancelAll()
		wg.Wait()
		close(out)
		<-sendDone
	}()
	for {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				// The client is done sending: answer what is in flight.
				wg.Wait()
			}
			// Otherwise it went away: requests in flight are cancelled,
			// like unary calls whose caller hung up.
			return nil
		}
		id := req.GetId()
		if _, ok := req.GetOp().(*coordpb.CallRequest_Cancel); ok {
			mu.Lock()
			if cancel := inflight[id]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		rctx, cancel := requestContext(ctx, req.GetTimeoutMs())
		mu.Lock()
		if _, dup := inflight[id]; dup {
			mu.Unlock()
			cancel()
			out <- &coordpb.CallResponse{Id: id, Status: EncodeStatus(status.Errorf(codes.InvalidArgument, "call id %d is already in flight on this stream", id))}
			continue
		}
		inflight[id] = cancel
		mu.Unlock()
		// Session traffic never waits behind data requests: a keepalive
		// takes no slot, so a stream full of queued writes cannot expire
		// its session (admission control sheds the data requests).
		_, session := req.GetOp().(*coordpb.CallRequest_KeepAlive)
		if !session {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				cancel()
				return nil // the stream is gone; nobody waits for an answer
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := s.dispatch(rctx, req)
			cancel()
			mu.Lock()
			delete(inflight, id)
			mu.Unlock()
			if !session {
				<-slots
			}
			out <- resp
		}()
	}
}

// requestContext is one request's context on a stream: a child of the
// stream's, with the request's timeout if it has one. Exactly one child
// is made, and the caller's cancel releases it. (Until 24 Nov a
// WithCancel child was made first and then replaced by the WithTimeout
// one whenever the request had a timeout — every request of the Go
// client — and its cancel was never called: the stream's context kept
// one dead child per request in its children map until the stream
// ended. Under the overload proof's half-million requests that was
// 15-20 MB of contexts per node that every GC cycle had to mark, and the
// after phase ran at 1.5-2× the baseline latency; docs/RELIABILITY.md,
// "24 Nov: after the overload".)
func requestContext(ctx context.Context, timeoutMs int64) (context.Context, context.CancelFunc) {
	if timeoutMs > 0 {
		return context.WithTimeout(ctx, time.Duration(timeoutMs)*time.Millisecond)
	}
	return context.WithCancel(ctx)
}

// dispatch runs one request through its unary method and the interceptor
// chain, and wraps the answer.
func (s *Service) dispatch(ctx context.Context, req *coordpb.CallRequest) *coordpb.CallResponse {
	resp := &coordpb.CallResponse{Id: req.GetId()}
	var (
		method  string
		in      any
		handler grpc.UnaryHandler
	)
	switch op := req.GetOp().(type) {
	case *coordpb.CallRequest_Create:
		method, in = coordpb.Coord_Create_FullMethodName, op.Create
		handler = func(ctx context.Context, r any) (any, error) { return s.Create(ctx, r.(*coordpb.CreateRequest)) }
	case *coordpb.CallRequest_Delete:
		method, in = coordpb.Coord_Delete_FullMethodName, op.Delete
		handler = func(ctx context.Context, r any) (any, error) { return s.Delete(ctx, r.(*coordpb.DeleteRequest)) }
	case *coordpb.CallRequest_Set:
		method, in = coordpb.Coord_Set_FullMethodName, op.Set
		handler = func(ctx context.Context, r any) (any, error) { return s.Set(ctx, r.(*coordpb.SetRequest)) }
	case *coordpb.CallRequest_Get:
		method, in = coordpb.Coord_Get_FullMethodName, op.Get
		handler = func(ctx context.Context, r any) (any, error) { return s.Get(ctx, r.(*coordpb.GetRequest)) }
	case *coordpb.CallRequest_Exists:
		method, in = coordpb.Coord_Exists_FullMethodName, op.Exists
		handler = func(ctx context.Context, r any) (any, error) { return s.Exists(ctx, r.(*coordpb.ExistsRequest)) }
	case *coordpb.CallRequest_Children:
		method, in = coordpb.Coord_Children_FullMethodName, op.Children
		handler = func(ctx context.Context, r any) (any, error) { return s.Children(ctx, r.(*coordpb.ChildrenRequest)) }
	case *coordpb.CallRequest_Multi:
		method, in = coordpb.Coord_Multi_FullMethodName, op.Multi
		handler = func(ctx context.Context, r any) (any, error) { return s.Multi(ctx, r.(*coordpb.MultiRequest)) }
	case *coordpb.CallRequest_Sync:
		method, in = coordpb.Coord_Sync_FullMethodName, op.Sync
		handler = func(ctx context.Context, r any) (any, error) { return s.Sync(ctx, r.(*coordpb.SyncRequest)) }
	case *coordpb.CallRequest_KeepAlive:
		method, in = coordpb.Coord_KeepAlive_FullMethodName, op.KeepAlive
		handler = func(ctx context.Context, r any) (any, error) { return s.KeepAlive(ctx, r.(*coordpb.KeepAliveRequest)) }
	default:
		resp.Status = EncodeStatus(status.Errorf(codes.InvalidArgument, "call %d carries no operation this server knows (%T)", req.GetId(), req.GetOp()))
		return resp
	}
	var out any
	var err error
	if s.Interceptor != nil {
		out, err = s.Interceptor(ctx, in, &grpc.UnaryServerInfo{Server: s, FullMethod: method}, handler)
	} else {
		out, err = handler(ctx, in)
	}
	if err != nil {
		resp.Status = EncodeStatus(err)
		return resp
	}
	switch r := out.(type) {
	case *coordpb.CreateResponse:
		resp.Result = &coordpb.CallResponse_Create{Create: r}
	case *coordpb.DeleteResponse:
		resp.Result = &coordpb.CallResponse_Delete{Delete: r}
	case *coordpb.SetResponse:
		resp.Result = &coordpb.CallResponse_Set{Set: r}
	case *coordpb.GetResponse:
		resp.Result = &coordpb.CallResponse_Get{Get: r}
	case *coordpb.ExistsResponse:
		resp.Result = &coordpb.CallResponse_Exists{Exists: r}
	case *coordpb.ChildrenResponse:
		resp.Result = &coordpb.CallResponse_Children{Children: r}
	case *coordpb.MultiResponse:
		resp.Result = &coordpb.CallResponse_Multi{Multi: r}
	case *coordpb.SyncResponse:
		resp.Result = &coordpb.CallResponse_Sync{Sync: r}
	case *coordpb.KeepAliveResponse:
		resp.Result = &coordpb.CallResponse_KeepAlive{KeepAlive: r}
	default:
		resp.Status = EncodeStatus(status.Errorf(codes.Internal, "call %d: unexpected response %T", req.GetId(), out))
	}
	return resp
}
