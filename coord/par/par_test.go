package par

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"

	"coord/proto/parpb"
)

func TestEnvelope_RoundTripAndDamage(t *testing.T) {
	l := &raft.Log{Index: 7, Term: 3, Type: raft.LogCommand, Data: []byte("hello"), Extensions: []byte("x")}
	env, c := encodeEnvelope(l)
	got, gc, err := decodeEnvelope(env)
	if err != nil || gc != c || got.Index != 7 || got.Term != 3 || !bytes.Equal(got.Data, l.Data) || !bytes.Equal(got.Extensions, l.Extensions) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := range env {
		bad := append([]byte(nil), env...)
		bad[i] ^= 1
		if _, _, err := decodeEnvelope(bad); !errors.Is(err, ErrBadEnvelope) {
			t.Fatalf("flip at byte %d not detected: %v", i, err)
		}
	}
	if _, _, err := decodeEnvelope(env[:len(env)-1]); !errors.Is(err, ErrBadEnvelope) {
		t.Fatal("truncated envelope accepted")
	}
}

func TestClassify_Table(t *testing.T) {
	tests := []struct {
		id     IDState
		entry  EntryState
		contig bool
		want   Verdict
	}{
		{IDValid, EntryOK, true, VerdictOK},
		{IDValid, EntryBad, true, VerdictFaulty},
		{IDValid, EntryAbsent, true, VerdictFaulty},
		{IDValid, EntryBad, false, VerdictFaulty},
		{IDCorrupt, EntryOK, true, VerdictAdopt},
		{IDCorrupt, EntryOK, false, VerdictDoubleFault},
		{IDCorrupt, EntryBad, true, VerdictDoubleFault},
		{IDCorrupt, EntryAbsent, true, VerdictDoubleFault},
		{IDNone, EntryOK, true, VerdictAdopt},
		{IDNone, EntryOK, false, VerdictTornTail},
		{IDNone, EntryBad, true, VerdictTornTail},
		{IDNone, EntryAbsent, true, VerdictNothing},
		{IDCompacted, EntryOK, true, VerdictFinishCompact},
		{IDCompacted, EntryBad, false, VerdictFinishCompact},
		{IDCompacted, EntryAbsent, false, VerdictNothing},
	}
	seen := map[[3]int]bool{}
	for _, tt := range tests {
		seen[[3]int{int(tt.id), int(tt.entry), map[bool]int{false: 0, true: 1}[tt.contig]}] = true
		if got := Classify(tt.id, tt.entry, tt.contig); got != tt.want {
			t.Errorf("Classify(%v,%v,%v) = %v, want %v", tt.id, tt.entry, tt.contig, got, tt.want)
		}
	}
	// Exhaustive: no combination may keep a damaged entry as OK, and a
	// valid identifier never leads to a local discard.
	for id := IDValid; id <= IDCompacted; id++ {
		for e := EntryOK; e <= EntryAbsent; e++ {
			for _, c := range []bool{false, true} {
				v := Classify(id, e, c)
				if e != EntryOK && (v == VerdictOK || v == VerdictAdopt) {
					t.Errorf("Classify(%v,%v,%v) keeps a damaged entry: %v", id, e, c, v)
				}
				if id == IDValid && (v == VerdictTornTail || v == VerdictFinishCompact || v == VerdictNothing) {
					t.Errorf("Classify(%v,%v,%v) discards an acknowledged entry: %v", id, e, c, v)
				}
			}
		}
	}
}

func TestDecideLoad_Table(t *testing.T) {
	tests := []struct {
		a, b   CopyState
		sa, sb uint64
		data   bool
		want   LoadAction
	}{
		{CopyValid, CopyValid, 5, 5, true, LoadUseA},
		{CopyValid, CopyValid, 6, 5, true, LoadUseAFixB},
		{CopyValid, CopyValid, 5, 6, true, LoadUseBFixA},
		{CopyValid, CopyInvalid, 5, 0, true, LoadUseAFixB},
		{CopyInvalid, CopyValid, 0, 5, true, LoadUseBFixA},
		{CopyMissing, CopyValid, 0, 5, true, LoadUseBFixA},
		{CopyInvalid, CopyInvalid, 0, 0, true, LoadAmnesia},
		{CopyMissing, CopyMissing, 0, 0, true, LoadAmnesia},
		{CopyMissing, CopyMissing, 0, 0, false, LoadFresh},
		{CopyInvalid, CopyMissing, 0, 0, false, LoadAmnesia},
	}
	for _, tt := range tests {
		if got := DecideLoad(tt.a, tt.b, tt.sa, tt.sb, tt.data); got != tt.want {
			t.Errorf("DecideLoad(%v,%v,%d,%d,%v) = %v, want %v", tt.a, tt.b, tt.sa, tt.sb, tt.data, got, tt.want)
		}
	}
}

