package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertSpec describes the throwaway certificates CreateCerts writes.
type CertSpec struct {
	// Nodes get server+client certificates whose CN and DNS SAN are the
	// node name (the peer allow-list matches on it), valid for 127.0.0.1,
	// ::1 and localhost too.
	Nodes []string
	// Clients get client certificates whose CN is the identity.
	Clients []string
	// NotBefore and Validity bound every certificate (zero NotBefore: now
	// minus a minute; zero Validity: DefaultCertValidity).
	NotBefore time.Time
	Validity  time.Duration
	// Hosts are extra IPs or DNS names put on every node certificate.
	Hosts []string
}

// DefaultCertValidity is how long `coordctl certs init` certificates last.
const DefaultCertValidity = 365 * 24 * time.Hour

// CA is a certificate authority able to sign more certificates.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// NewCA makes a self-signed CA.
func NewCA(name string, notBefore time.Time, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"coord"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue signs a leaf certificate for cn. server adds the server usage and
// the hosts as SANs; every leaf can act as a TLS client.
func (ca *CA) Issue(cn string, server bool, hosts []string, notBefore time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("key for %s: %w", cn, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"coord"}},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = append(tmpl.DNSNames, cn)
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate for %s: %w", cn, err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(err)
	}
	return n
}

// ErrCertsExist: CreateCerts refuses to overwrite a CA.
var ErrCertsExist = errors.New("certificates already exist")

// CreateCerts writes a throwaway CA (ca.crt, ca.key) and, per name,
// NAME.crt and NAME.key into dir (created 0700), plus token.key (a random
// session-token key for --token-key). It refuses to overwrite
// an existing ca.crt. It is for local clusters and tests, not production
// PKI.
func CreateCerts(dir string, spec CertSpec) error {
	if spec.NotBefore.IsZero() {
		spec.NotBefore = time.Now().Add(-time.Minute)
	}
	if spec.Validity == 0 {
		spec.Validity = DefaultCertValidity
	}
	if len(spec.Nodes)+len(spec.Clients) == 0 {
		return fmt.Errorf("%w: no nodes or clients to issue for", ErrBadConfig)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("certs dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.crt")); err == nil {
		return fmt.Errorf("%w: %s", ErrCertsExist, filepath.Join(dir, "ca.crt"))
	}
	seen := map[string]bool{"ca": true}
	for _, n := range append(append([]string{}, spec.Nodes...), spec.Clients...) {
		if n == "" || n != filepath.Base(n) || n == "." || n == ".." {
			return fmt.Errorf("%w: bad certificate name %q", ErrBadConfig, n)
		}
		if seen[n] {
			return fmt.Errorf("%w: name %q given twice (or reserved)", ErrBadConfig, n)
		}
		seen[n] = true
	}
	ca, err := NewCA("coord throwaway CA", spec.NotBefore, spec.Validity)
	if err != nil {
		return err
	}
	caKey, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return err
	}
	if err := writeFile(dir, "ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKey}), 0o600); err != nil {
		return err
	}
	if err := writeFile(dir, "ca.crt", ca.PEM, 0o644); err != nil {
		return err
	}
	hosts := append([]string{"127.0.0.1", "::1", "localhost"}, spec.Hosts...)
	issue := func(name string, server bool) error {
		c, k, err := ca.Issue(name, server, hosts, spec.NotBefore, spec.Validity)
		if err != nil {
			return err
		}
		if err := writeFile(dir, name+".key", k, 0o600); err != nil {
			return err
		}
		return writeFile(dir, name+".crt", c, 0o644)
	}
	for _, n := range spec.Nodes {
		if err := issue(n, true); err != nil {
			return err
		}
	}
	for _, n := range spec.Clients {
		if err := issue(n, false); err != nil {
			return err
		}
	}
	return WriteTokenKey(filepath.Join(dir, "token.key"))
}

func writeFile(dir, name string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// WriteTokenKey writes a new random session-token key to path (0600):
// 48 random bytes, base64url.
func WriteTokenKey(path string) error {
	k := make([]byte, 48)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(k)), 0o600)
}
