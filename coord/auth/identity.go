package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Kind says how a caller was identified.
type Kind uint8

// Kinds of identity.
const (
	// Anonymous: no certificate, no token.
	Anonymous Kind = iota
	// Cert: a client certificate signed by the CA (name = CN).
	Cert
	// Peer: a certificate naming an allowed peer (name = node name).
	Peer
	// User: a user/password session token (name = user).
	User
)

// Identity is who a call runs as.
type Identity struct {
	Kind Kind
	Name string
}

// Anyone is the anonymous caller.
var Anyone = Identity{}

// String is "anonymous", "x509:NAME", "peer:NAME" or "user:NAME".
func (id Identity) String() string {
	switch id.Kind {
	case Cert:
		return "x509:" + id.Name
	case Peer:
		return "peer:" + id.Name
	case User:
		return "user:" + id.Name
	}
	return "anonymous"
}

// TLSState returns the verified TLS state of the call's connection, if the
// connection is TLS and the client presented a verified certificate.
func TLSState(ctx context.Context) (tls.ConnectionState, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return tls.ConnectionState{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return ti.State, len(ti.State.VerifiedChains) > 0
}

// FromTLS is the identity a verified client certificate gives: Peer when
// it names an allowed peer and carries the server usage (only node
// certificates do), else Cert with the CN.
func FromTLS(cs tls.ConnectionState, peers []string) Identity {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return Anyone
	}
	leaf := cs.PeerCertificates[0]
	if name, ok := PeerName(leaf, peers); ok && slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return Identity{Kind: Peer, Name: name}
	}
	return Identity{Kind: Cert, Name: leaf.Subject.CommonName}
}

// tlsConn finds the *tls.Conn under wrappers that expose NetConn (the mux's
// buffered connection does).
func tlsConn(c net.Conn) (*tls.Conn, bool) {
	for i := 0; i < 8 && c != nil; i++ {
		if tc, ok := c.(*tls.Conn); ok {
			return tc, true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = u.NetConn()
	}
	return nil, false
}

// Terminated is the gRPC server credential for connections whose TLS was
// already terminated at the listener (before the mux split raft from
// gRPC): its handshake only reports the connection's TLS state to gRPC, so
// handlers see the peer's certificate through peer.FromContext.
type Terminated struct{}

var _ credentials.TransportCredentials = Terminated{}

// ServerHandshake implements credentials.TransportCredentials.
func (Terminated) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := tlsConn(c)
	if !ok {
		return c, nil, nil
	}
	return c, credentials.TLSInfo{
		State:          tc.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// ClientHandshake implements credentials.TransportCredentials; Terminated
// is server-side only.
func (Terminated) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, nil, nil
}

// Info implements credentials.TransportCredentials.
func (Terminated) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.2"}
}

// Clone implements credentials.TransportCredentials.
func (Terminated) Clone() credentials.TransportCredentials { return Terminated{} }

// OverrideServerName implements credentials.TransportCredentials.
func (Terminated) OverrideServerName(string) error { return nil }
