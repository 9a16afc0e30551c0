package tree

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"coord/proto/coordpb"
)

// TestWriteFuzzSeeds regenerates the checked-in seed corpora under
// testdata/fuzz when COORD_WRITE_FUZZ_SEEDS=1; otherwise it is skipped.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("COORD_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set COORD_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz")
	}
	write := func(fuzz, name string, v any) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var lit string
		switch v := v.(type) {
		case []byte:
			lit = "[]byte(" + strconv.Quote(string(v)) + ")"
		case string:
			lit = "string(" + strconv.Quote(v) + ")"
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n"+lit+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range []string{"/", "/a", "/a/b/c", "/a/", "//", "/a/./b", "/a/../b", "/a\x00", "/\u0085", "/é/ü", "a/b", "", "/\xff", "/a b"} {
		write("FuzzValidatePath", fmt.Sprintf("seed%02d", i), p)
	}
	for i, c := range []*coordpb.Command{
		txn(createOp("/a", "x")),
		txn(createOp("/n", ""), createOp("/n/b", ""), deleteOp("/n", -1, true)),
		txn(createMode("/q/j-", coordpb.CreateMode_PERSISTENT, true, 0, 0)),
		txn(createMode("/", coordpb.CreateMode_PERSISTENT, true, 0, 0)),
		txn(createMode("/e2", coordpb.CreateMode_EPHEMERAL, false, 7, 0)),
		txn(createMode("/t2", coordpb.CreateMode_TTL, false, 0, 5)),
		txn(createMode("/c", coordpb.CreateMode_CONTAINER, false, 0, 0), createOp("/c/x", ""), deleteOp("/c/x", -1, false)),
		txn(setOp("/a", "y", 1), checkOp("/a", 1)),
		txn(deleteOp("/a", -1, true)),
		txn(createOp("/z", ""), deleteOp("/a/b", 0, false), createOp("/a/b", "")),
		openSession(3),
		closeSession(7),
		expireCmd([]*coordpb.ExpireTTLNode{{Path: "/t", Mzxid: 5}}),
		{},
	} {
		b, err := protoMarshal(c)
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzApply", fmt.Sprintf("seed%02d", i), b)
	}
	var buf bytes.Buffer
	if err := sampleTree(t).WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	write("FuzzReadSnapshot", "good", good)
	write("FuzzReadSnapshot", "empty-tree", snapshotBytes(t, New()))
	write("FuzzReadSnapshot", "truncated", good[:len(good)/2])
	write("FuzzReadSnapshot", "magic-only", snapshotMagic)
}

func snapshotBytes(t testing.TB, tr *Tree) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := tr.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
