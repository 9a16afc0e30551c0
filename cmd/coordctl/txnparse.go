package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"coord/client"
)

// The txn grammar, one op per line (blank lines and # comments ignored),
// words split like a shell (single quotes, double quotes with \ escapes):
//
//	create [-e] [-s] [--container] [--ttl D] PATH [DATA]
//	set [--version N] PATH DATA
//	delete [--version N] PATH
//	check PATH [VERSION]

// txnLine is one parsed line.
type txnLine struct {
	op   client.Op
	verb string
	path string
	line int // line number on stdin, set by readTxn
}

// splitWords splits a line like a POSIX shell would (no expansion).
func splitWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case ch == '"':
			i++
			closed := false
			for ; i < len(line); i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					cur.WriteByte(line[i+1])
					i++
					continue
				}
				if line[i] == '"' {
					closed = true
					break
				}
				cur.WriteByte(line[i])
			}
			if !closed {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case ch == '\\':
			if i+1 >= len(line) {
				return nil, errors.New("trailing backslash")
			}
			cur.WriteByte(line[i+1])
			i++
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// parseTxnLine parses one line; ok is false for blank and comment lines.
func parseTxnLine(line string) (txnLine, bool, error) {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return txnLine{}, false, nil
	}
	words, err := splitWords(trimmed)
	if err != nil {
		return txnLine{}, false, err
	}
	verb, rest := words[0], words[1:]
	var opts client.CreateOptions
	version := int64(-1)
	var pos []string
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if !strings.HasPrefix(w, "-") || w == "-" || len(pos) > 0 {
			pos = append(pos, w)
			continue
		}
		next := func() (string, error) {
			if i+1 >= len(rest) {
				return "", fmt.Errorf("%s needs a value", w)
			}
			i++
			return rest[i], nil
		}
		switch {
		case verb == "create" && (w == "-e" || w == "--ephemeral"):
			opts.Ephemeral = true
		case verb == "create" && (w == "-s" || w == "--sequential"):
			opts.Sequential = true
		case verb == "create" && w == "--container":
			opts.Container = true
		case verb == "create" && w == "--ttl":
			v, err := next()
			if err != nil {
				return txnLine{}, false, err
			}
			if opts.TTL, err = time.ParseDuration(v); err != nil || opts.TTL <= 0 {
				return txnLine{}, false, fmt.Errorf("--ttl %q: want a positive duration like 30s", v)
			}
		case (verb == "set" || verb == "delete") && w == "--version":
			v, err := next()
			if err != nil {
				return txnLine{}, false, err
			}
			if version, err = strconv.ParseInt(v, 10, 64); err != nil {
				return txnLine{}, false, fmt.Errorf("--version %q: not a number", v)
			}
		default:
			return txnLine{}, false, fmt.Errorf("%s: unknown flag %s", verb, w)
		}
	}
	need := func(min, max int, usage string) error {
		if len(pos) < min || len(pos) > max {
			return fmt.Errorf("usage: %s", usage)
		}
		return nil
	}
	switch verb {
	case "create":
		if err := need(1, 2, "create [-e] [-s] [--container] [--ttl D] PATH [DATA]"); err != nil {
			return txnLine{}, false, err
		}
		var data []byte
		if len(pos) == 2 {
			data = []byte(pos[1])
		}
		return txnLine{op: client.CreateOp(pos[0], data, &opts), verb: verb, path: pos[0]}, true, nil
	case "set":
		if err := need(2, 2, "set [--version N] PATH DATA"); err != nil {
			return txnLine{}, false, err
		}
		return txnLine{op: client.SetOp(pos[0], []byte(pos[1]), version), verb: verb, path: pos[0]}, true, nil
	case "delete":
		if err := need(1, 1, "delete [--version N] PATH"); err != nil {
			return txnLine{}, false, err
		}
		return txnLine{op: client.DeleteOp(pos[0], version), verb: verb, path: pos[0]}, true, nil
	case "check":
		if err := need(1, 2, "check PATH [VERSION]"); err != nil {
			return txnLine{}, false, err
		}
		if len(pos) == 2 {
			v, err := strconv.ParseInt(pos[1], 10, 64)
			if err != nil {
				return txnLine{}, false, fmt.Errorf("check version %q: not a number", pos[1])
			}
			version = v
		}
		return txnLine{op: client.CheckOp(pos[0], version), verb: verb, path: pos[0]}, true, nil
	}
	return txnLine{}, false, fmt.Errorf("unknown op %q (want create, set, delete or check)", verb)
}
