package tree

import (
	"bytes"
	"strings"
	"testing"

	"coord/proto/coordpb"
)

func setUser(name string, hash string, groups ...string) *coordpb.Command {
	return &coordpb.Command{Cmd: &coordpb.Command_SetUser{SetUser: &coordpb.SetUser{Name: name, BcryptHash: []byte(hash), Groups: groups}}}
}

func TestUsers_ApplyAndSnapshot(t *testing.T) {
	h := newHarness(t)
	hash := "$2a$10$" + strings.Repeat("x", 53)
	h.ok(setUser("bob", hash, "ops"))
	h.ok(setUser("amy", hash))
	for _, bad := range []*coordpb.Command{
		setUser("", hash), setUser("a b", hash), setUser("a:b", hash), setUser("x", "short"), setUser("x", hash, "g,h"),
		{Cmd: &coordpb.Command_SetUser{SetUser: &coordpb.SetUser{Name: "nobody", Delete: true}}},
	} {
		if r := h.apply(bad); r.Code == coordpb.ErrorCode_OK {
			t.Errorf("%v accepted", bad)
		}
	}
	if got, gs, ok := h.tree.User("bob"); !ok || string(got) != hash || len(gs) != 1 || gs[0] != "ops" {
		t.Fatalf("User(bob) = %q %v %v", got, gs, ok)
	}
	var buf bytes.Buffer
	if err := h.tree.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if us := got.Users(); len(us) != 2 || us[0].Name != "amy" || us[1].Name != "bob" || us[1].Groups[0] != "ops" {
		t.Fatalf("users after restore: %v", us)
	}
	h.ok(&coordpb.Command{Cmd: &coordpb.Command_SetUser{SetUser: &coordpb.SetUser{Name: "bob", Delete: true}}})
	if _, _, ok := h.tree.User("bob"); ok {
		t.Fatal("bob survived delete")
	}
}
