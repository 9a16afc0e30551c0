package par

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// VoteTraceFile is the append-only trace of every durable vote (design
// §5.5: "par emits a trace event on every durable vote"). It is a
// diagnostic, not recovery state: the fault harness reads it to check
// that no server granted two votes in one term, across restarts and
// incarnations. Lines are "term hex(candidate)".
const VoteTraceFile = "par-votes.log"

// Vote is one durable vote.
type Vote struct {
	Term      uint64
	Candidate string
}

// traceVote appends a vote to the trace next to the meta copies (best
// effort, not synced: it never decides anything).
func (s *StableStore) traceVote(term uint64, cand []byte) {
	f, err := os.OpenFile(filepath.Join(filepath.Dir(s.pathA), VoteTraceFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "%d %s\n", term, hex.EncodeToString(cand))
	_ = f.Close()
}

// ReadVotes reads dir's vote trace (none: empty).
func ReadVotes(dir string) ([]Vote, error) {
	f, err := os.Open(filepath.Join(dir, VoteTraceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Vote
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ts, cs, ok := strings.Cut(sc.Text(), " ")
		t, err := strconv.ParseUint(ts, 10, 64)
		c, herr := hex.DecodeString(cs)
		if !ok || err != nil || herr != nil {
			continue // a torn last line
		}
		out = append(out, Vote{Term: t, Candidate: string(c)})
	}
	return out, sc.Err()
}
