package client

import "sync"

// SessionState is the client's view of its session.
type SessionState int

// Session states.
const (
	// StateConnected: the last keepalive was answered.
	StateConnected SessionState = iota + 1
	// StateDisconnected: keepalives are failing (no server answers); the
	// session may still be alive on the cluster — the client keeps trying
	// until the server says it expired.
	StateDisconnected
	// StateExpired: the server ended the session; its ephemerals are gone.
	StateExpired
	// StateClosed: Close ended the session.
	StateClosed
)

func (s SessionState) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateExpired:
		return "expired"
	case StateClosed:
		return "closed"
	}
	return "none"
}

// stateHub fans session state changes out to subscribers.
type stateHub struct {
	mu    sync.Mutex
	state SessionState
	subs  []chan SessionState
}

// set records a state; subscribers get it if it is a change. A
// subscriber that does not keep up loses intermediate states, never the
// latest: its channel holds the newest pending state.
func (h *stateHub) set(s SessionState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s == h.state {
		return
	}
	h.state = s
	for _, ch := range h.subs {
		select {
		case <-ch: // drop the stale pending state
		default:
		}
		ch <- s
	}
}

// SessionStates returns a channel of session state changes (connected,
// disconnected, expired, closed), starting with the current state if a
// session is open. Each call makes a new subscription.
func (c *Client) SessionStates() <-chan SessionState {
	h := &c.states
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := make(chan SessionState, 1)
	if h.state != 0 {
		ch <- h.state
	}
	h.subs = append(h.subs, ch)
	return ch
}

// SessionState is the current state (0 before a session is opened).
func (c *Client) SessionState() SessionState {
	c.states.mu.Lock()
	defer c.states.mu.Unlock()
	return c.states.state
}
