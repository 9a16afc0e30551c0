package fuse

import (
	"strings"
	"testing"
	"time"

	"coord/client"
)

// TestCtl_EphemeralSequential: the control file creates ephemeral and
// sequential nodes owned by the mount's session; status shows it.
func TestCtl_EphemeralSequential(t *testing.T) {
	cl := newCluster(t, 1)
	m := mountAt(t, cl.Addrs(), nil)
	c := newClient(t, cl.Addrs())
	ctx := ctxT(t, 30*time.Second)
	d := m.Dir()
	sh(t, d, "mkdir q")
	out := sh(t, d, `exec 3<>.coord/ctl; echo 'create -e -s /q/job- payload x' >&3; read -r p <&3; echo "$p"`)
	p := strings.TrimSpace(out)
	if !strings.HasPrefix(p, "/q/job-") || len(p) < len("/q/job-0000000000") {
		t.Fatalf("created %q", out)
	}
	data, st, err := c.Get(ctx, p, nil)
	if err != nil || string(data) != "payload x" || st.Mode != client.ModeEphemeral || st.EphemeralOwner != m.Client().SessionID() {
		t.Fatalf("ephemeral: %q %+v %v", data, st, err)
	}
	if got := sh(t, d, "cat "+strings.TrimPrefix(p, "/")); got != "payload x" {
		t.Fatalf("cat ephemeral: %q", got)
	}
	// Ten sequential creates: distinct, ordered names.
	out = sh(t, d, `exec 3<>.coord/ctl; for i in 1 2 3 4 5 6 7 8 9 10; do echo "create -s /q/s-" >&3; read -r p <&3; echo $p; done`)
	names := strings.Fields(out)
	if len(names) != 10 {
		t.Fatalf("sequential: %q", out)
	}
	for i := 1; i < len(names); i++ {
		if names[i] <= names[i-1] {
			t.Fatalf("sequential names not increasing: %v", names)
		}
	}
	// Errors come back as a line and a failed write.
	if out, err := shErr(d, `echo 'create /no/such/parent' > .coord/ctl`); err == nil {
		t.Fatalf("create under a missing parent succeeded: %q", out)
	}
	if out, err := shErr(d, `echo 'frobnicate' > .coord/ctl`); err == nil {
		t.Fatalf("unknown command: %v %q", err, out)
	}
	status := sh(t, d, "cat .coord/status")
	if !strings.Contains(status, "session_state live") || !strings.Contains(status, "session 0x") {
		t.Fatalf("status: %q", status)
	}
	// Unmounting closes the session: the ephemeral goes.
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Exists(ctx, p, nil); err != nil || st != nil {
		t.Fatalf("ephemeral survived unmount: %+v %v", st, err)
	}
}
