package rpc

import (
	"context"
	"fmt"
	"time"

	"coord/coord/auth"
	"coord/coord/tree"
	"coord/proto/coordpb"
)

// WithTokenKey turns on password login: Authenticate issues tokens signed
// with key that last ttl (0: auth.DefaultTokenTTL).
func (s *Service) WithTokenKey(key []byte, ttl time.Duration) *Service {
	if ttl == 0 {
		ttl = auth.DefaultTokenTTL
	}
	s.tokenKey, s.tokenTTL = key, ttl
	return s
}

// Authenticate checks a password against the replicated user table (on a
// linearizable read, so a just-added user can log in anywhere) and issues
// a session token.
func (s *Service) Authenticate(ctx context.Context, req *coordpb.AuthenticateRequest) (*coordpb.AuthenticateResponse, error) {
	if s.tokenKey == nil {
		return nil, s.fail(fmt.Errorf("%w: password login is not configured on this node (no token key)", auth.ErrUnauthenticated))
	}
	// The Authorizer has applied the login rate limit (Policy.Logins).
	return read(ctx, s, nil, func(t *tree.Tree, _ uint64) (*coordpb.AuthenticateResponse, error) {
		hash, groups, ok := t.User(req.GetUser())
		// Same work whether or not the user exists: no user enumeration
		// by timing.
		if !ok {
			hash = dummyHash
		}
		if !auth.CheckPassword(hash, req.GetPassword()) || !ok {
			return nil, fmt.Errorf("%w: wrong user or password", auth.ErrUnauthenticated)
		}
		exp := time.Now().Add(s.tokenTTL)
		gen, _ := t.UserGeneration(req.GetUser())
		return &coordpb.AuthenticateResponse{Token: auth.IssueToken(s.tokenKey, req.GetUser(), gen, groups, exp), ExpiresUnixMs: exp.UnixMilli()}, nil
	}, func(ctx context.Context, c coordpb.CoordClient, _ *coordpb.ReadOptions) (*coordpb.AuthenticateResponse, error) {
		return c.Authenticate(ctx, req)
	})
}

// dummyHash (bcrypt of a throwaway password, default cost) is compared
// against when the user does not exist.
var dummyHash = []byte("$2a$10$K3PY7iaTkWqGTu5Ol3APfOECT/WALydtm86arDk0hZh4VWkvxV6h6")

// SetUser adds or replaces a password user (superuser only, by Rules).
func (s *Service) SetUser(ctx context.Context, req *coordpb.SetUserRequest) (*coordpb.SetUserResponse, error) {
	hash, err := auth.HashPassword(req.GetPassword())
	if err != nil {
		return nil, s.fail(fmt.Errorf("%w: %v", ErrInvalidArgument, err))
	}
	zxid, err := s.userCommand(ctx, &coordpb.SetUser{Name: req.GetName(), BcryptHash: hash, Groups: req.GetGroups()})
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.SetUserResponse{Header: s.header(zxid)}, nil
}

// DeleteUser removes a password user; the tokens already issued stop
// working (see Policy.Users).
func (s *Service) DeleteUser(ctx context.Context, req *coordpb.DeleteUserRequest) (*coordpb.DeleteUserResponse, error) {
	zxid, err := s.userCommand(ctx, &coordpb.SetUser{Name: req.GetName(), Delete: true})
	if err != nil {
		return nil, s.fail(err)
	}
	return &coordpb.DeleteUserResponse{Header: s.header(zxid)}, nil
}

func (s *Service) userCommand(ctx context.Context, u *coordpb.SetUser) (uint64, error) {
	res, err := s.b.Write(ctx, &coordpb.Command{Cmd: &coordpb.Command_SetUser{SetUser: u}})
	if err != nil {
		return 0, err
	}
	if res.Code != coordpb.ErrorCode_OK {
		return 0, resultError(res, "")
	}
	return res.Zxid, nil
}

// ListUsers lists user names and groups (never hashes).
func (s *Service) ListUsers(ctx context.Context, _ *coordpb.ListUsersRequest) (*coordpb.ListUsersResponse, error) {
	return read(ctx, s, nil, func(t *tree.Tree, zxid uint64) (*coordpb.ListUsersResponse, error) {
		return &coordpb.ListUsersResponse{Header: s.header(zxid), Users: t.Users()}, nil
	}, func(ctx context.Context, c coordpb.CoordClient, _ *coordpb.ReadOptions) (*coordpb.ListUsersResponse, error) {
		return c.ListUsers(ctx, &coordpb.ListUsersRequest{})
	})
}
