package lease

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"coord/lease/internal/core"
)

// NodeID names a group member; stable across restarts.
type NodeID = core.NodeID

// Member is one group member: its ID and its FleasePeer address.
type Member struct {
	ID   NodeID
	Addr string
}

// HolderInfo describes the lease on a resource.
type HolderInfo struct {
	Resource string
	Holder   NodeID // empty when free
	Epoch    uint64
	Expiry   time.Time
	Released bool
}

// Free reports whether no one holds the resource (as of the observation).
func (h HolderInfo) Free() bool { return h.Holder == "" || h.Released }

func infoOf(res string, v core.Value) HolderInfo {
	if v.IsZero() {
		return HolderInfo{Resource: res}
	}
	return HolderInfo{Resource: res, Holder: v.Owner, Epoch: v.Epoch, Expiry: time.Unix(0, v.Expiry), Released: v.Released}
}

// maxResourceLen is the longest resource name in bytes.
const maxResourceLen = 512

// checkResource returns ErrBadResource (wrapped) unless res is 1–512 bytes
// of UTF-8 without NUL.
func checkResource(res string) error {
	switch {
	case res == "":
		return fmt.Errorf("%w: empty", ErrBadResource)
	case len(res) > maxResourceLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadResource, len(res), maxResourceLen)
	case !utf8.ValidString(res):
		return fmt.Errorf("%w: not UTF-8", ErrBadResource)
	case strings.IndexByte(res, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrBadResource)
	}
	return nil
}

// EventKind classifies a Watch event.
type EventKind uint8

// Watch event kinds.
const (
	EventAcquired      EventKind = iota + 1 // this node got a new tenure
	EventRenewed                            // this node's tenure was extended
	EventLost                               // this node's tenure ended (Err says why)
	EventHolderChanged                      // a newer committed value was seen (any holder)
	EventResync                             // events were dropped: call Holder
)

var eventNames = [...]string{"?", "acquired", "renewed", "lost", "holder-changed", "resync"}

func (k EventKind) String() string { return eventNames[k] }

// Event is one Watch notification.
type Event struct {
	Kind EventKind
	HolderInfo
	Err error // EventLost: why (ErrReleased, ErrExpired, ...)
}
