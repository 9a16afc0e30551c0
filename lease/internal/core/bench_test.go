package core

import (
	"testing"
	"time"
)

func BenchmarkRegister_Prepare(b *testing.B) {
	var r Register
	for i := 0; i < b.N; i++ {
		r.Prepare(Ballot{Round: uint64(i + 1), Inc: 1})
	}
}

func BenchmarkAcceptor_Handle(b *testing.B) {
	a := NewAcceptor(0, testTiming(), Knobs{NoRestartWait: true}, at(0, 0))
	now := at(0, 0)
	m := Message{Kind: MsgAccept, From: 1, Resource: "r", Sent: now.Wall, Value: Value{Owner: "x", Epoch: 1}}
	for i := 0; i < b.N; i++ {
		m.Ballot = Ballot{Round: uint64(i + 1), Inc: 1}
		a.Handle(now, m)
	}
}

// BenchmarkMember_Round is one full renewal round (prepare + accept on 3
// members, in memory): the protocol's CPU cost without the network.
func BenchmarkMember_Round(b *testing.B) {
	g := newGroup(nil, 3, Knobs{})
	g.apply(0, g.mems[0].Acquire(g.at(0), "r", false))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%1000 == 0 {
			g.now += time.Millisecond
		}
		g.apply(0, g.mems[0].Renew(g.at(0), "r"))
	}
	if _, ok := g.last(0, EvRenewed); !ok {
		b.Fatal("no renewal")
	}
}
