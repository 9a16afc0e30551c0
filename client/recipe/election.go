package recipe

import (
	"context"
	"errors"
	"path"
	"time"

	"coord/client"
)

// ErrNoLeader: nobody is campaigning.
var ErrNoLeader = errors.New("no leader")

// Election is one candidate for leadership at a path.
type Election struct{ lock *Lock }

// NewElection returns a candidate for the election at dir.
func NewElection(c *client.Client, dir string) *Election {
	return &Election{lock: NewLock(c, dir)}
}

// Campaign blocks until this candidate leads (or ctx ends) and returns the
// term's fencing token. proposal is what observers see as the leader.
func (e *Election) Campaign(ctx context.Context, proposal []byte) (uint64, error) {
	e.lock.data = proposal
	return e.lock.Lock(ctx)
}

// Resign gives up leadership (or the candidacy).
func (e *Election) Resign(ctx context.Context) error { return e.lock.Unlock(ctx) }

// Lost is closed if leadership is lost without Resign.
func (e *Election) Lost() <-chan struct{} { return e.lock.Lost() }

// Token is the current term's fencing token (0 when not leading).
func (e *Election) Token() uint64 { return e.lock.Token() }

// LeaderInfo is one leadership term.
type LeaderInfo struct {
	Proposal []byte
	// Token is the term's fencing token (the leader node's czxid).
	Token uint64
}

// Leader returns the current leader, or ErrNoLeader.
func Leader(ctx context.Context, c *client.Client, dir string) (LeaderInfo, error) {
	for {
		q, err := queue(ctx, c, dir, nil)
		if errors.Is(err, client.ErrNoNode) || (err == nil && len(q) == 0) {
			return LeaderInfo{}, ErrNoLeader
		}
		if err != nil {
			return LeaderInfo{}, err
		}
		data, st, err := c.Get(ctx, path.Join(dir, q[0]), nil)
		if errors.Is(err, client.ErrNoNode) {
			continue // the leader left between the two reads
		}
		if err != nil {
			return LeaderInfo{}, err
		}
		return LeaderInfo{Proposal: data, Token: st.Czxid}, nil
	}
}

// Observe sends each new leader (and a zero LeaderInfo when there is
// none) until ctx ends; the channel then closes.
func Observe(ctx context.Context, c *client.Client, dir string) <-chan LeaderInfo {
	out := make(chan LeaderInfo, 1)
	go func() {
		defer close(out)
		var last LeaderInfo
		sent := false
		for ctx.Err() == nil {
			// Watch the directory's children; re-read the leader on change.
			_, _, w, err := c.ChildrenW(ctx, dir)
			if errors.Is(err, client.ErrNoNode) {
				st, ew, eerr := c.ExistsW(ctx, dir)
				if eerr == nil && st != nil {
					ew.Cancel() // created meanwhile: list it again
					continue
				}
				if eerr == nil {
					cur := LeaderInfo{}
					if !sent || last.Token != 0 {
						select {
						case out <- cur:
						case <-ctx.Done():
							ew.Cancel()
							return
						}
						last, sent = cur, true
					}
					select {
					case <-ew.Done():
					case <-ctx.Done():
						ew.Cancel()
						return
					}
				}
				continue
			}
			if err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			cur, lerr := Leader(ctx, c, dir)
			if lerr != nil && !errors.Is(lerr, ErrNoLeader) {
				w.Cancel()
				continue
			}
			if !sent || cur.Token != last.Token {
				select {
				case out <- cur:
				case <-ctx.Done():
					w.Cancel()
					return
				}
				last, sent = cur, true
			}
			select {
			case <-w.Done():
			case <-ctx.Done():
				w.Cancel()
				return
			}
		}
	}()
	return out
}