func TestStableStore_TwoCopiesAndAmnesia(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, MetaFileA), filepath.Join(dir, MetaFileB)
	s, err := openStable(a, b, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("fresh node: %v, want raft's \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 9); err != nil {
		t.Fatal(err)
	}
	corrupt := func(p string) {
		raw, _ := os.ReadFile(p)
		raw[20] ^= 0xff
		os.WriteFile(p, raw, 0o600)
	}
	corrupt(a)
	s, err = openStable(a, b, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 9 || !s.Degraded() {
		t.Fatalf("one copy lost: %d %v degraded=%v", v, err, s.Degraded())
	}
	// The bad copy was rewritten: losing B now still leaves A.
	corrupt(b)
	if s, err = openStable(a, b, true, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.GetUint64([]byte("CurrentTerm")); v != 9 {
		t.Fatalf("after rewrite: term %d", v)
	}
	corrupt(a)
	corrupt(b)
	if s, err = openStable(a, b, true, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("CurrentTerm")); !errors.Is(err, ErrAmnesia) {
		t.Fatalf("both copies lost: %v, want ErrAmnesia", err)
	}
	if err := s.recoverAmnesia(12); err != nil {
		t.Fatal(err)
	}
	cand, _ := s.Get([]byte("LastVoteCand"))
	if vt, _ := s.GetUint64([]byte("LastVoteTerm")); vt != 12 || !bytes.Equal(cand, SentinelCandidate) {
		t.Fatalf("after amnesia recovery: vote term %d cand %q", vt, cand)
	}
	if err := s.SetQuarantine(true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUint64([]byte("LastVoteTerm")); !errors.Is(err, ErrVoteQuarantined) {
		t.Fatalf("quarantine: %v", err)
	}
}

func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	return openNamedStore(t, dir, "n1")
}

// openNamedStore opens a store under another node name (a peer must not
// share the requester's: Hello ignores a request naming the responder).
func openNamedStore(t *testing.T, dir, name string) *Store {
	t.Helper()
	s, err := Open(Config{Dir: dir, Name: name, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func storeN(t *testing.T, s *Store, from, to, term uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := s.Log.StoreLogs([]*raft.Log{{Index: i, Term: term, Type: raft.LogCommand, Data: []byte("value-of-entry")}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLogStore_DetectsCorruptionAndTornTail(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 5, 1)
	var l raft.Log
	if err := s.Log.GetLog(3, &l); err != nil || string(l.Data) != "value-of-entry" {
		t.Fatalf("GetLog: %v %q", err, l.Data)
	}
	// Misdirected write: entry 4's valid envelope stored under key 3.
	var raw raft.Log
	s.bolt.GetLog(4, &raw)
	raw.Index = 3
	s.bolt.StoreLogs([]*raft.Log{&raw})
	err := s.Log.GetLog(3, &l)
	var fe *FaultError
	if !errors.As(err, &fe) || fe.Index != 3 || !errors.Is(err, ErrEntryUnavailable) || errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("misdirected entry: %v", err)
	}
	// A torn tail: entries 6-7 reached bolt but never got identifiers.
	for i := uint64(6); i <= 7; i++ {
		env, _ := encodeEnvelope(&raft.Log{Index: i, Term: 1, Data: []byte("unacked")})
		s.bolt.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: env}})
	}
	var bad raft.Log
	s.bolt.GetLog(7, &bad)
	bad.Data[len(bad.Data)-1] ^= 1
	s.bolt.StoreLogs([]*raft.Log{&bad})
	s.Close()

	s = openTestStore(t, dir)
	defer s.Close()
	r := s.Report()
	if len(r.Faulty) != 1 || r.Faulty[0] != 3 || r.Adopted != 1 || r.TornDiscarded != 1 {
		t.Fatalf("report %+v, want faulty [3], entry 6 re-adopted, 7 torn", r)
	}
	if last, _ := s.Log.LastIndex(); last != 6 {
		t.Fatalf("last index %d, want 6", last)
	}
}

func TestLogStore_LostTailWriteStaysVisible(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 4, 2)
	s.bolt.DeleteRange(4, 4) // bolt lost the acked tail entry
	s.Close()
	s = openTestStore(t, dir)
	defer s.Close()
	if last, _ := s.Log.LastIndex(); last != 4 {
		t.Fatalf("last index %d: a lost acked tail must stay visible to elections", last)
	}
	if r := s.Report(); len(r.Faulty) != 1 || r.Faulty[0] != 4 {
		t.Fatalf("report %+v", r)
	}
}

func TestLogStore_CorruptIdentifierAdopted(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 4, 1)
	s.Close()
	p := filepath.Join(dir, JournalFile)
	raw, _ := os.ReadFile(p)
	raw[recSize+12] ^= 0xff // record of entry 2
	os.WriteFile(p, raw, 0o600)
	s = openTestStore(t, dir)
	defer s.Close()
	if r := s.Report(); r.Adopted != 1 || len(r.Faulty) != 0 {
		t.Fatalf("report %+v", r)
	}
	var l raft.Log
	if err := s.Log.GetLog(2, &l); err != nil {
		t.Fatal(err)
	}
}

func TestOpen_RefusesLostLog(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 3, 4)
	if err := s.Stable.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(dir, BoltFile))
	os.Remove(filepath.Join(dir, JournalFile))
	if _, err := Open(Config{Dir: dir, Name: "n1", NoSync: true}); !errors.Is(err, ErrLostLog) {
		t.Fatalf("Open after losing log and journal: %v, want ErrLostLog", err)
	}
}

