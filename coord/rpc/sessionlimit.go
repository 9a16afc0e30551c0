package rpc

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc/peer"

	"coord/proto/coordpb"
)

// DefaultMaxSessionsPerAddress bounds the live sessions one client IP
// address may have opened through one node.
const DefaultMaxSessionsPerAddress = 10_000

// sessionLimit counts the sessions each client address opened through
// this node. Closed and expired ones are pruned against the applied state
// when an address reaches the limit, so the count is of live sessions.
// It is per node: a client spread over N nodes can hold N × the limit.
type sessionLimit struct {
	mu   sync.Mutex
	byIP map[string][]uint64
}

func clientIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

// admit reports an error when ip already has max live sessions.
func (s *Service) admitSession(ctx context.Context, ip string) error {
	max := s.MaxSessionsPerAddress
	if max <= 0 || ip == "" {
		return nil
	}
	s.sessions.mu.Lock()
	ids := s.sessions.byIP[ip]
	s.sessions.mu.Unlock()
	if len(ids) < max {
		return nil
	}
	t, _, err := s.b.Read(ctx, &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL})
	if err != nil {
		return err
	}
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	live := s.sessions.byIP[ip][:0]
	for _, id := range s.sessions.byIP[ip] {
		if t.HasSession(id) {
			live = append(live, id)
		}
	}
	s.sessions.byIP[ip] = live
	if len(live) >= max {
		return fmt.Errorf("%w: %s has %d open sessions on this node, the limit is %d", ErrInvalidArgument, ip, len(live), max)
	}
	return nil
}

func (s *Service) sessionOpened(ip string, id uint64) {
	if s.MaxSessionsPerAddress <= 0 || ip == "" {
		return
	}
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	if s.sessions.byIP == nil {
		s.sessions.byIP = make(map[string][]uint64)
	}
	s.sessions.byIP[ip] = append(s.sessions.byIP[ip], id)
}
