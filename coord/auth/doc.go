// Package auth owns coord's security vocabulary: who a caller is
// (Identity, from a verified client certificate or a session token), the
// TLS material of a node (Store: load, reload on file change, the server,
// peer-dial and client tls.Configs), the peer allow-list check, throwaway
// certificates for local clusters (CreateCerts, behind `coordctl certs
// init`), and the gRPC credential that exposes TLS terminated at the
// listener (Terminated), bcrypt password hashing and the HMAC session
// tokens a password login returns (token.go).
//
// # Where it sits
//
// coord (server assembly) and coord/rpc (the authorizer) import auth; auth
// imports only the stdlib, grpc's credentials/peer packages and
// internal/tlsconf, where the TLS builders (Store, PeerConfig, ClientConfig)
// and the throwaway-certificate maker now live so that lease can use them
// without importing coord; auth re-exports them under their old names. The client
// library does not import it (client → proto only), so client.LoadTLS
// repeats the few lines that build a client tls.Config.
//
// # TLS on the one address
//
//  1. coord wraps the node's listener in tls.NewListener(Store.ServerConfig())
//     BEFORE replica.Mux splits raft from gRPC, so one handshake covers
//     clients, raft and peer RPCs alike.
//  2. The server asks for a client certificate but does not demand one: a
//     call without one is anonymous, and the authorizer decides per
//     method. A certificate that is presented must verify against the CA
//     (wrong CA or expired: the handshake fails).
//  3. Raft connections (after the mux's magic) are admitted only when the
//     verified certificate names an allowed peer (CN or DNS SAN in the
//     allow-list) - replica.Mux.RaftCheck.
//  4. Nodes dial peers (raft and peer gRPC) with Store.PeerConfig: it
//     presents the node certificate and accepts the other side only if its
//     chain verifies and it names an allowed peer; the dialled host is not
//     what is checked.
//  5. Terminated, the gRPC server credential, only reports the TLS state
//     the listener negotiated, so peer.FromContext carries it.
//
// # Goroutines
//
// None. Store reloads on the handshake path, at most once a second (a
// stat of three files); a failed reload keeps the old material.
//
// # Errors
//
// ErrBadConfig (files or names that cannot work), ErrNotPeer (a peer
// certificate not on the allow-list), ErrPermissionDenied and
// ErrUnauthenticated (authorization).
//
// # Decisions
//
//   - Session tokens are stateless (HMAC-SHA256 under a key file every
//     node holds), so any node verifies them without a round trip. They
//     carry the user record's generation (the zxid that last set it), and
//     the authorizer refuses a token whose generation is no longer the
//     user's in the node's replicated state: deleting a user or changing
//     its password revokes its tokens (a node that lags the change accepts
//     them until it applies it).
//   - ECDSA P-256 throwaway certificates from crypto/x509; the CA key sits
//     next to them, so they are for local clusters and tests only.
//   - The allow-list binds a certificate to "one of the peers", not to the
//     specific raft server id at that address (the lesson of
//     CVE-2023-44981 is only half taken): any allowed peer certificate may
//     speak raft for any member. Binding name to address is left undone.
package auth
