package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

// callClient is a coordpb.CoordClient that sends the data operations
// (create, delete, set, get, exists, children, multi, sync, keepalive)
// over one Coord.Call stream per connection, many in flight at once,
// instead of one unary call each: a unary call costs its own HTTP/2
// stream, headers and trailers, about twice the CPU of a message on an
// open stream. Answers and errors are the unary ones (the server runs the
// same method), so everything above this type is unchanged. A server
// without Call (Unimplemented) is spoken to with unary calls from then on.
//
// Goroutines: one receiver per open stream, ending with the stream.
type callClient struct {
	coordpb.CoordClient // unary calls: the fallback, and every other method

	mu     sync.Mutex
	st     *callStream
	closed bool
	unary  atomic.Bool // the server has no Call method
	nextID atomic.Uint64
}

// errUseUnary: this server does not offer Call; use the unary method.
var errUseUnary = errors.New("server has no Call stream")

func newCallClient(cc grpc.ClientConnInterface) *callClient {
	return &callClient{CoordClient: coordpb.NewCoordClient(cc)}
}

// close ends the open stream (the connection is closing).
func (c *callClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.st != nil {
		c.st.cancel()
	}
}

// callStream is one open Coord.Call stream.
type callStream struct {
	stream  coordpb.Coord_CallClient
	cancel  context.CancelFunc
	sendMu  sync.Mutex
	mu      sync.Mutex
	pending map[uint64]chan *coordpb.CallResponse
	done    chan struct{} // closed when the stream has failed
	err     error         // why (set before done closes)
	retired atomic.Bool   // no new requests: it drains and closes
}

// retire makes the next request open a new stream and lets the current
// one finish the requests it carries, then close. The caller's identity
// (a login token) is fixed when a stream opens, so Login retires it.
func (c *callClient) retire() {
	c.mu.Lock()
	st := c.st
	c.st = nil
	c.mu.Unlock()
	if st == nil {
		return
	}
	st.retired.Store(true)
	st.sendMu.Lock()
	_ = st.stream.CloseSend() // the server answers what is in flight, then ends
	st.sendMu.Unlock()
}

