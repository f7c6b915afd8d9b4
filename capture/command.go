package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/slabbench/slabbench/workloads"
)

// runCommand runs argv with this process's stdin, its stdout and stderr
// on this process's stderr (stdout is the capture's), until it exits or,
// if limit > 0, limit has passed (then it is killed, status -1). start,
// if set, starts it. A program that exits with a status is not an error
// of the capture: its status is returned.
func runCommand(ctx context.Context, argv []string, limit time.Duration, start func(*exec.Cmd) error) (workloads.Result, int, error) {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stderr, os.Stderr
	if start == nil {
		start = (*exec.Cmd).Start
	}
	began := time.Now()
	err := start(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	res := workloads.Result{Elapsed: time.Since(began)}
	var exit *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return res, -1, nil // the window ended at its length
	case ctx.Err() != nil:
		return res, -1, ctx.Err()
	case errors.As(err, &exit):
		return res, exit.ExitCode(), nil
	case err != nil:
		return res, 0, fmt.Errorf("-- %s: %w", strings.Join(argv, " "), err)
	}
	return res, 0, nil
}
