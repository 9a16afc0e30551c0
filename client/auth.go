package client

import (
	"context"
	"time"

	"coord/proto/coordpb"
)

// tokenCreds attaches the login token (if any) to every call.
type tokenCreds struct{ c *Client }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if tok := t.c.token.Load(); tok != nil {
		return map[string]string{"authorization": "Bearer " + *tok}, nil
	}
	return nil, nil
}

// RequireTransportSecurity: tokens may cross loopback in plaintext; a
// node beyond loopback needs TLS anyway.
func (tokenCreds) RequireTransportSecurity() bool { return false }

// Login checks user and password against the cluster's user table and,
// on success, sends the session token it returns with every later call
// until it expires (the returned time); then Login again.
func (c *Client) Login(ctx context.Context, user, password string) (time.Time, error) {
	var resp *coordpb.AuthenticateResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Authenticate(ctx, &coordpb.AuthenticateRequest{User: user, Password: password})
		return err
	})
	if err != nil {
		return time.Time{}, err
	}
	tok := resp.Token
	c.token.Store(&tok)
	// A Call stream carries the identity it was opened with: open new ones.
	for _, cc := range c.calls {
		cc.retire()
	}
	return time.UnixMilli(resp.ExpiresUnixMs), nil
}

// User is a password user as ListUsers shows it.
type User struct {
	Name   string
	Groups []string
}

// SetUser adds or replaces a password user (superuser only). The password
// is hashed with bcrypt by the server; only the hash is replicated.
func (c *Client) SetUser(ctx context.Context, name, password string, groups []string) error {
	return c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) error {
		_, err := r.SetUser(ctx, &coordpb.SetUserRequest{Name: name, Password: password, Groups: groups})
		return err
	})
}

// DeleteUser removes a password user (superuser only); its tokens live
// until they expire.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.call(ctx, write, func(ctx context.Context, r coordpb.CoordClient) error {
		_, err := r.DeleteUser(ctx, &coordpb.DeleteUserRequest{Name: name})
		return err
	})
}

// ListUsers lists the password users (superuser only).
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var resp *coordpb.ListUsersResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.ListUsers(ctx, &coordpb.ListUsersRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]User, len(resp.Users))
	for i, u := range resp.Users {
		out[i] = User{Name: u.Name, Groups: u.Groups}
	}
	return out, nil
}
