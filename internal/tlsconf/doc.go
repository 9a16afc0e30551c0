// Package tlsconf builds the tls.Configs coord's servers and their peers
// use from three PEM files (certificate, key, CA): Store loads them and
// reloads them when they change (checked at most once a second, on a
// handshake; a failed reload keeps the old material), ServerConfig asks
// for a CA-signed client certificate, PeerConfig dials a peer and accepts
// it only if its verified certificate names an allowed peer (CN or DNS
// SAN), ClientConfig is a client's dial config.
//
// # Where it sits
//
// It imports only the standard library, so both coord (through
// coord/auth, which re-exports it under its old names) and lease (Flease
// traffic, lease/tls.go) use it; lease may not import coord. It lives under
// the module's internal/ so nothing outside the module depends on it.
//
// # Goroutines
//
// None.
//
// # Errors
//
// ErrBadConfig (files that cannot work), ErrNotPeer (a peer certificate
// that does not verify or names no allowed peer).
package tlsconf
