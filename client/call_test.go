package client

import (
	"testing"

	"coord/coord/coordtest"
)

// A server without Coord.Call (the fake) is spoken to with unary calls
// after the first attempt, and every operation still works.
func TestCall_FallsBackToUnaryWithoutCallStream(t *testing.T) {
	f := startFake(t, "n1")
	c := newTestClient(t, Config{Endpoints: []string{f.addr}})
	ctx := testCtx(t)
	if _, _, err := c.Create(ctx, "/a", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if !c.calls[0].unary.Load() {
		t.Fatal("the client did not notice the server has no Call stream")
	}
	for range 3 {
		if data, _, err := c.Get(ctx, "/a", nil); err != nil || string(data) != "x" {
			t.Fatalf("get = %q, %v", data, err)
		}
	}
	if n := f.count("Get"); n != 3 {
		t.Fatalf("unary Get calls = %d, want 3", n)
	}
}

// Against a real server the data operations travel on the Call stream;
// UnaryCalls turns it off.
func TestCall_RealServerUsesTheStream(t *testing.T) {
	cl := coordtest.NewCluster(t, 1, coordtest.Options{})
	ctx := testCtx(t)
	for _, unary := range []bool{false, true} {
		c := newTestClient(t, Config{Endpoints: cl.Addrs(), UnaryCalls: unary})
		if _, _, err := c.Get(ctx, "/", nil); err != nil {
			t.Fatal(err)
		}
		if unary {
			if len(c.calls) != 0 {
				t.Fatal("UnaryCalls still built Call streams")
			}
			continue
		}
		cc := c.calls[0]
		cc.mu.Lock()
		st := cc.st
		cc.mu.Unlock()
		if st == nil || cc.unary.Load() {
			t.Fatalf("no Call stream in use (stream %v, unary %v)", st, cc.unary.Load())
		}
	}
}
