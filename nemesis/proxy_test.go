package nemesis

import (
	"bufio"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// echo serves one line-echo server on loopback.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestProxy_CutHealReset(t *testing.T) {
	target := echo(t)
	links := NewLinks()
	p, err := NewProxy(0, func() string { return target }, links, func(_, _ net.Addr) int { return 7 })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(msg string, within time.Duration) (string, error) {
		c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	if got, err := roundTrip("a", time.Second); err != nil || got != "a\n" {
		t.Fatalf("through the proxy: %q %v", got, err)
	}
	// One way cut (7 -> 0): the request is held, not lost.
	links.Cut(7, 0)
	if _, err := roundTrip("b", 200*time.Millisecond); err == nil {
		t.Fatal("a cut link delivered")
	}
	links.HealAll(false)
	c.SetDeadline(time.Now().Add(time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "b\n" {
		t.Fatalf("after heal the held bytes should arrive: %q %v", got, err)
	}
	// The reply direction (0 -> 7) cut, then healed with reset: the
	// connection is closed.
	links.Cut(0, 7)
	if _, err := roundTrip("c", 200*time.Millisecond); err == nil {
		t.Fatal("a cut reply delivered")
	}
	links.HealAll(true)
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("a reset connection kept working")
	}
}

func TestSocketOwner(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := socketOwner(s.RemoteAddr(), s.LocalAddr(), map[int]int{os.Getpid(): 3})
	if err != nil || got != 3 {
		t.Fatalf("owner of our own socket: %d %v", got, err)
	}
	if got, err := socketOwner(s.RemoteAddr(), s.LocalAddr(), map[int]int{1 << 30: 3}); err == nil {
		t.Fatalf("owner among other pids: %d", got)
	}
}

// A delayed link adds its latency each way, keeps the byte order under
// jitter, and is lifted by SetDelay(nil, 0, 0).
func TestProxy_DelayJitter(t *testing.T) {
	target := echo(t)
	links := NewLinks()
	p, err := NewProxy(0, func() string { return target }, links, func(_, _ net.Addr) int { return 7 })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	rtt := func(msg string) time.Duration {
		t.Helper()
		start := time.Now()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("echo %q: %q %v", msg, got, err)
		}
		return time.Since(start)
	}
	if d := rtt("warm"); d > 40*time.Millisecond {
		t.Logf("undelayed round trip %v (loaded machine)", d)
	}
	links.SetDelay(func(from, to int) bool { return true }, 30*time.Millisecond, 10*time.Millisecond)
	// Both directions delayed: a round trip takes at least 2 × 20 ms.
	if d := rtt("slow"); d < 40*time.Millisecond {
		t.Fatalf("delayed round trip %v, want >= 40ms", d)
	}
	// Many small writes under jitter still arrive in order.
	var want string
	for i := 0; i < 50; i++ {
		line := string(rune('a'+i%26)) + "\n"
		want += line
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var got string
	for len(got) < len(want) {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got += line
	}
	if got != want {
		t.Fatalf("reordered under jitter:\n got %q\nwant %q", got, want)
	}
	links.SetDelay(nil, 0, 0)
	if d := rtt("fast"); d >= 40*time.Millisecond {
		t.Logf("round trip after lifting the delay %v (loaded machine?)", d)
	}
}

// findSocket matches both ends: a port the dialer used is reused by other
// sockets toward other destinations (loopback), and a live socket wins
// over the same 4-tuple's TIME_WAIT row.
func TestFindSocket(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A71C 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 111 1 0 20 4 30 10 -1
   1: 0100007F:A71C 0100007F:2328 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0 0 0
   2: 0100007F:A71C 0100007F:2328 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
`
	local, err := procAddr(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0xA71C})
	if err != nil || local != "0100007F:A71C" {
		t.Fatalf("procAddr = %q, %v", local, err)
	}
	for _, c := range []struct{ remote, inode, state string }{
		{"0100007F:1F90", "111", "01"},
		{"0100007F:2328", "222", "01"}, // the live row after the TIME_WAIT one
		{"0100007F:0050", "", ""},
	} {
		inode, state := findSocket(strings.NewReader(table), local, c.remote)
		if inode != c.inode || state != c.state {
			t.Errorf("findSocket(%s -> %s) = %q %q, want %q %q", local, c.remote, inode, state, c.inode, c.state)
		}
	}
	if _, err := procAddr(&net.UDPAddr{}); err == nil {
		t.Error("procAddr of a UDP address: no error")
	}
}
