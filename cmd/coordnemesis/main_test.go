package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--schedules", "0"}, "--schedules must be >= 1"},
		{[]string{"--length", "10ms"}, "--length >= 1s"},
		{[]string{"--coordd", "/nonexistent/coordd"}, "run make build"},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, errb.String(), tc.want)
		}
	}
}
