package core

import (
	"testing"
	"time"
)

func testTiming() Timing {
	return Timing{LeaseDuration: 300 * time.Millisecond, MaxClockError: 5 * time.Millisecond,
		RoundTimeout: 30 * time.Millisecond, RenewAfter: 150 * time.Millisecond,
		MaxMessageAge: 60 * time.Millisecond, BackoffBase: 2 * time.Millisecond, MaxAttempts: 3, MaxDriftPPM: 200}
}

func at(wall int64, mono time.Duration) Instant {
	return Instant{Wall: 1_700_000_000e9 + wall, Mono: mono, ClockOK: true}
}

func TestTiming_RestartWait(t *testing.T) {
	tm := testTiming()
	w := tm.RestartWait()
	min := tm.LeaseDuration + tm.MaxMessageAge + 4*tm.MaxClockError
	if w <= min {
		t.Fatalf("RestartWait %v must exceed LeaseDuration+MaxMessageAge+4ε = %v (drift margin)", w, min)
	}
	if w > min+min/100 {
		t.Fatalf("RestartWait %v has more than 1%% drift margin over %v", w, min)
	}
}

func TestAcceptor_Handle(t *testing.T) {
	tm := testTiming()
	w := tm.RestartWait()
	start := at(0, time.Second)
	prep := func(from int, sent int64) Message {
		return Message{Kind: MsgPrepare, From: from, To: 0, Resource: "r", Ballot: b(5, uint32(from)), Sent: 1_700_000_000e9 + sent}
	}
	for _, tc := range []struct {
		name  string
		knobs Knobs
		now   Instant
		msg   Message
		want  Refusal
	}{
		{"inside restart wait", Knobs{}, at(int64(w)-1, time.Second+w-1), prep(1, int64(w)-1), Recovering},
		{"own proposer inside restart wait", Knobs{}, at(int64(w)-1, time.Second+w-1), prep(0, int64(w)-1), Recovering},
		{"own proposer bypass knob", Knobs{SelfVotesWhileRecovering: true}, at(int64(w)-1, time.Second+w-1), prep(0, int64(w)-1), Answered},
		{"after restart wait", Knobs{}, at(int64(w), time.Second+w), prep(1, int64(w)), Answered},
		{"no restart wait knob", Knobs{NoRestartWait: true}, at(0, time.Second), prep(1, 0), Answered},
		{"stale request", Knobs{}, at(int64(w), time.Second+w), prep(1, int64(w-tm.MaxMessageAge)-1), Stale},
		{"unsafe clock", Knobs{}, Instant{Wall: 1_700_000_000e9 + int64(w), Mono: time.Second + w}, prep(1, int64(w)), ClockBad},
		{"reply is not a request", Knobs{}, at(int64(w), time.Second+w), Message{Kind: MsgPrepareReply}, NotRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAcceptor(0, tm, tc.knobs, start)
			reply, why := a.Handle(tc.now, tc.msg)
			if why != tc.want {
				t.Fatalf("refusal = %v, want %v", why, tc.want)
			}
			if why != Answered {
				if a.Len() != 0 {
					t.Errorf("refused request created state")
				}
				return
			}
			if reply.Kind != MsgPrepareReply || !reply.OK || reply.To != tc.msg.From || reply.Ballot != tc.msg.Ballot {
				t.Errorf("reply = %+v", reply)
			}
			if a.Cell("r").Promised != tc.msg.Ballot {
				t.Errorf("promise not recorded")
			}
		})
	}
}

func TestAcceptor_GC(t *testing.T) {
	tm := testTiming()
	w := tm.RestartWait()
	a := NewAcceptor(0, tm, Knobs{NoRestartWait: true}, at(0, 0))
	v := Value{Owner: "x", Expiry: 1_700_000_000e9 + int64(tm.LeaseDuration), Epoch: 1}
	if _, why := a.Handle(at(0, 0), Message{Kind: MsgAccept, From: 1, Resource: "r", Ballot: b(1, 1), Sent: 1_700_000_000e9, Value: v}); why != Answered {
		t.Fatal(why)
	}
	if n := a.GC(at(int64(w)/2, w/2)); n != 0 {
		t.Fatalf("GC dropped a recently touched cell")
	}
	if n := a.GC(at(int64(w)+1, w+1)); n != 1 || a.Len() != 0 {
		t.Fatalf("GC dropped %d cells, %d left; want the idle expired cell dropped", n, a.Len())
	}
}
