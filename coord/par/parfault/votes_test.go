package parfault

import (
	"os"
	"path/filepath"
	"testing"

	"coord/coord/par"
)

// The two-votes-per-term check must fire on a real double vote, also one
// split across incarnations, and ignore the sentinel refusal marker.
func TestDoubleVoteCheck(t *testing.T) {
	h := &Harness{names: []string{"n1", "n2", "n3"}}
	dir := t.TempDir()
	write := func(node, trace string) {
		os.MkdirAll(filepath.Join(dir, node), 0o700)
		if err := os.WriteFile(filepath.Join(dir, node, par.VoteTraceFile), []byte(trace), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("n1", "2 6131\n3 6131\n3 6131\n")               // a1 twice in term 3: one vote
	write("n2", "2 6132\n2 007061722d73656e74696e656c\n") // sentinel in term 2: not a vote
	if dv := h.doubleVote(dir, nil); dv != "" {
		t.Fatalf("false double vote: %s", dv)
	}
	if dv := h.doubleVote(dir, map[string][]par.Vote{"n1": {{Term: 3, Candidate: "b"}}}); dv == "" {
		t.Fatal("double vote across incarnations not found")
	}
	write("n3", "4 6131\n4 6132\n")
	if dv := h.doubleVote(dir, nil); dv == "" {
		t.Fatal("double vote in term 4 not found")
	}
}
