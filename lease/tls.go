package lease

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"coord/internal/tlsconf"
)

// Flease traffic over mutual TLS. With Config.TLS set:
//
//  1. The node dials member M with its own certificate and accepts the
//     other side only if its certificate verifies against the CA and names
//     M's ID (CN or DNS SAN): a member is bound to its ID, not just to "some
//     certificate of the CA".
//  2. The member's gRPC server is built with ServerCredentials: every
//     connection must present a CA-signed certificate (plaintext and
//     certificate-less peers fail the handshake).
//  3. Every FleasePeer request must come over a connection whose verified
//     certificate names the member its header claims to be (From) and is a
//     node certificate (server usage), else PermissionDenied. LeaseAdmin
//     takes any CA-signed certificate (the operator's).
//
// The TLS material is a tlsconf.Store (the one coord nodes use: the same
// --cert/--key/--ca files, reloaded when they change). lease may not
// import coord, hence internal/tlsconf.

// TLSFiles names a member's certificate, key and CA (PEM files).
type TLSFiles = tlsconf.Files

// TLSStore is a member's loaded TLS material; see LoadTLS.
type TLSStore = tlsconf.Store

// LoadTLS loads a member's TLS files (reloaded when they change).
func LoadTLS(files TLSFiles) (*TLSStore, error) { return tlsconf.LoadStore(files) }

// ServerCredentials are the gRPC server credentials of a member with TLS:
// the store's certificate, and a CA-signed client certificate required of
// every caller.
func ServerCredentials(store *TLSStore) credentials.TransportCredentials {
	cfg := store.ServerConfig()
	get := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := get(h)
		if err != nil {
			return nil, err
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
		return c, nil
	}
	return credentials.NewTLS(cfg)
}

// dialCreds is how the node dials member id.
func (c Config) dialCreds(id NodeID) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(c.TLS.PeerConfig([]string{string(id)})))
}

// checkPeerCert admits a FleasePeer request only from a verified node
// certificate naming from (a no-op without TLS).
func (n *Node) checkPeerCert(ctx context.Context, from string) error {
	if n.cfg.TLS == nil {
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "lease: FleasePeer needs a member certificate")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.PeerCertificates) == 0 {
		return status.Error(codes.PermissionDenied, "lease: FleasePeer needs a verified member certificate")
	}
	leaf := ti.State.PeerCertificates[0]
	if _, ok := tlsconf.PeerName(leaf, []string{from}); !ok || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return status.Errorf(codes.PermissionDenied, "lease: certificate %q is not member %q's", leaf.Subject.CommonName, from)
	}
	return nil
}

// ClientTLS is an operator's dial config for a member's LeaseAdmin (a
// member requires a CA-signed client certificate): the member's
// certificate must verify against the CA for the dialled host.
func ClientTLS(files TLSFiles) (*tls.Config, error) { return tlsconf.ClientConfig(files) }
