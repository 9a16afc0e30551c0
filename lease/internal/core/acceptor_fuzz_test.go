package core

import (
	"testing"
	"time"
)

// FuzzAcceptor drives an acceptor with arbitrary Prepare/Accept messages
// (7 bytes each: kind, resource, ballot round/proposer/inc, value owner,
// age) and checks the Paxos acceptor invariants per resource: a promise
// never goes backwards, and nothing below a promise is accepted.
func FuzzAcceptor(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0})
	f.Add([]byte{0, 0, 5, 1, 0, 1, 0, 1, 0, 3, 1, 0, 2, 0, 1, 0, 5, 1, 0, 1, 0})
	f.Add([]byte{1, 1, 0, 0, 0, 0, 200})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewAcceptor(0, testTiming(), Knobs{NoRestartWait: true}, at(0, 0))
		promised := map[string]Ballot{}
		for i := 0; i+7 <= len(data); i += 7 {
			d := data[i : i+7]
			m := Message{
				Kind:     MsgPrepare,
				From:     int(d[3] % 3),
				Resource: string(rune('a' + d[1]%2)),
				Ballot:   Ballot{Round: uint64(d[2] % 8), Proposer: uint32(d[3] % 3), Inc: uint32(d[4] % 2)},
				Value:    Value{Owner: NodeID(rune('p' + d[5]%3)), Epoch: uint64(d[5])},
				Sent:     at(0, 0).Wall - int64(time.Duration(d[6])*time.Millisecond),
			}
			if d[0]%2 == 1 {
				m.Kind = MsgAccept
			}
			r, why := a.Handle(at(0, time.Duration(i)), m)
			if why != Answered {
				if d[6] <= 60 {
					t.Fatalf("message %d refused (%v) though fresh", i/7, why)
				}
				continue
			}
			p := promised[m.Resource]
			if r.OK && m.Ballot.Less(p) {
				t.Fatalf("message %d: %v at ballot %v acked below the promise %v", i/7, m.Kind, m.Ballot, p)
			}
			if r.OK && p.Less(m.Ballot) {
				promised[m.Resource] = m.Ballot
			}
			if !r.OK && !m.Ballot.Less(p) && m.Kind == MsgAccept {
				t.Fatalf("message %d: accept at %v refused with promise %v", i/7, m.Ballot, p)
			}
		}
	})
}
