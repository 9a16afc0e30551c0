package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"coord/internal/tlsconf"
)

// Session tokens: after a password login a node issues
// base64url(version 2 (1) | expiry ms (8) | generation (8) | user "\x00" groups joined by ",")
// "." base64url(HMAC-SHA256) under the cluster's token key, which every
// node holds (a file, like the certificates). Any node verifies a token
// without a round trip; the generation is the user record's (the zxid
// that last set the user), and the authorizer refuses a token whose
// generation is no longer the user's: deleting a user or changing its
// password or groups revokes its tokens. A version-1 token (no version
// byte, no generation; before revocation existed) is refused: log in again.

// tokenVersion is the first body byte of a token.
const tokenVersion = 2

// Token is what a verified token says.
type Token struct {
	User   string
	Groups []string
	// Generation is the user record's generation at login.
	Generation uint64
	Expires    time.Time
}

// DefaultTokenTTL is how long a login lasts.
const DefaultTokenTTL = time.Hour

// MinTokenKey is the shortest accepted token key.
const MinTokenKey = 32

// BcryptCost is the work factor for stored passwords.
const BcryptCost = bcrypt.DefaultCost

// HashPassword returns the bcrypt hash of pw.
func HashPassword(pw string) ([]byte, error) {
	if len(pw) < 8 || len(pw) > 72 {
		return nil, fmt.Errorf("%w: a password is 8 to 72 bytes", ErrBadConfig)
	}
	return bcrypt.GenerateFromPassword([]byte(pw), BcryptCost)
}

// CheckPassword reports whether pw matches hash.
func CheckPassword(hash []byte, pw string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
}

// LoadTokenKey reads a token key file (at least MinTokenKey bytes).
func LoadTokenKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: token key: %v", ErrBadConfig, err)
	}
	if len(b) < MinTokenKey {
		return nil, fmt.Errorf("%w: token key %s is %d bytes, want at least %d", ErrBadConfig, path, len(b), MinTokenKey)
	}
	return b, nil
}

// WriteTokenKey writes a new random key to path (0600).
func WriteTokenKey(path string) error { return tlsconf.WriteTokenKey(path) }

// IssueToken signs a token for user (at generation gen) with groups
// until exp.
func IssueToken(key []byte, user string, gen uint64, groups []string, exp time.Time) string {
	body := []byte{tokenVersion}
	body = binary.BigEndian.AppendUint64(body, uint64(exp.UnixMilli()))
	body = binary.BigEndian.AppendUint64(body, gen)
	body = append(body, user...)
	body = append(body, 0)
	body = append(body, strings.Join(groups, ",")...)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// VerifyToken checks a token's signature and expiry at now. Whether its
// generation is still the user's is the caller's check (it needs the
// replicated user table).
func VerifyToken(key []byte, tok string, now time.Time) (Token, error) {
	b64, sig64, ok := strings.Cut(tok, ".")
	if !ok {
		return Token{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	body, err1 := base64.RawURLEncoding.DecodeString(b64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil || len(body) < 18 {
		return Token{}, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return Token{}, fmt.Errorf("%w: bad token signature", ErrUnauthenticated)
	}
	if body[0] != tokenVersion {
		return Token{}, fmt.Errorf("%w: token from an older version of coord; log in again", ErrUnauthenticated)
	}
	t := Token{
		Expires:    time.UnixMilli(int64(binary.BigEndian.Uint64(body[1:9]))),
		Generation: binary.BigEndian.Uint64(body[9:17]),
	}
	if !now.Before(t.Expires) {
		return Token{}, fmt.Errorf("%w: token expired at %s", ErrUnauthenticated, t.Expires.UTC().Format(time.RFC3339))
	}
	user, g, _ := strings.Cut(string(body[17:]), "\x00")
	t.User = user
	if g != "" {
		t.Groups = strings.Split(g, ",")
	}
	return t, nil
}
