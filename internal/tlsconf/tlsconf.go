package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Errors of the package; coord/auth re-exports them.
var (
	// ErrBadConfig: TLS files or options that cannot work together.
	ErrBadConfig = errors.New("bad security config")
	// ErrNotPeer: a TLS peer whose certificate names no allowed peer.
	ErrNotPeer = errors.New("not an allowed peer")
)

// Files names the three PEM files of a node or client: its certificate,
// its key and the CA that signs everyone's certificates.
type Files struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// Enabled reports whether any file is set.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.CAFile != "" }

// Validate: all three files or none.
func (f Files) Validate() error {
	if !f.Enabled() {
		return nil
	}
	var errs []error
	if f.CertFile == "" {
		errs = append(errs, fmt.Errorf("%w: --cert is required with --key/--ca", ErrBadConfig))
	}
	if f.KeyFile == "" {
		errs = append(errs, fmt.Errorf("%w: --key is required with --cert/--ca", ErrBadConfig))
	}
	if f.CAFile == "" {
		errs = append(errs, fmt.Errorf("%w: --ca is required with --cert/--key", ErrBadConfig))
	}
	return errors.Join(errs...)
}

// reloadCheckEvery bounds how often a handshake stats the files.
const reloadCheckEvery = time.Second

// Store holds a node's loaded certificate and CA pool and reloads them when
// the files change (checked at most once a second, on a handshake), so
// certificates rotate without a restart. A reload that fails keeps the old
// material and is reported by LastReloadError.
type Store struct {
	files Files
	now   func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	pool      *x509.CertPool
	stamp     [3]time.Time // mtimes of cert, key, ca
	checked   time.Time
	reloadErr error
}

// LoadStore reads the files once; an error names the bad file.
func LoadStore(files Files) (*Store, error) {
	if err := files.Validate(); err != nil {
		return nil, err
	}
	if !files.Enabled() {
		return nil, fmt.Errorf("%w: no TLS files", ErrBadConfig)
	}
	s := &Store{files: files, now: time.Now}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) stamps() ([3]time.Time, error) {
	var st [3]time.Time
	for i, f := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, fmt.Errorf("tls file: %w", err)
		}
		st[i] = fi.ModTime()
	}
	return st, nil
}

// load reads the files; the caller holds mu or owns s.
func (s *Store) load() error {
	st, err := s.stamps()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(s.files.CertFile, s.files.KeyFile)
	if err != nil {
		return fmt.Errorf("%w: cert %s / key %s: %v", ErrBadConfig, s.files.CertFile, s.files.KeyFile, err)
	}
	caPEM, err := os.ReadFile(s.files.CAFile)
	if err != nil {
		return fmt.Errorf("%w: ca: %v", ErrBadConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%w: ca %s holds no PEM certificate", ErrBadConfig, s.files.CAFile)
	}
	s.cert, s.pool, s.stamp = &cert, pool, st
	return nil
}

// Reload re-reads the files now.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloadErr = s.load()
	s.checked = s.now()
	return s.reloadErr
}

// LastReloadError is the error of the last automatic or explicit reload.
func (s *Store) LastReloadError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadErr
}

// current returns the material, reloading first if a file changed.
func (s *Store) current() (*tls.Certificate, *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); now.Sub(s.checked) >= reloadCheckEvery {
		s.checked = now
		if st, err := s.stamps(); err == nil && st != s.stamp {
			s.reloadErr = s.load()
		}
	}
	return s.cert, s.pool
}

// ServerConfig is the node's listener config: it presents the node's
// certificate, asks for (but does not demand) a client certificate signed
// by the CA, and offers h2 for gRPC. Whether a call may go ahead without a
// certificate is the authorizer's decision, per method; raft connections
// are checked against the peer allow-list by the mux.
func (s *Store) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := s.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   []string{"h2"},
				Certificates: []tls.Certificate{*cert},
				ClientCAs:    pool,
				ClientAuth:   tls.VerifyClientCertIfGiven,
			}, nil
		},
	}
}

// PeerConfig is the config a node dials its peers with (raft and peer
// gRPC): it presents the node's certificate and accepts the other side
// only if its chain verifies against the CA AND its certificate names an
// allowed peer (CN or DNS SAN). The address's host is not what is checked:
// a peer is who its certificate says, among the allow-list.
func (s *Store) PeerConfig(peers []string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := s.current()
			return cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, pool := s.current()
			_, err := VerifyPeer(cs, pool, peers, x509.ExtKeyUsageServerAuth)
			return err
		},
	}
}

// VerifyPeer verifies the presented chain against pool for usage and
// returns the allowed peer name the leaf carries.
func VerifyPeer(cs tls.ConnectionState, pool *x509.CertPool, peers []string, usage x509.ExtKeyUsage) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("%w: no certificate presented", ErrNotPeer)
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotPeer, err)
	}
	if name, ok := PeerName(leaf, peers); ok {
		return name, nil
	}
	return "", fmt.Errorf("%w: certificate %q names none of %v", ErrNotPeer, leaf.Subject.CommonName, peers)
}

// PeerName returns the allowed peer name cert carries (CN or DNS SAN).
func PeerName(cert *x509.Certificate, peers []string) (string, bool) {
	if slices.Contains(peers, cert.Subject.CommonName) {
		return cert.Subject.CommonName, true
	}
	for _, d := range cert.DNSNames {
		if slices.Contains(peers, d) {
			return d, true
		}
	}
	return "", false
}

// ClientConfig is the config a client (coordctl, the client library)
// dials a node with from the three files: the node's certificate must
// verify against the CA for the dialled host; the client's certificate, if
// given, is its identity.
func ClientConfig(files Files) (*tls.Config, error) {
	if files.CAFile == "" {
		return nil, fmt.Errorf("%w: --ca is required for TLS", ErrBadConfig)
	}
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, fmt.Errorf("%w: --cert and --key go together", ErrBadConfig)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: ca: %v", ErrBadConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bytes.TrimSpace(caPEM)) {
		return nil, fmt.Errorf("%w: ca %s holds no PEM certificate", ErrBadConfig, files.CAFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if files.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadConfig, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
