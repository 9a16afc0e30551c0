// Command coordctl is coord's command-line client: read and change the
// tree, run transactions, manage members, save snapshots.
package main

import (
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one coordctl invocation and returns the exit code: 0 on
// success, 1 on a failed command, 2 on a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	return app.execute(args)
}
