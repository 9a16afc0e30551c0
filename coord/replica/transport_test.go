package replica

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// holdStable is an in-memory StableStore that can park a SetUint64 of
// CurrentTerm (so a heartbeat stays inside raft) and records every write
// that arrives after the storage was closed (a real store fails it and
// raft's setCurrentTerm panics; here it is recorded, so the test reports
// instead of crashing).
type holdStable struct {
	*raft.InmemStore
	mu      sync.Mutex
	hold    chan struct{} // non-nil: SetUint64(CurrentTerm) waits for it to close
	entered chan struct{} // told when a write parks
	closed  chan struct{} // closed with the storage
	late    []string
}

func (h *holdStable) SetUint64(k []byte, v uint64) error {
	h.mu.Lock()
	hold := h.hold
	h.mu.Unlock()
	if hold != nil && string(k) == "CurrentTerm" {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		<-hold
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closed:
		h.late = append(h.late, fmt.Sprintf("SetUint64(%s, %d)", k, v))
		return nil
	default:
	}
	return h.InmemStore.SetUint64(k, v)
}

// TestClose_WaitsForHeartbeatInRaft reproduces the hashicorp/raft
// shutdown race deterministically: a heartbeat with a newer term is parked
// inside raft's fast path (processHeartbeat → appendEntries →
// setCurrentTerm → SetUint64) on the transport's goroutine; Close must not
// close the stores until it has left, else the term write lands in a
// closed store (raft panics there). Without the heartbeat gate
// (transport.go) the storage closes while the write is parked and the
// write arrives afterwards.
func TestClose_WaitsForHeartbeatInRaft(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := NewMux(ln)
	go mux.Serve()
	defer mux.Close()
	addr := ln.Addr().String()

	stable := &holdStable{InmemStore: raft.NewInmemStore(), entered: make(chan struct{}, 1), closed: make(chan struct{})}
	var closeOnce sync.Once
	storage := &Storage{Log: raft.NewInmemStore(), Stable: stable, Snaps: raft.NewInmemSnapshotStore(),
		close: func() error {
			closeOnce.Do(func() { stable.mu.Lock(); close(stable.closed); stable.mu.Unlock() })
			return nil
		}}
	r, err := New(Config{Name: "n1", Address: addr, Join: true, Storage: storage}, mux)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	defer func() {
		select {
		case <-closed:
		default:
			r.Close()
		}
	}()

	// A "leader" sends one heartbeat (the fast path's shape: no entries,
	// no previous entry, no commit index) with a newer term.
	client := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: streamLayer{chanListener: newChanListener(ln.Addr())}, MaxPool: 1, Timeout: 10 * time.Second})
	defer client.Close()
	hold := make(chan struct{})
	stable.mu.Lock()
	stable.hold = hold
	stable.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	defer release()
	hb := make(chan error, 1)
	go func() {
		var resp raft.AppendEntriesResponse
		hb <- client.AppendEntries("n1", raft.ServerAddress(addr),
			&raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("leader"), Addr: []byte("127.0.0.1:1")}, Term: 5}, &resp)
	}()
	select {
	case <-stable.entered:
	case err := <-hb:
		t.Fatalf("heartbeat returned (%v) without persisting a term", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the heartbeat never reached the stable store")
	}

	go func() { closed <- r.Close() }()
	select {
	case <-stable.closed:
		t.Error("the stores closed while a heartbeat was still inside raft")
	case <-time.After(time.Second):
	}
	release()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after the heartbeat left raft")
	}
	<-hb
	stable.mu.Lock()
	defer stable.mu.Unlock()
	if len(stable.late) > 0 {
		t.Errorf("writes after the stores closed (raft would panic): %v", stable.late)
	}
	if v, err := stable.InmemStore.GetUint64([]byte("CurrentTerm")); err != nil || v != 5 {
		t.Errorf("term = %d, %v; want the heartbeat's 5 persisted before the close", v, err)
	}
}
