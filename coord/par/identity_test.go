package par

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadIdentity(t *testing.T) {
	base := Identity{Name: "n2", NodeID: newNodeID(), ClusterID: ClusterID([]Peer{{Name: "n1"}, {Name: "n2"}}), Incarnation: 3, CreatedAt: time.Unix(100, 0), PromoteAt: 7}
	for _, tc := range []struct {
		name   string
		damage func(dir string)
		want   IdentityState
	}{
		{"both intact", func(string) {}, IdentityValid},
		{"copy A corrupt", func(d string) { flipByte(t, filepath.Join(d, NodeFileA), 70) }, IdentityValid},
		{"copy B missing", func(d string) { os.Remove(filepath.Join(d, NodeFileB)) }, IdentityValid},
		{"both corrupt", func(d string) {
			flipByte(t, filepath.Join(d, NodeFileA), 10)
			flipByte(t, filepath.Join(d, NodeFileB), 10)
		}, IdentityDamaged},
		{"both missing", func(d string) {
			os.Remove(filepath.Join(d, NodeFileA))
			os.Remove(filepath.Join(d, NodeFileB))
		}, IdentityMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := WriteIdentity(dir, base, true); err != nil {
				t.Fatal(err)
			}
			tc.damage(dir)
			got, st, err := LoadIdentity(dir, true)
			if err != nil || st != tc.want {
				t.Fatalf("state %v err %v, want %v", st, err, tc.want)
			}
			if st != IdentityValid {
				return
			}
			if got.Name != base.Name || got.NodeID != base.NodeID || got.ClusterID != base.ClusterID ||
				got.Incarnation != base.Incarnation || got.PromoteAt != base.PromoteAt || !got.CreatedAt.Equal(base.CreatedAt) {
				t.Fatalf("loaded %+v, want %+v", got, base)
			}
			// The damaged copy was rewritten: both copies verify now.
			for _, f := range []string{NodeFileA, NodeFileB} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if _, ok := decodeIdentity(b); err != nil || !ok {
					t.Fatalf("%s not repaired: %v", f, err)
				}
			}
		})
	}
}

// A crash between the two writes of a new incarnation leaves A newer than
// B: the higher incarnation wins.
func TestLoadIdentity_NewerIncarnationWins(t *testing.T) {
	dir := t.TempDir()
	old := Identity{Name: "n1", NodeID: newNodeID(), Incarnation: 1}
	if err := WriteIdentity(dir, old, true); err != nil {
		t.Fatal(err)
	}
	next := old
	next.Incarnation, next.NodeID = 2, newNodeID()
	if err := writeIdentityCopy(filepath.Join(dir, NodeFileA), next, true); err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadIdentity(dir, true)
	if err != nil || got.Incarnation != 2 || got.NodeID != next.NodeID {
		t.Fatalf("got %+v %v, want incarnation 2", got, err)
	}
}

func TestMemberRecord(t *testing.T) {
	dir := t.TempDir()
	st, err := openStable(filepath.Join(dir, "a"), filepath.Join(dir, "b"), false, true)
	if err != nil {
		t.Fatal(err)
	}
	id2 := newNodeID()
	if err := st.rememberMember("n3", id2[:], 2); err != nil {
		t.Fatal(err)
	}
	id1 := newNodeID()
	if err := st.rememberMember("n3", id1[:], 1); err != nil { // older: ignored
		t.Fatal(err)
	}
	st2, err := openStable(filepath.Join(dir, "a"), filepath.Join(dir, "b"), true, true)
	if err != nil {
		t.Fatal(err)
	}
	nid, inc, ok := st2.knownMember("n3")
	if !ok || inc != 2 || string(nid) != string(id2[:]) {
		t.Fatalf("known %v inc %d, want incarnation 2 durable", ok, inc)
	}
	if _, _, ok := st2.knownMember("n4"); ok {
		t.Fatal("n4 known without a hello")
	}
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0x10
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A lost log under a surviving term is refused (ErrLostLog) unless the
// lost-node procedure opens it, or a prepared promotion is pending.
func TestOpen_LostLogRecoverPaths(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir)
	storeN(t, s, 1, 3, 4)
	if err := s.Stable.SetUint64([]byte("CurrentTerm"), 4); err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.Remove(filepath.Join(dir, BoltFile))
	os.Remove(filepath.Join(dir, JournalFile))
	s, err := Open(Config{Dir: dir, Name: "n1", NoSync: true, LostNode: true})
	if err != nil {
		t.Fatalf("lost-node open: %v", err)
	}
	if s.hasLog() {
		t.Fatal("a lost log reported as present")
	}
	s.Close()
	if err := WriteIdentity(dir, Identity{Name: "n1", Incarnation: 2, PromoteAt: 9}, true); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Config{Dir: dir, Name: "n1", NoSync: true})
	if err != nil {
		t.Fatalf("open with a pending promotion: %v", err)
	}
	s.Close()
}
