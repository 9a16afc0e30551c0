package fuse

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"coord/proto/coordpb"
)

// TestSessionExpiry_NewSession: when the mount's session ends under it,
// the mount opens a new one; a file opened under the old session fails
// with EIO, new opens work, and ctl ephemerals belong to the new session.
func TestSessionExpiry_NewSession(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), nil)
	ctx := ctxT(t, 30*time.Second)
	d := m.Dir()
	sh(t, d, "echo old > f")
	f, err := os.OpenFile(d+"/f", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := m.Client().SessionID()
	if _, err := cl.Conn(0).CloseSession(ctx, &coordpb.CloseSessionRequest{SessionId: old}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); m.Client().SessionID() == old; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no new session after the old one ended")
		}
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write on a handle of the expired session: %v, want EIO", err)
	}
	sh(t, d, "echo new > f")
	if got := sh(t, d, "cat f"); got != "new\n" {
		t.Fatalf("after new session: %q", got)
	}
	p := strings.TrimSpace(sh(t, d, `exec 3<>.coord/ctl; echo 'create -e /e2' >&3; read -r p <&3; echo $p`))
	st, err := m.Client().Exists(ctx, p, nil)
	if err != nil || st == nil || st.EphemeralOwner != m.Client().SessionID() {
		t.Fatalf("ephemeral after renewal: %+v %v", st, err)
	}
	if status := sh(t, d, "cat .coord/status"); !strings.Contains(status, "session_state live") {
		t.Fatalf("status: %q", status)
	}
}