// stream returns the open stream, opening one if there is none or the
// last one failed.
func (c *callClient) stream() (*callStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.st != nil {
		select {
		case <-c.st.done:
		default:
			return c.st, nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.CoordClient.Call(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	st := &callStream{stream: s, cancel: cancel, pending: map[uint64]chan *coordpb.CallResponse{}, done: make(chan struct{})}
	c.st = st
	go c.receive(st)
	return st, nil
}

// receive hands each answer to its caller until the stream fails.
func (c *callClient) receive(st *callStream) {
	for {
		r, err := st.stream.Recv()
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				c.unary.Store(true)
				err = errUseUnary
			}
			st.mu.Lock()
			st.err = err
			close(st.done)
			st.mu.Unlock()
			st.cancel()
			return
		}
		st.mu.Lock()
		ch := st.pending[r.GetId()]
		delete(st.pending, r.GetId())
		st.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
}

// do sends req and waits for its answer, returning the unary-equivalent
// error for a failed operation.
func (c *callClient) do(ctx context.Context, req *coordpb.CallRequest) (*coordpb.CallResponse, error) {
	if c.unary.Load() {
		return nil, errUseUnary
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	st, err := c.stream()
	if err != nil {
		return nil, err
	}
	if st.retired.Load() {
		// Retired between stream() and here: take the new one.
		if st, err = c.stream(); err != nil {
			return nil, err
		}
	}
	id := c.nextID.Add(1)
	req.Id = id
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutMs = max(1, time.Until(dl).Milliseconds())
	}
	ch := make(chan *coordpb.CallResponse, 1)
	st.mu.Lock()
	select {
	case <-st.done:
		st.mu.Unlock()
		return nil, st.err
	default:
	}
	st.pending[id] = ch
	st.mu.Unlock()
	st.sendMu.Lock()
	if st.retired.Load() {
		st.sendMu.Unlock()
		st.mu.Lock()
		delete(st.pending, id)
		st.mu.Unlock()
		return c.do(ctx, req) // never sent: send it on the new stream
	}
	err = st.stream.Send(req)
	st.sendMu.Unlock()
	if err != nil {
		// The stream broke; its receiver reports why.
		<-st.done
		st.mu.Lock()
		delete(st.pending, id)
		st.mu.Unlock()
		return nil, st.err
	}
	select {
	case r := <-ch:
		if b := r.GetStatus(); len(b) > 0 {
			var s spb.Status
			if err := proto.Unmarshal(b, &s); err != nil || s.GetCode() == int32(codes.OK) {
				return nil, status.Errorf(codes.Internal, "malformed error from the server for call %d", id)
			}
			return nil, status.FromProto(&s).Err()
		}
		return r, nil
	case <-st.done:
		return nil, st.err
	case <-ctx.Done():
		st.mu.Lock()
		delete(st.pending, id)
		st.mu.Unlock()
		st.sendMu.Lock()
		_ = st.stream.Send(&coordpb.CallRequest{Id: id, Op: &coordpb.CallRequest_Cancel{Cancel: true}})
		st.sendMu.Unlock()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// result unwraps an answer of type T, or reports a server that answered
// with something else.
func result[T any](r *coordpb.CallResponse, err error, get func(*coordpb.CallResponse) T, zero T) (T, error) {
	if err != nil {
		return zero, err
	}
	v := get(r)
	if any(v) == any(zero) {
		return zero, status.Errorf(codes.Internal, "call %d: the server answered without a result", r.GetId())
	}
	return v, nil
}

func (c *callClient) Create(ctx context.Context, in *coordpb.CreateRequest, opts ...grpc.CallOption) (*coordpb.CreateResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Create{Create: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Create(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetCreate, nil)
}

func (c *callClient) Delete(ctx context.Context, in *coordpb.DeleteRequest, opts ...grpc.CallOption) (*coordpb.DeleteResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Delete{Delete: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Delete(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetDelete, nil)
}

func (c *callClient) Set(ctx context.Context, in *coordpb.SetRequest, opts ...grpc.CallOption) (*coordpb.SetResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Set{Set: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Set(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetSet, nil)
}

func (c *callClient) Get(ctx context.Context, in *coordpb.GetRequest, opts ...grpc.CallOption) (*coordpb.GetResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Get{Get: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Get(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetGet, nil)
}

func (c *callClient) Exists(ctx context.Context, in *coordpb.ExistsRequest, opts ...grpc.CallOption) (*coordpb.ExistsResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Exists{Exists: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Exists(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetExists, nil)
}

func (c *callClient) Children(ctx context.Context, in *coordpb.ChildrenRequest, opts ...grpc.CallOption) (*coordpb.ChildrenResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Children{Children: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Children(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetChildren, nil)
}

func (c *callClient) Multi(ctx context.Context, in *coordpb.MultiRequest, opts ...grpc.CallOption) (*coordpb.MultiResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Multi{Multi: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Multi(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetMulti, nil)
}

func (c *callClient) Sync(ctx context.Context, in *coordpb.SyncRequest, opts ...grpc.CallOption) (*coordpb.SyncResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_Sync{Sync: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.Sync(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetSync, nil)
}

func (c *callClient) KeepAlive(ctx context.Context, in *coordpb.KeepAliveRequest, opts ...grpc.CallOption) (*coordpb.KeepAliveResponse, error) {
	r, err := c.do(ctx, &coordpb.CallRequest{Op: &coordpb.CallRequest_KeepAlive{KeepAlive: in}})
	if errors.Is(err, errUseUnary) {
		return c.CoordClient.KeepAlive(ctx, in, opts...)
	}
	return result(r, err, (*coordpb.CallResponse).GetKeepAlive, nil)
}
