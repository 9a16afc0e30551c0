package coord

import (
	"crypto/tls"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"coord/coord/auth"
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
