package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"coord/client"
)

var testStat = &client.Stat{
	Czxid: 0x10, Mzxid: 0x20, Pzxid: 0x30,
	CTime: time.UnixMilli(1700000000000), MTime: time.UnixMilli(1700000001500),
	Version: 3, Cversion: 2, EphemeralOwner: 0xabc, DataLength: 5, NumChildren: 1, Mode: client.ModeEphemeral,
}

func TestWriteStat(t *testing.T) {
	var b bytes.Buffer
	writeStat(&b, testStat)
	want := `cZxid = 0x10
ctime = 2023-11-14T22:13:20Z
mZxid = 0x20
mtime = 2023-11-14T22:13:21.5Z
pZxid = 0x30
cversion = 2
dataVersion = 3
ephemeralOwner = 0xabc
dataLength = 5
numChildren = 1
mode = ephemeral
ttl = 0s
directory = false
`
	if b.String() != want {
		t.Fatalf("writeStat:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestGetJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, getJSON("/a", []byte("héllo"), testStat)); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	st := got["stat"].(map[string]any)
	if got["data"] != "héllo" || got["dataBase64"] != nil || st["version"] != 3.0 || st["mode"] != "ephemeral" || st["ctime"] != "2023-11-14T22:13:20Z" {
		t.Fatalf("get json = %s", b.String())
	}
	b.Reset()
	writeJSON(&b, getJSON("/bin", []byte{0xff, 0}, testStat))
	if !strings.Contains(b.String(), `"dataBase64": "/wA="`) || strings.Contains(b.String(), `"data":`) {
		t.Fatalf("binary get json = %s", b.String())
	}
}

func TestWriteMembersAndStatus(t *testing.T) {
	ms := []client.Member{{Name: "n1", Address: "127.0.0.1:4101", Voter: true, Leader: true}, {Name: "n4", Address: "127.0.0.1:4104"}}
	var b bytes.Buffer
	writeMembers(&b, ms)
	if want := "n1\t127.0.0.1:4101\tvoter,leader\nn4\t127.0.0.1:4104\tnon-voter\n"; b.String() != want {
		t.Fatalf("members = %q, want %q", b.String(), want)
	}
	b.Reset()
	writeStatus(&b, &client.Status{Name: "n4", State: "Follower", Term: 7, CommitIndex: 12, AppliedIndex: 11, LastLogIndex: 12, Znodes: 3, Members: ms})
	want := "name: n4\nstate: Follower\nleader: (none)\nterm: 7\ncommit index: 12\napplied index: 11\nlast log index: 12\nznodes: 3\nmembers:\n" +
		"  n1\t127.0.0.1:4101\tvoter,leader\n  n4\t127.0.0.1:4104\tnon-voter\n"
	if b.String() != want {
		t.Fatalf("status = %q, want %q", b.String(), want)
	}
	b.Reset()
	writeJSON(&b, toStatusJSON(&client.Status{Name: "n1", Members: ms}))
	if !strings.Contains(b.String(), `"commitIndex": 0`) || !strings.Contains(b.String(), `"address": "127.0.0.1:4104"`) {
		t.Fatalf("status json = %s", b.String())
	}
}

func TestTxnOutput(t *testing.T) {
	lines, err := readTxn(strings.NewReader("# setup\ncreate -s /q/j- x\n\nset --version 2 /a 'v 3'\ndelete /old\ncheck /a 3\n"))
	if err != nil || len(lines) != 4 || lines[0].line != 2 || lines[3].line != 6 {
		t.Fatalf("readTxn = %+v, %v", lines, err)
	}
	var b bytes.Buffer
	for i, r := range []client.OpResult{{Path: "/q/j-0000000007"}, {Stat: &client.Stat{Version: 3}}, {Deleted: 1}, {Stat: &client.Stat{Version: 3}}} {
		writeTxnResult(&b, lines[i], r)
	}
	if want := "created /q/j-0000000007\nset /a version=3\ndeleted /old\nchecked /a version=3\n"; b.String() != want {
		t.Fatalf("txn output = %q, want %q", b.String(), want)
	}
	// The failed op is named by index, line, verb and path.
	err = txnError(lines, &client.MultiError{Index: 1, Err: client.ErrBadVersion})
	if err.Error() != "op 1 (line 4: set /a): version mismatch" {
		t.Fatalf("txnError = %q", err)
	}
	if err := txnError(lines, &client.MultiError{Index: 1, Err: errors.New("op 1 (set /a): version mismatch")}); err.Error() != "line 4: op 1 (set /a): version mismatch" {
		t.Fatalf("txnError with the server's op prefix = %q", err)
	}
	if _, err := readTxn(strings.NewReader("create /a\nfrob /b\n")); err == nil || err.Error() != `txn: line 2: unknown op "frob" (want create, set, delete or check)` {
		t.Fatalf("bad line = %v", err)
	}
	if _, err := readTxn(strings.NewReader("# nothing\n\n")); err == nil || !strings.Contains(err.Error(), "no ops") {
		t.Fatalf("empty txn = %v", err)
	}
}
