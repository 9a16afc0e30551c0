package rpc

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"coord/coord/auth"
	"coord/coord/tree"
	"coord/proto/coordpb"
	"coord/proto/parpb"
)

// Rule is what a method asks of its caller before the handler runs. Tree
// methods check ACLs in the handler (reads) or at apply (writes).
type Rule int

// Rules, from most open to most closed.
const (
	// RuleAnyone: sessions and WhoAmI (a session carries no data).
	RuleAnyone Rule = iota + 1
	// RuleACL: the znode ACLs decide, in the handler or at apply.
	RuleACL
	// RuleAuthenticated: cluster status and membership listing need an
	// identity once auth is on.
	RuleAuthenticated
	// RuleSuper: membership changes and snapshots need a superuser once
	// auth is on.
	RuleSuper
	// RulePeer: node-to-node RPCs need a verified peer certificate once
	// TLS is on.
	RulePeer
)

// Rules is THE table of every gRPC method's rule. A method missing here is
// refused at run time (fail closed) and fails the permission-matrix test.
var Rules = map[string]Rule{
	coordpb.Coord_Create_FullMethodName:   RuleACL,
	coordpb.Coord_Delete_FullMethodName:   RuleACL,
	coordpb.Coord_Set_FullMethodName:      RuleACL,
	coordpb.Coord_Get_FullMethodName:      RuleACL,
	coordpb.Coord_Exists_FullMethodName:   RuleACL,
	coordpb.Coord_Children_FullMethodName: RuleACL,
	coordpb.Coord_Multi_FullMethodName:    RuleACL,
	coordpb.Coord_Sync_FullMethodName:     RuleACL,
	coordpb.Coord_SetACL_FullMethodName:   RuleACL,
	coordpb.Coord_GetACL_FullMethodName:   RuleACL,
	coordpb.Coord_Watch_FullMethodName:    RuleACL,
	// Call carries the data operations; each request on it passes the
	// unary chain under its own method's name (call.go), so its rule and
	// its ACL checks apply per request.
	coordpb.Coord_Call_FullMethodName:         RuleACL,
	coordpb.Coord_OpenSession_FullMethodName:  RuleAnyone,
	coordpb.Coord_KeepAlive_FullMethodName:    RuleAnyone,
	coordpb.Coord_CloseSession_FullMethodName: RuleAnyone,
	coordpb.Coord_WhoAmI_FullMethodName:       RuleAnyone,
	coordpb.Coord_Authenticate_FullMethodName: RuleAnyone,
	coordpb.Coord_SetUser_FullMethodName:      RuleSuper,
	coordpb.Coord_DeleteUser_FullMethodName:   RuleSuper,
	coordpb.Coord_ListUsers_FullMethodName:    RuleSuper,
	coordpb.Coord_Members_FullMethodName:      RuleAuthenticated,
	coordpb.Coord_Status_FullMethodName:       RuleAuthenticated,
	coordpb.Coord_AddMember_FullMethodName:    RuleSuper,
	coordpb.Coord_RemoveMember_FullMethodName: RuleSuper,
	coordpb.Coord_Snapshot_FullMethodName:     RuleSuper,
	coordpb.Peer_Propose_FullMethodName:       RulePeer,
	coordpb.Peer_ReadIndex_FullMethodName:     RulePeer,
	coordpb.Peer_ChangeMembers_FullMethodName: RulePeer,
	coordpb.Peer_KeepAlives_FullMethodName:    RulePeer,
	coordpb.Peer_ProposeBatch_FullMethodName:  RulePeer,
	coordpb.Peer_Events_FullMethodName:        RulePeer,
	// Protocol-aware recovery: peers fetch log entries and terms; an
	// operator reads the status (coordctl par status).
	parpb.PeerRepair_GetEntries_FullMethodName: RulePeer,
	parpb.PeerRepair_GetTerm_FullMethodName:    RulePeer,
	parpb.PeerRepair_Status_FullMethodName:     RuleAuthenticated,
	// PAR snapshot repair: peers list and fetch verified snapshots.
	parpb.PeerRepair_ListSnapshots_FullMethodName:   RulePeer,
	parpb.PeerRepair_FetchSnapshot_FullMethodName:   RulePeer,
	parpb.PeerRepair_RequestSnapshot_FullMethodName: RulePeer,
	parpb.PeerRepair_Hello_FullMethodName:           RulePeer,
	// PAR gap fill: a peer reads verified entries of this node's log.
	parpb.PeerRepair_GetLogRange_FullMethodName: RulePeer,
}

