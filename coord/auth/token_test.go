package auth

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_700_000_000, 0)
	tok := IssueToken(key, "bob", []string{"ops", "dev"}, now.Add(time.Hour))
	u, g, err := VerifyToken(key, tok, now)
	if err != nil || u != "bob" || len(g) != 2 || g[1] != "dev" {
		t.Fatalf("verify: %q %v %v", u, g, err)
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
	} {
		if _, _, err := VerifyToken(tc.key, tc.tok, tc.at); !errors.Is(err, ErrUnauthenticated) {
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
