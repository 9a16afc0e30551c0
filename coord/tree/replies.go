package tree

import (
	"encoding/binary"

	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

// Remembered write results make retries exactly-once: a Txn that names its
// session and a request id has its result stored under (session, id); the
// same request again returns the stored result and changes nothing. The
// client says which results it no longer needs (acked_below), and closing
// or expiring the session forgets them all, so the store stays bounded by
// each client's writes in flight.

// replyKey is sessionKey(id) then the 8-byte big-endian request id.
func replyKey(session, request uint64) []byte {
	return binary.BigEndian.AppendUint64(sessionKey(session), request)
}

// MaxRepliesPerSession bounds one session's remembered results; beyond it
// the oldest go first (a client with this many writes in flight loses
// exactly-once for the oldest).
const MaxRepliesPerSession = 4096

// applyTxnOnce applies a Txn with exactly-once semantics when it carries a
// session and request id.
func (x *Txn) applyTxnOnce(res *coordpb.ApplyResult, t *coordpb.Txn) *coordpb.ApplyResult {
	sid, rid := t.GetSessionId(), t.GetRequestId()
	if sid == 0 {
		if rid != 0 || t.GetAckedBelow() != 0 {
			return fail(res, errorf(ErrInvalidArgument, "a request id needs a session"), -1)
		}
		return x.applyTxn(res, t.GetOps())
	}
	if err := x.useSession(sid); err != nil {
		return fail(res, err, -1)
	}
	x.forgetReplies(sid, t.GetAckedBelow())
	if rid == 0 {
		return x.applyTxn(res, t.GetOps())
	}
	key := replyKey(sid, rid)
	if prev, ok := x.replies.Get(key); ok {
		return proto.Clone(prev).(*coordpb.ApplyResult)
	}
	out := x.applyTxn(res, t.GetOps())
	x.replies.Insert(key, proto.Clone(out).(*coordpb.ApplyResult))
	x.capReplies(sid)
	return out
}

// forgetReplies drops the session's results for request ids below below.
func (x *Txn) forgetReplies(sid, below uint64) {
	if below == 0 {
		return
	}
	var drop [][]byte
	it := x.replies.Root().Iterator()
	it.SeekPrefix(sessionKey(sid))
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		if binary.BigEndian.Uint64(k[8:]) >= below {
			break
		}
		drop = append(drop, k)
	}
	for _, k := range drop {
		x.replies.Delete(k)
	}
}

// capReplies keeps at most MaxRepliesPerSession results for a session.
func (x *Txn) capReplies(sid uint64) {
	var keys [][]byte
	it := x.replies.Root().Iterator()
	it.SeekPrefix(sessionKey(sid))
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		keys = append(keys, k)
		if len(keys) > MaxRepliesPerSession+64 {
			break
		}
	}
	if len(keys) <= MaxRepliesPerSession {
		return
	}
	for _, k := range keys[:len(keys)-MaxRepliesPerSession] {
		x.replies.Delete(k)
	}
}

// dropReplies forgets every result of a closed session.
func (x *Txn) dropReplies(sid uint64) { x.replies.DeletePrefix(sessionKey(sid)) }

// Replies is the number of remembered write results (for tests and
// metrics).
func (t *Tree) Replies() int { return t.replies.Len() }
