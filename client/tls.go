package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrBadTLS: TLS files that cannot be used.
var ErrBadTLS = errors.New("bad TLS files")

// TLSFiles are the same three files coordd takes: the client's certificate
// and key (optional: without them the client is anonymous, or
// authenticates with a password) and the CA that signed the nodes.
type TLSFiles struct {
	CertFile string
	KeyFile  string
	CAFile   string
}

// LoadTLS builds a tls.Config for Config.TLS from files. The node's
// certificate must verify against the CA for the host dialled (coordctl
// certs init puts 127.0.0.1, ::1, localhost and the node name on it).
func LoadTLS(files TLSFiles) (*tls.Config, error) {
	if files.CAFile == "" {
		return nil, fmt.Errorf("%w: a CA file is required for TLS", ErrBadTLS)
	}
	if (files.CertFile == "") != (files.KeyFile == "") {
		return nil, fmt.Errorf("%w: the certificate and key go together", ErrBadTLS)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTLS, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrBadTLS, files.CAFile)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if files.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTLS, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
