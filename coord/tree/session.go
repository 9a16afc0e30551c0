package tree

import (
	"encoding/binary"
	"fmt"
)

// Session is a replicated session: its id and negotiated timeout. Sessions
// are opened and closed only by commands; the leader decides expiry
// elsewhere and proposes CloseSession.
type Session struct {
	ID        uint64
	TimeoutMs int64
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
func (t *Tree) SessionTimeout(id uint64) (int64, bool) { return t.sessions.Get(sessionKey(id)) }

// SessionCount is the number of live sessions.
func (t *Tree) SessionCount() int { return t.sessions.Len() }

// Sessions lists the live sessions sorted by id.
func (t *Tree) Sessions() []Session {
	out := make([]Session, 0, t.sessions.Len())
	it := t.sessions.Root().Iterator()
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		out = append(out, Session{ID: binary.BigEndian.Uint64(k), TimeoutMs: v})
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

func (x *Txn) createSession(id uint64, timeoutMs int64) error {
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
	x.sessions.Insert(key, timeoutMs)
	return nil
}

// closeSession ends a session and deletes its ephemerals (and any
// container they leave empty) in one apply.
func (x *Txn) closeSession(id uint64) error {
	key := sessionKey(id)
	if _, ok := x.sessions.Get(key); !ok {
		return errorf(ErrSessionExpired, fmt.Sprintf("session %#x does not exist or has expired", id))
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
