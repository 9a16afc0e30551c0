package fuse

import (
	"os"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSubset: the go-fuse posixtest cases the mount passes (POSIX_TESTS=all
// runs every case). Failing, by design or not done (see docs/FUSE.md):
// SymlinkReadlink, SetattrSymlink, OpenSymlinkRace, Link, LinkUnlinkRename
// (no symlinks or hard links in coord); FileBasic (chmod is ignored: mode
// is always 0644/0755); OpenAt, RenameOpenDir (a directory rename is EXDEV);
// RenameOverwriteDest* (a renamed leaf is a new znode, so a new inode
// number); NlinkZero, FstatDeleted (fstat of an unlinked open file finds no
// znode); Fallocate*; XAttr (only user.coord.* attributes exist).
var posixSubset = []string{
	"AppendWrite",
	"DirectIO",
	"FcntlFlockLocksFile",
	"FcntlFlockSetLk",
	"FdLeak",
	"FileLarge",
	"LseekEnxioCheck",
	"LseekHoleSeeksToEOF",
	"MkdirRmdir",
	"ParallelFileOpen",
	"ReadDirConsistency",
	"TruncateFile",
	"TruncateNoFile",
}

// posixSlow pass too but create hundreds of znodes (10+ s each under
// -race on 2 cores): run with FUSE_SLOW=1.
var posixSlow = []string{"DirSeek", "ReadDirBasic"}

func TestPosix(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), nil)
	only := os.Getenv("POSIX_TESTS") // e.g. POSIX_TESTS=all to try every case
	names := posixSubset
	if os.Getenv("FUSE_SLOW") != "" {
		names = append(names, posixSlow...)
	}
	if only == "all" {
		names = nil
		for name := range posixtest.All {
			names = append(names, name)
		}
	} else if only != "" {
		names = strings.Split(only, ",")
	}
	for _, name := range names {
		fn := posixtest.All[name]
		if fn == nil {
			t.Fatalf("no posixtest %q", name)
		}
		t.Run(name, func(t *testing.T) {
			dir, err := os.MkdirTemp(m.Dir(), "t")
			if err != nil {
				t.Fatal(err)
			}
			fn(t, dir)
		})
	}
}
