package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"coord/client"
)

func (a *app) txnCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "txn",
		Short: "apply ops read from stdin (one per line) atomically",
		Long: `txn reads one op per line from stdin and applies them all or none:

  create [-e] [-s] [--container] [--ttl D] PATH [DATA]
  set [--version N] PATH DATA
  delete [--version N] PATH
  check PATH [VERSION]

Blank lines and lines starting with # are ignored. Words are split like a
shell's: 'single quotes' keep everything, "double quotes" allow the escapes
\" \\ \$ and \(backquote), a backslash outside quotes escapes the next
character; nothing is expanded. Flags come before PATH. It prints one line
per op (created PATH, set PATH version=N, deleted PATH, checked PATH
version=N); when an op fails nothing is applied and the error names the op
(counted from 0), its line and why.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			lines, err := readTxn(a.stdin)
			if err != nil {
				return err
			}
			return a.withClient(func(ctx context.Context, cl *client.Client) error {
				ops := make([]client.Op, len(lines))
				for i, l := range lines {
					ops[i] = l.op
				}
				res, err := cl.Multi(ctx, ops...)
				if err != nil {
					return fail("txn", txnError(lines, err))
				}
				for i, r := range res {
					writeTxnResult(a.stdout, lines[i], r)
				}
				return nil
			})
		},
	}
}

// readTxn parses every line of r; a bad line is a usage error naming it.
func readTxn(r io.Reader) ([]txnLine, error) {
	var lines []txnLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		l, ok, err := parseTxnLine(sc.Text())
		if err != nil {
			return nil, usageError{fmt.Errorf("txn: line %d: %v", n, err)}
		}
		if ok {
			l.line = n
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fail("txn: read stdin", err)
	}
	if len(lines) == 0 {
		return nil, usageError{errors.New("txn: no ops on stdin")}
	}
	return lines, nil
}

// txnError names the failed op: its index, line, verb and path.
func txnError(lines []txnLine, err error) error {
	var me *client.MultiError
	if !errors.As(err, &me) || me.Index < 0 || me.Index >= len(lines) {
		return err
	}
	l := lines[me.Index]
	msg := me.Err.Error()
	if strings.HasPrefix(msg, "op ") { // the server named the op already
		return fmt.Errorf("line %d: %s", l.line, msg)
	}
	return fmt.Errorf("op %d (line %d: %s %s): %s", me.Index, l.line, l.verb, l.path, msg)
}

func writeTxnResult(w io.Writer, l txnLine, r client.OpResult) {
	version := int64(-1)
	if r.Stat != nil {
		version = r.Stat.Version
	}
	switch l.verb {
	case "create":
		fmt.Fprintf(w, "created %s\n", r.Path)
	case "set":
		fmt.Fprintf(w, "set %s version=%d\n", l.path, version)
	case "delete":
		fmt.Fprintf(w, "deleted %s\n", l.path)
	case "check":
		fmt.Fprintf(w, "checked %s version=%d\n", l.path, version)
	}
}
