package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"

	"coord/internal/tlsconf"
)

// Errors of the auth package.
var (
	// ErrBadConfig: TLS files or options that cannot work together.
	ErrBadConfig = tlsconf.ErrBadConfig
	// ErrNotPeer: a TLS peer whose certificate names no allowed peer.
	ErrNotPeer = tlsconf.ErrNotPeer
	// ErrPermissionDenied: the caller lacks a permission.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthenticated: the call needs an identity and has none.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrTooManyLogins: a password login refused by the login rate limit
	// (before any password check); retry later.
	ErrTooManyLogins = errors.New("too many logins")
)

// The TLS builders live in internal/tlsconf (lease uses them too and may
// not import coord); these are their names in coord.

// TLSFiles names the three PEM files of a node or client: its certificate,
// its key and the CA that signs everyone's certificates.
type TLSFiles = tlsconf.Files

// Store holds a node's certificate and CA pool and reloads them when the
// files change; see tlsconf.Store.
type Store = tlsconf.Store

// LoadStore reads the files once; an error names the bad file.
func LoadStore(files TLSFiles) (*Store, error) { return tlsconf.LoadStore(files) }

// VerifyPeer verifies the presented chain against pool for usage and
// returns the allowed peer name the leaf carries.
func VerifyPeer(cs tls.ConnectionState, pool *x509.CertPool, peers []string, usage x509.ExtKeyUsage) (string, error) {
	return tlsconf.VerifyPeer(cs, pool, peers, usage)
}

// PeerName returns the allowed peer name cert carries (CN or DNS SAN).
func PeerName(cert *x509.Certificate, peers []string) (string, bool) {
	return tlsconf.PeerName(cert, peers)
}

// ClientConfig is a client's dial config from the three files; see
// tlsconf.ClientConfig.
func ClientConfig(files TLSFiles) (*tls.Config, error) { return tlsconf.ClientConfig(files) }

// Throwaway certificates (`coordctl certs init`); see tlsconf.CreateCerts.
type (
	// CertSpec describes the certificates CreateCerts writes.
	CertSpec = tlsconf.CertSpec
	// CA is a certificate authority able to sign more certificates.
	CA = tlsconf.CA
)

// DefaultCertValidity is how long `coordctl certs init` certificates last.
const DefaultCertValidity = tlsconf.DefaultCertValidity

// ErrCertsExist: CreateCerts refuses to overwrite a CA.
var ErrCertsExist = tlsconf.ErrCertsExist

// CreateCerts writes a throwaway CA and certificates into dir.
func CreateCerts(dir string, spec CertSpec) error { return tlsconf.CreateCerts(dir, spec) }

// NewCA makes a self-signed CA.
func NewCA(name string, notBefore time.Time, validity time.Duration) (*CA, error) {
	return tlsconf.NewCA(name, notBefore, validity)
}
