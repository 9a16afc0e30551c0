package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"coord/client"
)

// Output formats. Text is for people (and shell pipelines); json is one
// indented document per command, with stable lowerCamel keys.

// writeStat prints a stat as ZooKeeper's `stat` does: key = value lines.
func writeStat(w io.Writer, st *client.Stat) {
	for _, kv := range []struct {
		k string
		v any
	}{
		{"cZxid", fmt.Sprintf("%#x", st.Czxid)},
		{"ctime", formatTime(st.CTime)},
		{"mZxid", fmt.Sprintf("%#x", st.Mzxid)},
		{"mtime", formatTime(st.MTime)},
		{"pZxid", fmt.Sprintf("%#x", st.Pzxid)},
		{"cversion", st.Cversion},
		{"dataVersion", st.Version},
		{"ephemeralOwner", fmt.Sprintf("%#x", st.EphemeralOwner)},
		{"dataLength", st.DataLength},
		{"numChildren", st.NumChildren},
		{"mode", st.Mode},
		{"ttl", st.TTL},
		{"directory", st.Directory},
	} {
		fmt.Fprintf(w, "%s = %v\n", kv.k, kv.v)
	}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// statJSON is a stat's json form.
type statJSON struct {
	Czxid          uint64 `json:"czxid"`
	Mzxid          uint64 `json:"mzxid"`
	Pzxid          uint64 `json:"pzxid"`
	Ctime          string `json:"ctime"`
	Mtime          string `json:"mtime"`
	Version        int64  `json:"version"`
	Cversion       int64  `json:"cversion"`
	EphemeralOwner uint64 `json:"ephemeralOwner"`
	DataLength     int64  `json:"dataLength"`
	NumChildren    int64  `json:"numChildren"`
	Mode           string `json:"mode"`
	TTLMs          int64  `json:"ttlMs"`
	Directory      bool   `json:"directory"`
}

func toStatJSON(st *client.Stat) *statJSON {
	if st == nil {
		return nil
	}
	return &statJSON{
		Czxid: st.Czxid, Mzxid: st.Mzxid, Pzxid: st.Pzxid,
		Ctime: formatTime(st.CTime), Mtime: formatTime(st.MTime),
		Version: st.Version, Cversion: st.Cversion, EphemeralOwner: st.EphemeralOwner,
		DataLength: st.DataLength, NumChildren: st.NumChildren, Mode: string(st.Mode), TTLMs: st.TTL.Milliseconds(),
		Directory: st.Directory,
	}
}

// getOutput is `get -o json`: data as a string when it is valid UTF-8,
// else base64 in dataBase64.
type getOutput struct {
	Path       string    `json:"path"`
	Data       *string   `json:"data,omitempty"`
	DataBase64 []byte    `json:"dataBase64,omitempty"`
	Stat       *statJSON `json:"stat"`
}

func getJSON(path string, data []byte, st *client.Stat) getOutput {
	out := getOutput{Path: path, Stat: toStatJSON(st)}
	if utf8.Valid(data) {
		s := string(data)
		out.Data = &s
	} else {
		out.DataBase64 = data
	}
	return out
}

type memberJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
	Leader  bool   `json:"leader"`
}

func toMembersJSON(ms []client.Member) []memberJSON {
	out := make([]memberJSON, 0, len(ms))
	for _, m := range ms {
		out = append(out, memberJSON{Name: m.Name, Address: m.Address, Voter: m.Voter, Leader: m.Leader})
	}
	return out
}

// writeMembers prints one member per line: name, address, role.
func writeMembers(w io.Writer, ms []client.Member) {
	for _, m := range ms {
		role := "voter"
		if !m.Voter {
			role = "non-voter"
		}
		if m.Leader {
			role += ",leader"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", m.Name, m.Address, role)
	}
}

type statusJSON struct {
	Name         string       `json:"name"`
	State        string       `json:"state"`
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	CommitIndex  uint64       `json:"commitIndex"`
	AppliedIndex uint64       `json:"appliedIndex"`
	LastLogIndex uint64       `json:"lastLogIndex"`
	Znodes       int64        `json:"znodes"`
	Members      []memberJSON `json:"members"`
}

func toStatusJSON(st *client.Status) statusJSON {
	return statusJSON{Name: st.Name, State: st.State, Leader: st.Leader, Term: st.Term, CommitIndex: st.CommitIndex,
		AppliedIndex: st.AppliedIndex, LastLogIndex: st.LastLogIndex, Znodes: st.Znodes, Members: toMembersJSON(st.Members)}
}

// writeStatus prints the server's view as "key: value" lines, then the
// members indented.
func writeStatus(w io.Writer, st *client.Status) {
	leader := st.Leader
	if leader == "" {
		leader = "(none)"
	}
	fmt.Fprintf(w, "name: %s\nstate: %s\nleader: %s\nterm: %d\ncommit index: %d\napplied index: %d\nlast log index: %d\nznodes: %d\nmembers:\n",
		st.Name, st.State, leader, st.Term, st.CommitIndex, st.AppliedIndex, st.LastLogIndex, st.Znodes)
	for _, m := range st.Members {
		fmt.Fprintf(w, "  ")
		writeMembers(w, []client.Member{m})
	}
}

// writeJSON writes v as one indented json document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) json(v any) error { return writeJSON(a.stdout, v) }