func TestOpen_LostBoltKeepsIdentifiers(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 3, 4)
	s.Close()
	os.Remove(filepath.Join(dir, BoltFile))
	s = openTestStore(t, dir)
	defer s.Close()
	if r := s.Report(); len(r.Faulty) != 3 {
		t.Fatalf("report %+v: every identified entry must be faulty (to fetch from peers)", r)
	}
}

// TestServer_Answer checks the responder table: never a nack for anything
// this node might hold.
func TestServer_Answer(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	defer s.Close()
	storeN(t, s, 1, 3, 1)
	storeN(t, s, 4, 6, 2)
	if err := s.Log.DeleteRange(1, 2); err != nil { // compaction up to 2
		t.Fatal(err)
	}
	var raw raft.Log
	s.bolt.GetLog(5, &raw)
	raw.Data[len(raw.Data)-1] ^= 1
	s.bolt.StoreLogs([]*raft.Log{&raw})
	srv := NewServer(s)
	tests := []struct {
		name        string
		i, t, floor uint64
		want        Status
	}{
		{"intact copy", 4, 2, 0, StatusHave},
		{"damaged copy", 5, 2, 0, StatusHaveFaulty},
		{"other term above commit floor", 4, 3, 0, StatusDontHave},
		{"other term at or below commit floor", 4, 3, 4, StatusConflictsCommitted},
		{"beyond last", 9, 2, 0, StatusDontHave},
		{"compacted, same term", 2, 1, 0, StatusCommittedCompacted},
		{"compacted, other term", 2, 5, 0, StatusConflictsCommitted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, env := srv.answer(tt.i, tt.t, tt.floor)
			if got != tt.want {
				t.Fatalf("answer(%d,%d) = %v, want %v", tt.i, tt.t, got, tt.want)
			}
			if (got == StatusHave) != (env != nil) {
				t.Fatalf("envelope %v for status %v", env != nil, got)
			}
		})
	}
	// A damaged journal (a corrupt slot before the last valid record) makes
	// "beyond last" UNKNOWN: the damaged record may have named it.
	s.Log.j.view.corrupt = 1
	if got, _ := srv.answer(9, 2, 0); got != StatusUnknown {
		t.Fatalf("damaged journal: %v, want UNKNOWN", got)
	}
	// An amnesic responder answers UNKNOWN to everything.
	s.Stable.amnesic = true
	resp, err := srv.GetEntries(t.Context(), &parpb.GetEntriesRequest{Items: []*parpb.Item{{Index: 4, Term: 2}}})
	if err != nil || resp.Replies[0].Status != parpb.EntryStatus_ENTRY_STATUS_UNKNOWN {
		t.Fatalf("amnesic: %v %v", resp, err)
	}
}
