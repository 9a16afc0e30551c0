package par

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"coord/proto/parpb"
)

// Item is one faulty entry the requester asks about.
type Item struct {
	Index, Term uint64
	Cksum       uint32 // the requester's own identifier checksum
}

// Client asks the other voters' PeerRepair services. It dials lazily and
// holds one connection per peer until Close.
type Client struct {
	self  string
	peers []Peer
	// CallTimeout bounds one call to one peer.
	CallTimeout time.Duration
	// Creds secures the connections to peers (nil: plaintext, for a
	// cluster without TLS). Set before the first call.
	Creds credentials.TransportCredentials

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

var _ Fetcher = (*Client)(nil)

// NewClient makes a client for the given other voters.
func NewClient(self string, peers []Peer) *Client {
	return &Client{self: self, peers: peers, CallTimeout: time.Second, conns: map[string]*grpc.ClientConn{}}
}

// Close closes the connections.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, cc := range c.conns {
		errs = append(errs, cc.Close())
	}
	c.conns = map[string]*grpc.ClientConn{}
	return errors.Join(errs...)
}

func (c *Client) conn(p Peer) (parpb.PeerRepairClient, error) {
	cc, err := c.grpcConn(p)
	if err != nil {
		return nil, err
	}
	return parpb.NewPeerRepairClient(cc), nil
}

// grpcConn returns the (shared) connection to p.
func (c *Client) grpcConn(p Peer) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, ok := c.conns[p.Addr]
	if !ok {
		var err error
		// Peers restart all the time during recovery: reconnect fast
		// instead of gRPC's default 1s+ backoff.
		creds := c.Creds
		if creds == nil {
			creds = insecure.NewCredentials()
		}
		cc, err = grpc.NewClient(p.Addr, grpc.WithTransportCredentials(creds),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", p.Addr, err)
		}
		c.conns[p.Addr] = cc
	}
	return cc, nil
}

// itemReply is one peer's verified view of one item.
type itemReply struct {
	Reply
	env []byte
}

type peerAnswer struct{ replies []itemReply }

// ask queries every peer in parallel; answers[k] is nil for a peer that did
// not answer. Replies are verified against each item's own checksum.
func (c *Client) ask(ctx context.Context, items []Item) []*peerAnswer {
	out := make([]*peerAnswer, len(c.peers))
	req := &parpb.GetEntriesRequest{Requester: c.self}
	for _, it := range items {
		req.Items = append(req.Items, &parpb.Item{Index: it.Index, Term: it.Term})
	}
	var wg sync.WaitGroup
	for k, p := range c.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := c.conn(p)
			if err != nil {
				return
			}
			cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
			defer cancel()
			resp, err := cl.GetEntries(cctx, req, grpc.WaitForReady(true))
			if err != nil || len(resp.Replies) != len(items) {
				return
			}
			a := &peerAnswer{replies: make([]itemReply, len(items))}
			for i, r := range resp.Replies {
				ir := itemReply{Reply: Reply{From: p.Name, Status: Status(r.Status), DurableTerm: resp.DurableTerm}}
				if ir.Status == StatusHave {
					l, ck, err := decodeEnvelope(r.Envelope)
					if err == nil && l.Index == items[i].Index && l.Term == items[i].Term && ck == items[i].Cksum {
						ir.Verified, ir.env = true, r.Envelope
					}
				}
				a.replies[i] = ir
			}
			out[k] = a
		}()
	}
	wg.Wait()
	return out
}

// Fetch returns a verified intact copy of (index, term) from any peer
// (rule 1), retrying until ctx ends.
func (c *Client) Fetch(ctx context.Context, index, term uint64, cksum uint32) ([]byte, error) {
	for {
		for _, a := range c.ask(ctx, []Item{{Index: index, Term: term, Cksum: cksum}}) {
			if a != nil && a.replies[0].Verified {
				return a.replies[0].env, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch entry %d: no intact copy: %w", index, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// allTerms returns the max durable term of every other voter; ok is false
// unless every one answered and none is amnesic (design §4.5).
func (c *Client) allTerms(ctx context.Context) (uint64, bool) {
	var m uint64
	for _, p := range c.peers {
		cl, err := c.conn(p)
		if err != nil {
			return 0, false
		}
		cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
		resp, err := cl.GetTerm(cctx, &parpb.GetTermRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil || resp.Amnesic {
			return 0, false
		}
		m = max(m, resp.DurableTerm)
	}
	return m, true
}
