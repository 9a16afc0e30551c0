package session

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestLimits_Negotiate(t *testing.T) {
	l := DefaultLimits()
	for _, tc := range []struct {
		in, want time.Duration
	}{
		{0, 10 * time.Second},
		{-1, 10 * time.Second},
		{time.Second, 2 * time.Second},
		{5 * time.Second, 5 * time.Second},
		{time.Hour, 60 * time.Second},
	} {
		if got := l.Negotiate(tc.in); got != tc.want {
			t.Errorf("Negotiate(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLimits_Validate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatalf("default limits invalid: %v", err)
	}
	bad := Limits{Min: 0, Max: -1, Default: 5}
	err := bad.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"must be positive", "must be >= min", "must lie in"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestTable_Expiry(t *testing.T) {
	tb := NewTable()
	tb.Add(Info{ID: 1, Timeout: 2 * time.Second}, t0)
	tb.Add(Info{ID: 2, Timeout: 5 * time.Second}, t0)
	for _, tc := range []struct {
		name string
		at   time.Duration
		want []uint64
	}{
		{"none yet", 1999 * time.Millisecond, nil},
		{"first at its deadline", 2 * time.Second, []uint64{1}},
		{"both", 5 * time.Second, []uint64{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tb.Expired(t0.Add(tc.at)); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Expired(+%v) = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

func TestTable_Touch(t *testing.T) {
	tb := NewTable()
	tb.Add(Info{ID: 1, Timeout: 2 * time.Second}, t0)
	if _, err := tb.Touch(1, t0.Add(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := tb.Expired(t0.Add(3 * time.Second)); len(got) != 0 {
		t.Fatalf("touched session expired early: %v", got)
	}
	if got := tb.Expired(t0.Add(3500 * time.Millisecond)); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("Expired = %v, want [1]", got)
	}
	// A touch with an older clock reading never moves the deadline back.
	d1, _ := tb.Deadline(1)
	tb.Touch(1, t0)
	if d2, _ := tb.Deadline(1); !d2.Equal(d1) {
		t.Fatalf("deadline moved back from %v to %v", d1, d2)
	}
	if _, err := tb.Touch(9, t0); !errors.Is(err, ErrUnknown) {
		t.Fatalf("Touch(unknown) = %v, want ErrUnknown", err)
	}
}

func TestTable_ResetGivesGrace(t *testing.T) {
	tb := NewTable()
	tb.Add(Info{ID: 1, Timeout: 2 * time.Second}, t0)
	// A new leader at t0+10s: the session would be long expired by the old
	// record, but it gets a grace period of its own timeout.
	now := t0.Add(10 * time.Second)
	tb.Reset([]Info{{ID: 1, Timeout: 2 * time.Second}, {ID: 3, Timeout: 4 * time.Second}}, now)
	if got := tb.Expired(now.Add(1999 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("expired inside grace: %v", got)
	}
	if got := tb.Expired(now.Add(2 * time.Second)); !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("grace not bounded by timeout: %v", got)
	}
}

func TestTable_Sync(t *testing.T) {
	tb := NewTable()
	tb.Add(Info{ID: 1, Timeout: 2 * time.Second}, t0)
	tb.Add(Info{ID: 2, Timeout: 2 * time.Second}, t0)
	later := t0.Add(time.Second)
	tb.Sync([]Info{{ID: 2, Timeout: 2 * time.Second}, {ID: 3, Timeout: 2 * time.Second}}, later)
	if tb.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tb.Len())
	}
	if _, ok := tb.Deadline(1); ok {
		t.Fatal("closed session 1 still held")
	}
	if d, _ := tb.Deadline(2); !d.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("existing deadline changed: %v", d)
	}
	if d, _ := tb.Deadline(3); !d.Equal(later.Add(2 * time.Second)) {
		t.Fatalf("new session deadline %v", d)
	}
}
