package lease

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/leasepb"
)

// adminServer implements LeaseAdmin over a Node: the operator- and
// application-facing service (coordctl lease get|list|acquire|release|hold).
type adminServer struct {
	leasepb.UnimplementedLeaseAdminServer
	n    *Node
	mu   sync.Mutex
	held map[string]*Lease // leases acquired by non-stream Acquire, until Release
}

// RegisterAdmin registers the LeaseAdmin service on s.
func (n *Node) RegisterAdmin(s grpc.ServiceRegistrar) {
	leasepb.RegisterLeaseAdminServer(s, &adminServer{n: n, held: map[string]*Lease{}})
}

// toStatus is the one place lease errors become gRPC status codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, ErrBadResource), errors.Is(err, ErrInvalidConfig):
		code = codes.InvalidArgument
	case errors.Is(err, ErrLeaseHeld), errors.Is(err, ErrNotOwner), errors.Is(err, ErrConfigMismatch):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrNoQuorum), errors.Is(err, ErrRecovering), errors.Is(err, ErrClockUnsafe), errors.Is(err, ErrClosed):
		code = codes.Unavailable
	}
	return status.Error(code, err.Error())
}

func infoPB(h HolderInfo) *leasepb.LeaseInfo {
	li := &leasepb.LeaseInfo{Resource: h.Resource, Holder: string(h.Holder), Epoch: h.Epoch, Released: h.Released}
	if !h.Expiry.IsZero() {
		li.ExpiryUnixNanos = h.Expiry.UnixNano()
	}
	return li
}

func leaseInfo(l *Lease) HolderInfo {
	return HolderInfo{Resource: l.Resource(), Holder: l.Holder(), Epoch: l.Epoch(), Expiry: l.Expiry()}
}

func (a *adminServer) Get(ctx context.Context, req *leasepb.GetRequest) (*leasepb.GetResponse, error) {
	var h HolderInfo
	var err error
	if req.Local {
		h, err = a.n.LocalHolder(ctx, req.Resource)
	} else {
		h, err = a.n.Holder(ctx, req.Resource)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &leasepb.GetResponse{Lease: infoPB(h)}, nil
}

func (a *adminServer) List(ctx context.Context, _ *leasepb.ListRequest) (*leasepb.ListResponse, error) {
	hs, err := a.n.List(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &leasepb.ListResponse{}
	for _, h := range hs {
		resp.Leases = append(resp.Leases, infoPB(h))
	}
	return resp, nil
}

func (a *adminServer) Acquire(req *leasepb.AcquireRequest, stream leasepb.LeaseAdmin_AcquireServer) error {
	ctx := stream.Context()
	if !req.Stream {
		a.mu.Lock()
		l := a.held[req.Resource]
		a.mu.Unlock()
		if l != nil && l.Valid() {
			return toStatus(stream.Send(a.event(leasepb.AcquireEvent_ACQUIRED, l)))
		}
	}
	var l *Lease
	var err error
	if req.Try {
		l, err = a.n.TryAcquire(ctx, req.Resource)
	} else {
		l, err = a.n.Acquire(ctx, req.Resource)
	}
	if err != nil {
		return toStatus(err)
	}
	if !req.Stream {
		a.mu.Lock()
		a.held[req.Resource] = l
		a.mu.Unlock()
		// Owner: the lease. Forgets it once it ends (released, lost, node closed).
		go func() {
			<-l.Done()
			a.mu.Lock()
			if a.held[req.Resource] == l {
				delete(a.held, req.Resource)
			}
			a.mu.Unlock()
		}()
		return toStatus(stream.Send(a.event(leasepb.AcquireEvent_ACQUIRED, l)))
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*a.n.cfg.RoundTimeout)
		defer cancel()
		_ = l.Release(rctx)
	}()
	if err := stream.Send(a.event(leasepb.AcquireEvent_ACQUIRED, l)); err != nil {
		return err
	}
	tick := time.NewTicker(a.n.cfg.RoundTimeout / 2)
	defer tick.Stop()
	last := l.Expiry()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.Done():
			ev := a.event(leasepb.AcquireEvent_LOST, l)
			ev.Reason = l.Err().Error()
			return stream.Send(ev)
		case <-tick.C:
			if e := l.Expiry(); e.After(last) && l.Valid() {
				last = e
				if err := stream.Send(a.event(leasepb.AcquireEvent_RENEWED, l)); err != nil {
					return err
				}
			}
		}
	}
}

// acquiredEvent reports l; valid_for is the lease's remaining validity minus
// one RoundTimeout, the bound on the event's one-way delay to the client
// (the client counts from receipt).
func (a *adminServer) event(k leasepb.AcquireEvent_Kind, l *Lease) *leasepb.AcquireEvent {
	valid := max(0, l.Remaining()-a.n.cfg.RoundTimeout)
	return &leasepb.AcquireEvent{Kind: k, Lease: infoPB(leaseInfo(l)), ValidForNanos: int64(valid)}
}

func (a *adminServer) Release(ctx context.Context, req *leasepb.ReleaseRequest) (*leasepb.ReleaseResponse, error) {
	a.mu.Lock()
	l := a.held[req.Resource]
	delete(a.held, req.Resource)
	a.mu.Unlock()
	if l == nil {
		return nil, toStatus(ErrNotOwner)
	}
	if err := l.Release(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &leasepb.ReleaseResponse{}, nil
}
