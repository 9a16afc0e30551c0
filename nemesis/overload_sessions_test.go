package nemesis

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"coord/coord/coordtest"
)

// The harness's side of the holder protocol, against scripted holders: a
// verdict with an ended session, and a holder that never gets ready.
func TestSessionHolder_Protocol(t *testing.T) {
	ctx := context.Background()
	h, err := startSessionHolder(ctx, []string{"sh", "-c", `echo ready; cat >/dev/null; echo "ended 3 session gone"; echo "expired 1"`, "sh"}, []string{"a:1"}, 5, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n, ended, err := h.finish()
	if err != nil || n != 1 || len(ended) != 1 || ended[0] != "3 session gone" {
		t.Fatalf("finish = %d %q %v", n, ended, err)
	}
	if _, err := startSessionHolder(ctx, []string{"sh", "-c", `echo "cannot reach" >&2; exit 1`, "sh"}, []string{"a:1"}, 5, time.Second); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("a holder that fails: %v", err)
	}
	h, err = startSessionHolder(ctx, []string{"sh", "-c", `echo ready; cat >/dev/null`, "sh"}, []string{"a:1"}, 5, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.finish(); err == nil {
		t.Fatal("a holder without a verdict was accepted")
	}
}

// The holder's body against a real node: it opens its sessions, says
// ready, and reports none expired when asked.
func TestSessionHolder_Run(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{})
	ctx := coordtest.Ctx(t, 30*time.Second)
	inR, inW := io.Pipe()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- RunSessionHolder(ctx, cl.Addrs(), 3, 2*time.Second, inR, &out) }()
	time.Sleep(2500 * time.Millisecond) // longer than the session timeout
	inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "ready\nexpired 0\n" {
		t.Fatalf("holder said %q", got)
	}
}
