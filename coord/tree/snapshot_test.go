package tree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

func sampleTree(t testing.TB) *Tree {
	h := &harness{tree: New(), now: 1000}
	apply := func(c *coordpb.Command) {
		if r := h.apply(c); r.Code != coordpb.ErrorCode_OK {
			t.Fatalf("%v %s", r.Code, r.Message)
		}
	}
	apply(openSession(7))
	apply(txn(createOp("/a", "alpha"), createOp("/a/b", ""), createOp("/a!", "x")))
	apply(txn(createMode("/q", coordpb.CreateMode_CONTAINER, false, 0, 0), createMode("/q/j-", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
	apply(txn(createMode("/e", coordpb.CreateMode_EPHEMERAL, false, 7, 0), createMode("/t", coordpb.CreateMode_TTL, false, 0, 50)))
	apply(txn(setOp("/a", "beta", 0)))
	apply(as(who("x509:alice"), createACL("/acl", grant(IDCreator, PermAll), grant("group:ops", PermRead))))
	apply(setUser("bob", "$2a$10$"+strings.Repeat("y", 53), "ops"))
	return h.tree
}

func TestSnapshot_RoundTrip(t *testing.T) {
	orig := sampleTree(t)
	var buf bytes.Buffer
	if err := orig.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := dumpState(orig, true), dumpState(got, true); a != b {
		t.Fatalf("restored state differs:\n%s\nvs\n%s", a, b)
	}
	checkInvariants(t, got)
	if got.Zxid() != orig.Zxid() || got.Len() != orig.Len() {
		t.Fatalf("zxid/len %d/%d vs %d/%d", got.Zxid(), got.Len(), orig.Zxid(), orig.Len())
	}
	for _, p := range []string{"/", "/a", "/a/b", "/a!", "/q", "/q/j-0000000000", "/e", "/t"} {
		d1, s1, e1 := orig.Get(p)
		d2, s2, e2 := got.Get(p)
		if e1 != nil || e2 != nil || !bytes.Equal(d1, d2) || s1.String() != s2.String() {
			t.Fatalf("%s differs: %q %v / %q %v (%v %v)", p, d1, s1, d2, s2, e1, e2)
		}
	}
	if !reflect.DeepEqual(got.Sessions(), orig.Sessions()) || !reflect.DeepEqual(got.Ephemerals(7), []string{"/e"}) {
		t.Fatal("sessions or ephemeral index not restored")
	}
	if len(got.ExpiredTTL(1<<62, 0)) != 1 {
		t.Fatal("ttl index not restored")
	}
	// Sequence counters survive: the next sequential child continues.
	x := got.Txn()
	r := x.Apply(got.Zxid()+1, txn(createMode("/q/j-", coordpb.CreateMode_PERSISTENT, true, 0, 0)))
	if p := r.Results[0].GetCreate().GetPath(); p != "/q/j-0000000001" {
		t.Fatalf("sequence after restore: %s", p)
	}
	// Same state, same bytes.
	var again bytes.Buffer
	got.WriteSnapshot(&again)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Fatal("re-serialised snapshot differs")
	}
}

func TestSnapshot_Corruption(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleTree(t).WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	// Every single-byte flip and every truncation is detected.
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x5a
		if _, err := ReadSnapshot(bytes.NewReader(bad)); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("flip at byte %d/%d: %v", i, len(good), err)
		}
	}
	for n := 0; n < len(good); n++ {
		if _, err := ReadSnapshot(bytes.NewReader(good[:n])); !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func FuzzReadSnapshot(f *testing.F) {
	var buf bytes.Buffer
	sampleTree(f).WriteSnapshot(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("COORDTREE\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := ReadSnapshot(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("non-corruption error: %v", err)
			}
			return
		}
		// Whatever reads back is a consistent state and serialises to
		// the same bytes.
		checkInvariants(t, tr)
		var out bytes.Buffer
		if err := tr.WriteSnapshot(&out); err != nil {
			t.Fatal(err)
		}
		if formatOf(b) != snapshotFormat {
			// An old-format snapshot is rewritten in the current format;
			// that must be a fixed point.
			tr2, err := ReadSnapshot(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("re-read of an upgraded snapshot: %v", err)
			}
			var again bytes.Buffer
			_ = tr2.WriteSnapshot(&again)
			if !bytes.Equal(again.Bytes(), out.Bytes()) {
				t.Fatal("upgraded snapshot does not re-serialise to the same bytes")
			}
			return
		}
		if !bytes.HasPrefix(b, out.Bytes()) {
			t.Fatal("accepted snapshot does not re-serialise to the same bytes")
		}
	})
}

// formatOf reads the format of a snapshot that ReadSnapshot accepted.
func formatOf(b []byte) uint32 {
	b = b[len(snapshotMagic):]
	size := binary.BigEndian.Uint32(b[1:5])
	var hdr coordpb.SnapshotHeader
	if err := proto.Unmarshal(b[5:5+size], &hdr); err != nil {
		return 0
	}
	return uint32(hdr.Format)
}

func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "//", "/a/../b", "/\x00", "/é", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := ValidatePath(p)
		if err != nil && !errors.Is(err, ErrInvalidPath) {
			t.Fatalf("error not ErrInvalidPath: %v", err)
		}
		if err == nil && p != "/" {
			// A valid path has a valid parent.
			if perr := ValidatePath(parentOf(p)); perr != nil {
				t.Fatalf("valid %q has invalid parent: %v", p, perr)
			}
		}
	})
}

// FuzzApply decodes arbitrary bytes as a command and applies it: never a
// panic, and the tree stays consistent (snapshot round-trips).
func FuzzApply(f *testing.F) {
	for _, c := range []*coordpb.Command{
		txn(createOp("/a", "x")),
		txn(createOp("/a", ""), createOp("/a/b", ""), deleteOp("/a", -1, true)),
		txn(createMode("/s/", coordpb.CreateMode_PERSISTENT, true, 0, 0)),
		openSession(3),
		closeSession(3),
	} {
		b, _ := protoMarshal(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cmd := &coordpb.Command{}
		if err := protoUnmarshal(b, cmd); err != nil {
			return
		}
		tr := sampleTree(t)
		before := dumpState(tr, true)
		x := tr.Txn()
		for i := uint64(1); i <= 2; i++ {
			mid := dumpState(x.Commit(), false)
			res := x.Apply(tr.Zxid()+i, cmd)
			if res.Code != coordpb.ErrorCode_OK {
				if after := dumpState(x.Commit(), false); after != mid {
					t.Fatalf("failed %v (%s) changed the state", res.Code, res.Message)
				}
				if len(res.Results) != 0 {
					t.Fatal("failed command has results")
				}
			}
		}
		out := x.Commit()
		checkInvariants(t, out)
		if dumpState(tr, true) != before {
			t.Fatal("apply changed the tree it started from")
		}
		var buf bytes.Buffer
		if err := out.WriteSnapshot(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadSnapshot(&buf)
		if err != nil {
			t.Fatalf("state after %v does not round-trip: %v", cmd, err)
		}
		if dumpState(back, true) != dumpState(out, true) {
			t.Fatal("round trip changed the state")
		}
	})
}

func roundTrip(t testing.TB, tr *Tree) *Tree {
	t.Helper()
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return back
}
