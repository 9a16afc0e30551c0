package replica

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestMux_RoutesByMagic(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(ln)
	done := make(chan error, 1)
	go func() { done <- m.Serve() }()
	defer func() {
		m.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	sl := streamLayer{chanListener: m.raft}

	// A connection that closes before saying anything goes nowhere.
	c0, _ := net.Dial("tcp", ln.Addr().String())
	c0.Close()

	// A raft dial arrives on the raft side with the magic stripped.
	rc, err := dialRaft(t, sl, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	// Anything else arrives on the gRPC side, first bytes intact.
	g, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Write([]byte("PRI * HTTP/2.0\r\n"))
	acc := make(chan net.Conn, 1)
	go func() { c, _ := m.GRPC().Accept(); acc <- c }()
	select {
	case c := <-acc:
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "PRI" {
			t.Fatalf("grpc side read %q, %v", buf, err)
		}
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("gRPC side got nothing")
	}
}

// dialRaft dials with the stream layer and accepts the server end,
// checking the payload after the magic arrives unchanged.
func dialRaft(t *testing.T, sl streamLayer, addr string) (net.Conn, error) {
	t.Helper()
	acc := make(chan net.Conn, 2)
	go func() {
		for i := 0; i < 2; i++ {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			acc <- c
		}
	}()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	c.Write(append(append([]byte{}, raftMagic...), 'x'))
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-acc:
			buf := make([]byte, 1)
			s.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadFull(s, buf); err == nil && buf[0] == 'x' {
				return s, nil
			}
		case <-deadline:
			t.Fatal("raft side got nothing")
		}
	}
}
