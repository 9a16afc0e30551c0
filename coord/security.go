package coord

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"coord/coord/auth"
	"coord/coord/rpc"
)

// security is a node's TLS wiring: the reloading certificate store, the
// peer allow-list, the listener wrapper, the raft connection check and
// the credentials to dial peers with. A nil *security means plaintext; its
// methods then return the plaintext choices.
type security struct {
	store *auth.Store
	peers []string
}

func newSecurity(cfg Config) (*security, error) {
	store, err := auth.LoadStore(cfg.TLS)
	if err != nil {
		return nil, err
	}
	return &security{store: store, peers: cfg.peerNames()}, nil
}

// listener terminates TLS before the mux splits raft from gRPC.
func (s *security) listener(ln net.Listener) net.Listener {
	return tls.NewListener(ln, s.store.ServerConfig())
}

// checkRaft admits a raft connection only from a verified allowed peer.
func (s *security) checkRaft(c net.Conn) error {
	var st tls.ConnectionState
	for i := 0; i < 8; i++ {
		if tc, ok := c.(*tls.Conn); ok {
			st = tc.ConnectionState()
			break
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return fmt.Errorf("%w: raft connection without TLS", auth.ErrNotPeer)
		}
		c = u.NetConn()
	}
	if len(st.VerifiedChains) == 0 {
		return fmt.Errorf("%w: raft connection without a verified certificate", auth.ErrNotPeer)
	}
	if id := auth.FromTLS(st, s.peers); id.Kind != auth.Peer {
		return fmt.Errorf("%w: %s", auth.ErrNotPeer, id)
	}
	return nil
}

// dialTLS is the raft dial config (nil: plaintext).
func (s *security) dialTLS() *tls.Config {
	if s == nil {
		return nil
	}
	return s.store.PeerConfig(s.peers)
}

// peerCreds are the credentials for peer gRPC connections.
func (s *security) peerCreds() credentials.TransportCredentials {
	if s == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(s.store.PeerConfig(s.peers))
}

// serverOptions make gRPC see the TLS state the listener negotiated.
func (s *security) serverOptions() []grpc.ServerOption {
	if s == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.Creds(auth.Terminated{})}
}

// peerList is the allow-list (nil without TLS).
func (s *security) peerList() []string {
	if s == nil {
		return nil
	}
	return s.peers
}

// tokenWait bounds how long a node that has not yet applied a token's
// user record waits for it before refusing the call.
const tokenWait = 5 * time.Second

var _ rpc.UserGenerations = (*Server)(nil)

// UserGeneration implements rpc.UserGenerations on this node's state: a
// token names the generation (a zxid) of the user it was issued for; a
// node behind that zxid waits to apply it (a follower that lags the
// login), then compares. A node that lags a revocation still accepts the
// old token until it applies the change (replication lag: milliseconds
// when healthy).
func (s *Server) UserGeneration(ctx context.Context, name string, atLeast uint64) (uint64, bool, error) {
	if !s.ready.Load() {
		return 0, false, errStarting
	}
	if s.rep.Applied() < atLeast {
		wctx, cancel := context.WithTimeout(ctx, tokenWait)
		defer cancel()
		if err := s.rep.WaitApplied(wctx, atLeast); err != nil {
			return 0, false, fmt.Errorf("check login token: %w", err)
		}
	}
	t, _ := s.rep.State()
	gen, ok := t.UserGeneration(name)
	return gen, ok, nil
}
