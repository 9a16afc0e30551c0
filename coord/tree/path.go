package tree

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathBytes is the longest path accepted.
const MaxPathBytes = 4096

// ValidatePath checks a znode path: absolute, '/'-separated, no empty, "."
// or ".." segments, no trailing slash except the root, valid UTF-8, no
// control characters, at most MaxPathBytes. The error wraps ErrInvalidPath
// and names the rule broken.
func ValidatePath(p string) error {
	return validate(p, false)
}

func badPath(p, rule string) error {
	shown := p
	if len(shown) > 64 {
		shown = shown[:64] + "..."
	}
	return errorf(ErrInvalidPath, fmt.Sprintf("invalid path %q: %s", shown, rule))
}

// validate checks p; sequential allows a trailing '/' (the name is then the
// sequence number alone).
func validate(p string, sequential bool) error {
	switch {
	case p == "":
		return badPath(p, "empty path")
	case len(p) > MaxPathBytes:
		return badPath(p, fmt.Sprintf("longer than %d bytes", MaxPathBytes))
	case p[0] != '/':
		return badPath(p, "must start with /")
	case !utf8.ValidString(p):
		return badPath(p, "not valid UTF-8")
	}
	if p == "/" {
		return nil
	}
	body := p[1:]
	if strings.HasSuffix(p, "/") {
		if !sequential {
			return badPath(p, "trailing /")
		}
		body = body[:len(body)-1]
		if body == "" {
			return nil // sequential child of the root
		}
	}
	for _, r := range p {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return badPath(p, fmt.Sprintf("control character %U", r))
		}
	}
	for seg := range strings.SplitSeq(body, "/") {
		switch seg {
		case "":
			return badPath(p, "empty segment")
		case ".", "..":
			return badPath(p, fmt.Sprintf("%q segment", seg))
		}
	}
	return nil
}

// parentOf returns the parent of a valid non-root path.
func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// childPrefix is the key prefix of p's children.
func childPrefix(p string) string {
	if p == "/" {
		return "/"
	}
	return p + "/"
}

// Names the file system view keeps for itself (see fuse/): every
// directory's own data and lock files, and the control namespace at the
// root. Creates of such names are refused, so a mount never shadows a
// real znode.
var reservedNames = map[string]bool{".data": true, ".lock": true}

const reservedRoot = "/.coord"

// checkReserved refuses a create whose last segment is a reserved name.
func checkReserved(p string) error {
	name := p[strings.LastIndexByte(p, '/')+1:]
	if reservedNames[name] || p == reservedRoot || strings.HasPrefix(p, reservedRoot+"/") {
		return badPath(p, fmt.Sprintf("%q is reserved for the file system view", name))
	}
	return nil
}