// Policy is a node's authorization config. The zero Policy is the open
// world coord had before security: every rule passes and ACL checks run
// as an anonymous caller (which an open tree never refuses).
type Policy struct {
	// TLS: connections are TLS, so certificates identify callers and peers.
	TLS bool
	// Peers is the peer certificate allow-list.
	Peers []string
	// Superusers are ids ("x509:admin", "user:root") that bypass ACLs and
	// may change membership and take snapshots. Non-empty turns auth on
	// for the cluster-level rules.
	Superusers []string
	// TokenKey signs and verifies password-login session tokens (nil:
	// password login is off).
	TokenKey []byte
	// TokenTTL is how long a login lasts (0: auth.DefaultTokenTTL).
	TokenTTL time.Duration
	// Logins bound password logins per client address and per node (zero:
	// DefaultLoginLimits); applied only with a TokenKey.
	Logins LoginLimits
	// Users looks up a password user's generation, so that a token of a
	// deleted user, or from before a password change, is refused (nil:
	// tokens are checked for signature and expiry only).
	Users UserGenerations
}

// UserGenerations is the replicated user table as the authorizer needs
// it. UserGeneration returns the generation of user name (and whether it
// exists) in a state that has applied at least index atLeast (a token's
// generation, so a node that lags behind the login waits instead of
// refusing a fresh user); it fails if it cannot get there before ctx ends.
type UserGenerations interface {
	UserGeneration(ctx context.Context, name string, atLeast uint64) (gen uint64, ok bool, err error)
}

// authOn: the cluster-level rules apply.
func (p *Policy) authOn() bool { return len(p.Superusers) > 0 }

// Metadata keys a peer uses to run a forwarded read as its caller.
const (
	mdCaller = "coord-caller"
	mdSuper  = "coord-super"
)

type callerKey struct{}

// CallerFrom is the caller the interceptor attached (nil: anonymous).
func CallerFrom(ctx context.Context) *tree.Caller {
	c, _ := ctx.Value(callerKey{}).(*tree.Caller)
	return c
}

// Authorizer resolves each call's identity and applies Rules.
type Authorizer struct {
	p      Policy
	log    *slog.Logger
	logins *loginLimiter // nil: password login off
}

// NewAuthorizer returns the interceptors' owner for p.
func NewAuthorizer(p Policy, log *slog.Logger) *Authorizer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authorizer{p: p, log: log}
	if p.TokenKey != nil {
		if p.Logins == (LoginLimits{}) {
			p.Logins = DefaultLoginLimits()
		}
		a.logins = newLoginLimiter(p.Logins)
	}
	return a
}

// identify returns the caller and whether it is a verified peer. A
// session token that does not verify is an error, never a silent
// downgrade to anonymous.
func (a *Authorizer) identify(ctx context.Context) (*tree.Caller, bool, error) {
	if a.p.TokenKey != nil {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				tok, ok := strings.CutPrefix(v[0], "Bearer ")
				if !ok {
					return nil, false, fmt.Errorf("%w: authorization metadata: want \"Bearer TOKEN\"", auth.ErrUnauthenticated)
				}
				t, err := auth.VerifyToken(a.p.TokenKey, tok, time.Now())
				if err != nil {
					return nil, false, err
				}
				if err := a.current(ctx, t); err != nil {
					return nil, false, err
				}
				c := &tree.Caller{Ids: []string{"user:" + t.User}}
				for _, g := range t.Groups {
					c.Ids = append(c.Ids, "group:"+g)
				}
				c.Super = a.super(c)
				return c, false, nil
			}
		}
	}
	c, peer := a.identifyTLS(ctx)
	return c, peer, nil
}

// current refuses a token whose user was deleted, or set again (new
// password or groups) since the login.
func (a *Authorizer) current(ctx context.Context, t auth.Token) error {
	if a.p.Users == nil {
		return nil
	}
	gen, ok, err := a.p.Users.UserGeneration(ctx, t.User, t.Generation)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: token revoked: user %q no longer exists", auth.ErrUnauthenticated, t.User)
	}
	if gen != t.Generation {
		return fmt.Errorf("%w: token revoked: user %q was changed since this login; log in again", auth.ErrUnauthenticated, t.User)
	}
	return nil
}

func (a *Authorizer) super(c *tree.Caller) bool {
	return slices.ContainsFunc(c.Ids, func(s string) bool { return slices.Contains(a.p.Superusers, s) })
}

