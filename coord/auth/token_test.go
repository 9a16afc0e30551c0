package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_700_000_000, 0)
	tok := IssueToken(key, "bob", 42, []string{"ops", "dev"}, now.Add(time.Hour))
	got, err := VerifyToken(key, tok, now)
	if err != nil || got.User != "bob" || got.Generation != 42 || len(got.Groups) != 2 || got.Groups[1] != "dev" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	for name, tc := range map[string]struct {
		key []byte
		tok string
		at  time.Time
	}{
		"expired":   {key, tok, now.Add(2 * time.Hour)},
		"other key": {[]byte("another-key-another-key-another-k"), tok, now},
		"tampered":  {key, tamper(tok), now},
		"garbage":   {key, "nope", now},
		"version 1": {key, v1Token(key, "bob", now.Add(time.Hour)), now},
	} {
		if _, err := VerifyToken(tc.key, tc.tok, tc.at); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
}

func TestPasswordAndKey(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(h, "correct horse") || CheckPassword(h, "wrong horse") {
		t.Fatal("bcrypt check")
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrBadConfig) {
		t.Errorf("short password: %v", err)
	}
	p := filepath.Join(t.TempDir(), "token.key")
	if err := WriteTokenKey(p); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadTokenKey(p); err != nil || len(k) < MinTokenKey {
		t.Fatalf("load: %d %v", len(k), err)
	}
}

// tamper changes one character of the token body.
func tamper(tok string) string {
	b := []byte(tok)
	if b[12] == 'x' {
		b[12] = 'y'
	} else {
		b[12] = 'x'
	}
	return string(b)
}

// v1Token is a token in the format before generations (still validly
// signed): it must be refused, not misread.
func v1Token(key []byte, user string, exp time.Time) string {
	body := binary.BigEndian.AppendUint64(nil, uint64(exp.UnixMilli()))
	body = append(body, user...)
	body = append(body, 0)
	body = append(body, make([]byte, 8)...)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
