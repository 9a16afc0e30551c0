package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{`create /a hello`, []string{"create", "/a", "hello"}, ""},
		{`set /a 'two words'`, []string{"set", "/a", "two words"}, ""},
		{`set /a "say \"hi\""`, []string{"set", "/a", `say "hi"`}, ""},
		{`set /a a\ b`, []string{"set", "/a", "a b"}, ""},
		{`set /a ''`, []string{"set", "/a", ""}, ""},
		{`set /a 'open`, nil, "unterminated single quote"},
		{`set /a "open`, nil, "unterminated double quote"},
		{`set /a \`, nil, "trailing backslash"},
	} {
		got, err := splitWords(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("splitWords(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseTxnLine(t *testing.T) {
	for _, tc := range []struct {
		in       string
		ok       bool
		verb     string
		path     string
		errPart  string
		wantText string // a fragment of the op's proto text
	}{
		{"", false, "", "", "", ""},
		{"   # comment", false, "", "", "", ""},
		{"create /a x", true, "create", "/a", "", `data:"x"`},
		{"create -e -s /q/j-", true, "create", "/q/j-", "", "sequential:true"},
		{"create --ttl 30s /t", true, "create", "/t", "", "ttl_ms:30000"},
		{"create --container /c", true, "create", "/c", "", "mode:CONTAINER"},
		{"set --version 3 /a 'v 2'", true, "set", "/a", "", "version:3"},
		{"set /a v", true, "set", "/a", "", "version:-1"},
		{"delete --version 1 /a", true, "delete", "/a", "", "version:1"},
		{"check /a 4", true, "check", "/a", "", "version:4"},
		{"check /a", true, "check", "/a", "", "version:-1"},
		{"set /a -x", true, "set", "/a", "", `data:"-x"`}, // flags end at the first positional
		{"frob /a", false, "", "", "unknown op", ""},
		{"create", false, "", "", "usage: create", ""},
		{"set /a", false, "", "", "usage: set", ""},
		{"set --version x /a v", false, "", "", "not a number", ""},
		{"set --version", false, "", "", "needs a value", ""},
		{"create --ttl -1s /t", false, "", "", "positive duration", ""},
		{"delete -r /a", false, "", "", "unknown flag -r", ""},
		{"check /a x", false, "", "", "not a number", ""},
	} {
		l, ok, err := parseTxnLine(tc.in)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.errPart)
			}
			continue
		}
		if err != nil || ok != tc.ok {
			t.Errorf("%q: ok=%v err=%v", tc.in, ok, err)
			continue
		}
		if !ok {
			continue
		}
		if l.verb != tc.verb || l.path != tc.path {
			t.Errorf("%q: verb %q path %q", tc.in, l.verb, l.path)
		}
		if txt := strings.ReplaceAll(l.op.String(), " ", ""); tc.wantText != "" && !strings.Contains(txt, strings.ReplaceAll(tc.wantText, " ", "")) {
			t.Errorf("%q: op %s lacks %s", tc.in, txt, tc.wantText)
		}
	}
}

// shellQuote quotes w so that splitWords gives it back.
func shellQuote(w string) string { return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'" }

func FuzzParseTxnLine(f *testing.F) {
	// More seeds in testdata/fuzz/FuzzParseTxnLine.
	for _, s := range []string{"create /a x", `set --version 2 /a "q \" x"`, "check /a 1", "delete /a", "create -e -s --ttl 1s /x 'y'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, ok, err := parseTxnLine(line)
		if err == nil && ok && (l.verb == "" || l.path == "" && l.verb != "create") {
			t.Fatalf("%q parsed to an empty op", line)
		}
		// Splitting is reversible: quoting the words and splitting again
		// gives the same words.
		words, err := splitWords(line)
		if err != nil {
			return
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = shellQuote(w)
		}
		again, err := splitWords(strings.Join(quoted, " "))
		if err != nil || !reflect.DeepEqual(again, words) && len(words) > 0 {
			t.Fatalf("%q: words %q, after quoting %q (%v)", line, words, again, err)
		}
	})
}