// identifyTLS derives the caller from the client certificate.
func (a *Authorizer) identifyTLS(ctx context.Context) (*tree.Caller, bool) {
	if !a.p.TLS {
		return nil, false
	}
	st, ok := auth.TLSState(ctx)
	if !ok {
		return nil, false
	}
	id := auth.FromTLS(st, a.p.Peers)
	if id.Kind == auth.Peer {
		// A peer forwarding a read runs it as the original caller.
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(mdCaller); len(v) > 0 {
				c := &tree.Caller{}
				for _, s := range strings.Split(v[0], ",") {
					if s != "" {
						c.Ids = append(c.Ids, s)
					}
				}
				c.Super = len(md.Get(mdSuper)) > 0
				return c, true
			}
		}
	}
	c := &tree.Caller{Ids: []string{id.String()}}
	for _, ou := range st.PeerCertificates[0].Subject.OrganizationalUnit {
		c.Ids = append(c.Ids, "group:"+ou)
	}
	c.Super = a.super(c)
	return c, id.Kind == auth.Peer
}

// limit applies the login rate limit to an Authenticate where the caller
// arrives: before any bcrypt work, and not again when a peer forwards it.
// (Without TLS a forwarding peer cannot be told from a client, so a
// forwarded login counts at both nodes.)
func (a *Authorizer) limit(ctx context.Context, method string) error {
	if a.logins == nil || method != coordpb.Coord_Authenticate_FullMethodName {
		return nil
	}
	if a.p.TLS {
		if st, ok := auth.TLSState(ctx); ok && auth.FromTLS(st, a.p.Peers).Kind == auth.Peer {
			return nil
		}
	}
	return a.logins.allow(clientIP(ctx), time.Now())
}

// check applies the method's rule.
func (a *Authorizer) check(method string, c *tree.Caller, peer bool) error {
	rule, ok := Rules[method]
	if !ok {
		return fmt.Errorf("%w: method %s has no authorization rule", auth.ErrPermissionDenied, method)
	}
	switch rule {
	case RuleAnyone, RuleACL:
		return nil
	case RuleAuthenticated:
		if a.p.authOn() && len(c.GetIds()) == 0 {
			return fmt.Errorf("%w: %s needs an identity", auth.ErrUnauthenticated, method)
		}
	case RuleSuper:
		if a.p.authOn() && !c.GetSuper() {
			if len(c.GetIds()) == 0 {
				return fmt.Errorf("%w: %s needs a superuser", auth.ErrUnauthenticated, method)
			}
			return fmt.Errorf("%w: %s needs a superuser", auth.ErrPermissionDenied, method)
		}
	case RulePeer:
		if a.p.TLS && !peer {
			return fmt.Errorf("%w: %s is for peers only", auth.ErrPermissionDenied, method)
		}
	}
	return nil
}

// Unary is the unary server interceptor.
func (a *Authorizer) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c, peer, err := a.identify(ctx)
	if err == nil {
		err = a.check(info.FullMethod, c, peer)
	}
	if err == nil {
		err = a.limit(ctx, info.FullMethod)
	}
	if err != nil {
		return nil, ToStatus(a.log, err)
	}
	if c != nil {
		ctx = context.WithValue(ctx, callerKey{}, c)
	}
	return h(ctx, req)
}

// Stream is the stream server interceptor.
func (a *Authorizer) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c, peer, err := a.identify(ss.Context())
	if err == nil {
		err = a.check(info.FullMethod, c, peer)
	}
	if err != nil {
		return ToStatus(a.log, err)
	}
	if c != nil {
		ss = &callerStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), callerKey{}, c)}
	}
	return h(srv, ss)
}

type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

// forwardCtx makes a read forwarded to the leader run as the caller there
// (honoured only from a verified peer).
func forwardCtx(ctx context.Context) context.Context {
	c := CallerFrom(ctx) // anonymous too: the peer must not run it as itself
	kv := []string{mdCaller, strings.Join(c.GetIds(), ",")}
	if c.GetSuper() {
		kv = append(kv, mdSuper, "1")
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			kv = append(kv, "authorization", v[0])
		}
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// WhoAmI returns the caller as the server sees it.
func (s *Service) WhoAmI(ctx context.Context, _ *coordpb.WhoAmIRequest) (*coordpb.WhoAmIResponse, error) {
	c := CallerFrom(ctx)
	return &coordpb.WhoAmIResponse{Ids: c.GetIds(), Super: c.GetSuper()}, nil
}
