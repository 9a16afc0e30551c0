package coord

import (
	"testing"

	"coord/coord/replica"
	"coord/coord/tree"
)

func ev(zxid uint64, path string) tree.Event {
	return tree.Event{Type: tree.EventNodeDataChanged, Path: path, Zxid: zxid}
}

// The history takes each zxid's events once whichever source brings them
// first, refuses a pushed batch that would leave a gap, and keeps a
// history the leader's pushes carried past a snapshot reset.
func TestWatchHub_MergesPushedAndLocalBatches(t *testing.T) {
	h := newWatchHub(100)
	h.publish(replica.Batch{Applied: 3, Events: []tree.Event{ev(2, "/a"), ev(3, "/b")}})
	if h.publishPushed(5, 7, []tree.Event{ev(6, "/x")}) {
		t.Fatal("a pushed batch starting after 5 was accepted by a hub at 3 (gap 4..5)")
	}
	if !h.publishPushed(2, 6, []tree.Event{ev(3, "/b"), ev(5, "/c"), ev(5, "/d"), ev(6, "/e")}) {
		t.Fatal("an overlapping pushed batch was refused")
	}
	// The local apply brings 4..6 later: already there.
	h.publish(replica.Batch{Applied: 5, Events: []tree.Event{ev(5, "/c"), ev(5, "/d")}})
	h.publish(replica.Batch{Applied: 8, Events: []tree.Event{ev(6, "/e"), ev(8, "/f")}})
	evs, upTo, floor, _ := h.since(0)
	want := []string{"/a", "/b", "/c", "/d", "/e", "/f"}
	if len(evs) != len(want) || upTo != 8 || floor != 0 {
		t.Fatalf("history %v up to %d floor %d, want %v up to 8", evs, upTo, floor, want)
	}
	for i, e := range evs {
		if e.Path != want[i] {
			t.Fatalf("event %d: %v, want %s", i, e, want[i])
		}
	}
	// A snapshot reset at or below what the history covers changes nothing.
	h.publish(replica.Batch{Applied: 7, Reset: true})
	if _, upTo, floor, _ := h.since(0); upTo != 8 || floor != 0 {
		t.Fatalf("reset below the history moved it: up to %d floor %d", upTo, floor)
	}
	// One beyond it starts over.
	h.publish(replica.Batch{Applied: 20, Reset: true})
	if evs, upTo, floor, _ := h.since(0); len(evs) != 0 || upTo != 20 || floor != 20 {
		t.Fatalf("reset beyond the history: %v up to %d floor %d", evs, upTo, floor)
	}
}
