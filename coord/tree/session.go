package tree

import (
	"encoding/binary"
	"fmt"

	"coord/proto/coordpb"
)

// maxOwnerBytes bounds a session owner (an id: "x509:" and a CN).
const maxOwnerBytes = 1024

// Session is a replicated session: its id, negotiated timeout and owner.
// Sessions are opened and closed only by commands; the leader decides
// expiry elsewhere and proposes CloseSession.
type Session struct {
	ID        uint64
	TimeoutMs int64
	// Owner is the identity that opened the session (SessionOwner of the
	// caller); "" for a session from before owners were recorded (snapshot
	// format 3 and older, or an old log entry), which anyone may use.
	Owner string
}

// AnonymousOwner owns the sessions anonymous callers open. With no
// authentication configured every caller is anonymous, so every caller
// owns every session, as before owners existed.
const AnonymousOwner = "anonymous"

// SessionOwner is the identity a caller's sessions are bound to: its
// primary id ("x509:alice", "user:bob", "peer:n1") or AnonymousOwner.
func SessionOwner(c *Caller) string {
	if ids := c.GetIds(); len(ids) > 0 && ids[0] != "" {
		return ids[0]
	}
	return AnonymousOwner
}

// sessionRec is one live session in the replicated state.
type sessionRec struct {
	timeoutMs int64
	owner     string // "": legacy, no owner
}

// allows reports whether c may keep the session alive, close it or name it
// in a write: its owner, a superuser, or anyone for a legacy session.
func (r sessionRec) allows(c *Caller) bool {
	return r.owner == "" || c.GetSuper() || r.owner == SessionOwner(c)
}

func errNotOwner(id uint64, c *Caller) error {
	return errorf(ErrNoAuth, fmt.Sprintf("session %#x belongs to another identity than %s", id, SessionOwner(c)))
}

// sessionKey is the 8-byte big-endian id, so the session tree and the
// ephemeral index iterate in id order.
func sessionKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id)
}

// ephemKey is the ephemeral index key: owner id, then path.
func ephemKey(id uint64, p string) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(p)), id), p...)
}

// HasSession reports whether a session is live in the replicated state.
func (t *Tree) HasSession(id uint64) bool {
	_, ok := t.sessions.Get(sessionKey(id))
	return ok
}

// SessionTimeout returns a live session's timeout in milliseconds.
func (t *Tree) SessionTimeout(id uint64) (int64, bool) {
	r, ok := t.sessions.Get(sessionKey(id))
	return r.timeoutMs, ok
}

// CheckSession returns a live session's timeout if c may use it (see
// Session.Owner): ErrSessionExpired when the session is not live, ErrNoAuth
// when it belongs to another identity.
func (t *Tree) CheckSession(id uint64, c *Caller) (int64, error) {
	r, ok := t.sessions.Get(sessionKey(id))
	if !ok {
		return 0, errorf(ErrSessionExpired, fmt.Sprintf("session %#x does not exist or has expired", id))
	}
	if !r.allows(c) {
		return 0, errNotOwner(id, c)
	}
	return r.timeoutMs, nil
}

// useSession is the apply-time check of a write that names session id.
func (x *Txn) useSession(id uint64) error {
	r, ok := x.sessions.Get(sessionKey(id))
	if !ok {
		return errorf(ErrSessionExpired, fmt.Sprintf("session %#x does not exist or has expired", id))
	}
	if !r.allows(x.caller) {
		return errNotOwner(id, x.caller)
	}
	return nil
}

// SessionCount is the number of live sessions.
func (t *Tree) SessionCount() int { return t.sessions.Len() }

// Sessions lists the live sessions sorted by id.
func (t *Tree) Sessions() []Session {
	out := make([]Session, 0, t.sessions.Len())
	it := t.sessions.Root().Iterator()
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		out = append(out, Session{ID: binary.BigEndian.Uint64(k), TimeoutMs: v.timeoutMs, Owner: v.owner})
	}
	return out
}

// Ephemerals lists the paths a session owns, sorted.
func (t *Tree) Ephemerals(sessionID uint64) []string {
	var out []string
	it := t.ephem.Root().Iterator()
	it.SeekPrefix(sessionKey(sessionID))
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		out = append(out, string(k[8:]))
	}
	return out
}

func (x *Txn) createSession(id uint64, timeoutMs int64, owner string) error {
	if id == 0 {
		return errorf(ErrInvalidArgument, "session id 0 is reserved")
	}
	if timeoutMs <= 0 {
		return errorf(ErrInvalidArgument, fmt.Sprintf("session timeout must be positive, got %d ms", timeoutMs))
	}
	key := sessionKey(id)
	if _, ok := x.sessions.Get(key); ok {
		return errorf(ErrInvalidArgument, fmt.Sprintf("session %#x already exists", id))
	}
	if len(owner) > maxOwnerBytes {
		return errorf(ErrInvalidArgument, fmt.Sprintf("session owner of %d bytes, more than %d", len(owner), maxOwnerBytes))
	}
	x.sessions.Insert(key, sessionRec{timeoutMs: timeoutMs, owner: owner})
	return nil
}

// closeSession ends a session and deletes its ephemerals (and any
// container they leave empty) in one apply. A close a client asked for
// (not an expiry) must come from the session's owner or a superuser.
func (x *Txn) closeSession(c *coordpb.CloseSession) error {
	id := c.GetSessionId()
	key := sessionKey(id)
	r, ok := x.sessions.Get(key)
	if !ok {
		return errorf(ErrSessionExpired, fmt.Sprintf("session %#x does not exist or has expired", id))
	}
	if !c.GetExpired() && !r.allows(c.GetCaller()) {
		return errNotOwner(id, c.GetCaller())
	}
	var paths []string
	it := x.ephem.Root().Iterator()
	it.SeekPrefix(key)
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		paths = append(paths, string(k[8:]))
	}
	for _, p := range paths {
		n, ok := x.get(p)
		if !ok || n.owner() != id {
			panic(fmt.Sprintf("tree: ephemeral index lists %q for session %#x, node %+v", p, id, n))
		}
		x.removeSubtree(p)
	}
	x.sessions.Delete(key)
	x.dropReplies(id)
	return nil
}
