package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// job is the per-run directory the guest reads its instructions from: it
// lies in the host temp dir, which the guest sees at the same path.
type job struct {
	dir    string   // holds job.sh and shares
	shares []string // writable host dirs, parents first; the guest mounts share i (tag rwI) at shares[i]
}

func prepareJob(cfg Config, argv []string) (*job, error) {
	dir := cfg.Dir
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	prog := argv[0]
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			prog = filepath.Join(dir, prog)
		}
		if _, err := os.Stat(prog); err != nil {
			return nil, fmt.Errorf("program to run: %w", err)
		}
	}

	tmp, err := filepath.EvalSymlinks(os.TempDir())
	if err != nil {
		return nil, fmt.Errorf("host temp dir: %w", err)
	}
	jobDir, err := os.MkdirTemp(tmp, "slabbench-vm-")
	if err != nil {
		return nil, err
	}
	j := &job{dir: jobDir}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(jobDir)
		}
	}()
	if strings.ContainsAny(jobDir, " \t\n") {
		return nil, fmt.Errorf("temp dir %q contains white space, which the kernel command line cannot carry; set TMPDIR", jobDir)
	}

	outDir := cfg.OutDir
	if outDir == "" {
		outDir = filepath.Join(jobDir, "out")
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	if err := j.writeShares(tmp, append([]string{outDir}, cfg.Writable...)); err != nil {
		return nil, err
	}
	absOut, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	env := append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
	}, cfg.Env...)
	env = append(env, "SLABBENCH_VM=1", "SLABBENCH_OUT="+absOut)
	if err := j.writeScript(dir, env, prog, argv[1:]); err != nil {
		return nil, err
	}
	ok = true
	return j, nil
}

// writeShares writes the job's list of host directories the guest mounts
// writable: the host temp dir and dirs, by their real paths (a share
// mounted on a symlink in the guest would follow it outside the host
// root), a dir inside another share not again.
func (j *job) writeShares(tmp string, dirs []string) error {
	writable := []string{tmp}
	for _, d := range dirs {
		real, err := filepath.EvalSymlinks(d)
		if err != nil {
			return fmt.Errorf("writable dir: %w", err)
		}
		if real, err = filepath.Abs(real); err != nil {
			return err
		}
		if real == "/" {
			return errors.New("the host root cannot be shared writable")
		}
		writable = append(writable, real)
	}
	sort.Strings(writable)
	var shares strings.Builder
	for _, d := range writable {
		if n := len(j.shares); n > 0 && (d == j.shares[n-1] || strings.HasPrefix(d, j.shares[n-1]+"/")) {
			continue // inside a share already
		}
		fmt.Fprintf(&shares, "rw%d %s\n", len(j.shares), d)
		j.shares = append(j.shares, d)
	}
	return os.WriteFile(filepath.Join(j.dir, "shares"), []byte(shares.String()), 0o644)
}

// writeScript writes the shell script the guest runs: prog with args in
// dir, with exactly env.
func (j *job) writeScript(dir string, env []string, prog string, args []string) error {
	var script strings.Builder
	script.WriteString("# written by slabbench's vm package; run by /bin/sh in the guest\n")
	fmt.Fprintf(&script, "cd %s || exit 125\nexec /usr/bin/env -i", shellQuote(dir))
	for _, kv := range dedupeEnv(env) {
		script.WriteString(" " + shellQuote(kv))
	}
	script.WriteString(" " + shellQuote(prog))
	for _, arg := range args {
		script.WriteString(" " + shellQuote(arg))
	}
	script.WriteString("\n")
	return os.WriteFile(filepath.Join(j.dir, "job.sh"), []byte(script.String()), 0o644)
}

// dedupeEnv keeps the last value of each variable, in first-seen order.
func dedupeEnv(env []string) []string {
	index := map[string]int{}
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if i, seen := index[name]; seen {
			out[i] = kv
			continue
		}
		index[name] = len(out)
		out = append(out, kv)
	}
	return out
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
