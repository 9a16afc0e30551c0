package rpc

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"coord/coord/replica"
	"coord/coord/tree"
)

// An error carried inside a ProposeOutcome comes back as the same
// sentinel, so a follower retries or reports it exactly as it would a
// unary call's error.
func TestStatusRoundTripKeepsSentinels(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, want := range []error{
		replica.ErrNotLeader, replica.ErrNoLeader, replica.ErrUnknownOutcome,
		tree.ErrNodeExists, tree.ErrBadVersion, tree.ErrInvalidArgument,
		fmt.Errorf("wrapped: %w", replica.ErrNotLeader),
	} {
		got := DecodeStatus(EncodeStatus(ToStatus(log, want)))
		if got == nil {
			t.Fatalf("%v: decoded to nil", want)
		}
		var sentinel error
		for _, e := range []error{replica.ErrNotLeader, replica.ErrNoLeader, replica.ErrUnknownOutcome, tree.ErrNodeExists, tree.ErrBadVersion, tree.ErrInvalidArgument} {
			if errors.Is(want, e) {
				sentinel = e
			}
		}
		if !errors.Is(got, sentinel) {
			t.Fatalf("%v: decoded %v, which is not %v", want, got, sentinel)
		}
	}
}

// Garbage or an OK status never decodes to "no error".
func TestDecodeStatusMalformedIsAnError(t *testing.T) {
	for _, b := range [][]byte{nil, {0xff, 0x01}, EncodeStatus(nil)} {
		if err := DecodeStatus(b); err == nil {
			t.Fatalf("DecodeStatus(%x) = nil", b)
		}
	}
}
