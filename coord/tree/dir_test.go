package tree

import (
	"errors"
	"testing"

	"coord/proto/coordpb"
)

func TestTxn_Apply_DirectoryFlag(t *testing.T) {
	tr := New()
	x := tr.Txn()
	apply := func(z uint64, ops ...*coordpb.Op) *coordpb.ApplyResult {
		return x.Apply(z, &coordpb.Command{Cmd: &coordpb.Command_Txn{Txn: &coordpb.Txn{Ops: ops}}})
	}
	mk := func(p string, dir bool) *coordpb.Op {
		return &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: p, Directory: dir}}}
	}
	if r := apply(1, mk("/d", true), mk("/f", false), mk("/g", false), mk("/g/child", false)); r.Code != coordpb.ErrorCode_OK {
		t.Fatal(r.Message)
	}
	apply(2, &coordpb.Op{Op: &coordpb.Op_Delete{Delete: &coordpb.DeleteOp{Path: "/g/child", Version: -1}}})
	tr = x.Commit()
	for p, want := range map[string]bool{"/": true, "/d": true, "/f": false, "/g": true} {
		_, st, err := tr.Get(p)
		if err != nil || st.Directory != want {
			t.Errorf("%s directory = %v, want %v (%v)", p, st.GetDirectory(), want, err)
		}
	}
	x = tr.Txn()
	x.Apply(3, openSession(9))
	r := apply(4, &coordpb.Op{Op: &coordpb.Op_Create{Create: &coordpb.CreateOp{Path: "/e", Mode: coordpb.CreateMode_EPHEMERAL, SessionId: 9, Directory: true}}})
	if r.Code != coordpb.ErrorCode_INVALID_ARGUMENT {
		t.Fatalf("ephemeral directory: %v", r)
	}
}

func TestTxn_Apply_ReservedNames(t *testing.T) {
	tr := New()
	x := tr.Txn()
	x.Apply(1, txn(createOp("/a", "")))
	for i, p := range []string{"/a/.data", "/.lock", "/.coord", "/.coord/x"} {
		r := x.Apply(uint64(2+i), txn(createOp(p, "")))
		if r.Code != coordpb.ErrorCode_INVALID_PATH {
			t.Errorf("create %s: %v %s", p, r.Code, r.Message)
		}
		if !errors.Is(ErrorFromCode(r.Code, r.Message), ErrInvalidPath) {
			t.Errorf("%s: not ErrInvalidPath", p)
		}
	}
	if r := x.Apply(9, txn(createOp("/a/.datax", ""))); r.Code != coordpb.ErrorCode_OK {
		t.Fatalf("a name merely starting with .data is fine: %s", r.Message)
	}
}
