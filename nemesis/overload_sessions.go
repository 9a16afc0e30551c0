package nemesis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"coord/client"
)

// The overload proof's live sessions run in a process of their own (the
// session holder) when OverloadConfig.SessionHolder is set: in the load
// generator's process, their keepalives compete with thousands of request
// goroutines for a CPU the generator saturates, and a session whose own
// client is starved is not a "live client" the criterion is about.
//
// The protocol on the holder's stdin/stdout: it opens its sessions and
// prints "ready"; when its stdin reaches EOF it prints one line per
// session that ended ("ended <i> <error>"), then "expired <n>", closes its
// sessions and exits.

// RunSessionHolder is the holder's body (coordnemesis --session-holder).
func RunSessionHolder(ctx context.Context, endpoints []string, n int, timeout time.Duration, in io.Reader, out io.Writer) error {
	var sessions []*client.Client
	defer func() {
		for _, s := range sessions {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Close(cctx)
			cancel()
		}
	}()
	for i := 0; i < n; i++ {
		eps := make([]string, len(endpoints))
		for k := range endpoints {
			eps[k] = endpoints[(i+k)%len(endpoints)]
		}
		s, err := client.New(ctx, client.Config{Endpoints: eps, SessionTimeout: timeout})
		if err != nil {
			return err
		}
		sessions = append(sessions, s)
		// Retried for a while: on a loaded host a fresh cluster's first
		// opens through a follower failed ("peer: context deadline
		// exceeded while waiting for connections to become ready").
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, err := s.Session(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("open session %d: %w", i, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	fmt.Fprintln(out, "ready")
	_, _ = io.Copy(io.Discard, in) // until the harness closes stdin
	expired := 0
	for i, s := range sessions {
		select {
		case <-s.SessionDone():
			expired++
			fmt.Fprintf(out, "ended %d %v\n", i, s.SessionErr())
		default:
		}
	}
	fmt.Fprintf(out, "expired %d\n", expired)
	return nil
}

// sessionHolder is the harness's side of a holder process.
type sessionHolder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines *bufio.Scanner
}

// startSessionHolder runs argv with the holder's flags and waits for it to
// have opened its sessions.
func startSessionHolder(ctx context.Context, argv []string, endpoints []string, n int, timeout time.Duration) (*sessionHolder, error) {
	args := append(append([]string(nil), argv[1:]...), "--holder-endpoints", strings.Join(endpoints, ","),
		"--holder-sessions", strconv.Itoa(n), "--holder-timeout", timeout.String())
	cmd := exec.CommandContext(ctx, argv[0], args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("session holder: %w", err)
	}
	h := &sessionHolder{cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	ready := make(chan bool, 1)
	go func() { ready <- h.lines.Scan() && h.lines.Text() == "ready" }()
	select {
	case ok := <-ready:
		if ok {
			return h, nil
		}
	case <-time.After(60 * time.Second):
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("session holder did not get ready: %s", strings.TrimSpace(stderr.String()))
}

// finish asks the holder for its verdict: how many sessions ended, with
// a line per ended session.
func (h *sessionHolder) finish() (expired int, ended []string, err error) {
	h.stdin.Close()
	defer func() {
		if werr := h.cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("session holder: %w", werr)
		}
	}()
	for h.lines.Scan() {
		line := h.lines.Text()
		if rest, ok := strings.CutPrefix(line, "ended "); ok {
			ended = append(ended, rest)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "expired "); ok {
			n, perr := strconv.Atoi(rest)
			if perr != nil {
				return 0, ended, fmt.Errorf("session holder: %q: %w", line, perr)
			}
			return n, ended, nil
		}
	}
	return 0, ended, errors.New("session holder: no verdict")
}

// kill stops a holder that is not asked for a verdict.
func (h *sessionHolder) kill() {
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}
