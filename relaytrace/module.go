package relaytrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// ModuleName is the name the module registers under.
const ModuleName = "slabrelay"

// debugfsDir is where the module publishes its files.
const debugfsDir = "/sys/kernel/debug/" + ModuleName

// buildHint says how to build the module (kmod/slabrelay/Makefile builds
// it for the kernel the VM boots).
const buildHint = "build it from the repository root: make kmod (for the VM's kernel; make kmod KVER=$(uname -r) for the running one)"

// Available reports why the relay path cannot run here, or nil: it needs
// root, a kernel that loads modules and a built slabrelay.ko.
func Available(modulePath string) error {
	if os.Geteuid() != 0 {
		return errors.New("the relay path needs root (loading a kernel module)")
	}
	if _, err := os.Stat("/proc/modules"); err != nil {
		return errors.New("this kernel cannot load modules: run in the VM: slabbench vm -- capture --path relay ...")
	}
	_, err := FindModule(modulePath)
	return err
}

// FindModule returns the path of slabrelay.ko: path itself if not empty,
// else $SLABBENCH_KMOD (the file or its directory), else next to the
// executable, else kmod/slabrelay in the repository holding the working
// directory or the executable.
func FindModule(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("slabrelay module %s: %w: %s", path, err, buildHint)
		}
		return path, nil
	}
	var tried []string
	try := func(p string) bool {
		tried = append(tried, p)
		st, err := os.Stat(p)
		return err == nil && st.Mode().IsRegular()
	}
	if env := os.Getenv("SLABBENCH_KMOD"); env != "" {
		if try(env) {
			return env, nil
		}
		if p := filepath.Join(env, "slabrelay.ko"); try(p) {
			return p, nil
		}
	}
	var starts []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if p := filepath.Join(dir, "slabrelay.ko"); try(p) {
			return p, nil
		}
		starts = append(starts, dir)
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				if p := filepath.Join(d, "kmod", "slabrelay", "slabrelay.ko"); try(p) {
					return p, nil
				}
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "", fmt.Errorf("slabrelay.ko not found (tried %s; set $SLABBENCH_KMOD): %s",
		strings.Join(tried, ", "), buildHint)
}

// Loaded reports whether slabrelay is loaded.
func Loaded() bool {
	_, err := os.Stat("/sys/module/" + ModuleName)
	return err == nil
}

// tracepointIDs are the tracefs ids of the kmem tracepoints, kind k at
// index k-1, as the module parameter truth_ids takes them; 0 for a kind
// not captured.
type tracepointIDs [event.NumKinds - 1]uint64

// moduleParams formats the module parameters of cfg.
func moduleParams(cfg *Config, truthIDs tracepointIDs) string {
	ow := 0
	if cfg.Overwrite {
		ow = 1
	}
	s := fmt.Sprintf("subbuf_size=%d n_subbufs=%d overwrite=%d events=%d",
		cfg.SubbufSize, cfg.NumSubbufs, ow, event.KindMask(cfg.Kinds))
	if cfg.Empty {
		s += " empty=1"
	}
	if cfg.ProbeTime {
		s += " probe_time=1"
	}
	if cfg.Part != PartCapture {
		s += fmt.Sprintf(" part=%d", cfg.Part)
	}
	if cfg.nestFirst {
		s += " nest_first=1"
	}
	if cfg.startDelay > 0 {
		s += fmt.Sprintf(" start_delay_us=%d", cfg.startDelay)
	}
	if cfg.nestCalls {
		s += " nest_calls=1"
	}
	if cfg.StackDepth > 0 {
		s += fmt.Sprintf(" stack_depth=%d stack_entries=%d", cfg.StackDepth, cfg.StackEntries)
	}
	if truthIDs != (tracepointIDs{}) {
		s += fmt.Sprintf(" truth_ids=%d,%d,%d,%d", truthIDs[0], truthIDs[1], truthIDs[2], truthIDs[3])
	}
	return s
}

// loadModule loads the module at path with params (finit_module).
func loadModule(path, params string) error {
	if _, err := os.Stat("/proc/modules"); err != nil {
		return errors.New("this kernel cannot load modules: run in the VM: slabbench vm -- capture --path relay ...")
	}
	if Loaded() {
		return errors.New("slabrelay is already loaded: rmmod slabrelay")
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("slabrelay module: %w: %s", err, buildHint)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), params, 0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return errors.New("slabrelay is already loaded: rmmod slabrelay")
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("loading %s: %w: run as root (CAP_SYS_MODULE) and check /proc/sys/kernel/modules_disabled", path, err)
	case errors.Is(err, unix.ENOSYS):
		return errors.New("this kernel cannot load modules: run in the VM: slabbench vm -- capture --path relay ...")
	case errors.Is(err, unix.EINVAL):
		msg := strings.Join(kmsgLines(ModuleName+": "), "; ")
		if msg == "" {
			msg = "see dmesg | grep slabrelay"
		}
		return fmt.Errorf("slabrelay rejected its parameters %q: %w: %s", params, err, msg)
	case errors.Is(err, unix.ENOEXEC):
		return fmt.Errorf("loading %s: %w: it was built for another kernel than %s: rebuild it from the repository root: make kmod KVER=%s",
			path, err, kernelRelease(), kernelRelease())
	case errors.Is(err, unix.EKEYREJECTED), errors.Is(err, unix.ENOKEY):
		return fmt.Errorf("loading %s: %w: this kernel only loads signed modules", path, err)
	}
	return fmt.Errorf("loading %s with %q: %w (see dmesg)", path, params, err)
}

// unloadModule removes the module (delete_module, O_NONBLOCK: fail instead
// of waiting while it is in use), retrying for a while when something
// still holds one of its control files open.
func unloadModule() error {
	var err error
	for i := 0; i < 100; i++ {
		err = unix.DeleteModule(ModuleName, unix.O_NONBLOCK)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("unloading slabrelay: %w (a process may hold %s/control or stats open)", err, debugfsDir)
}

func kernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "the running kernel"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// kmsgLines returns the messages in the kernel log (/dev/kmsg) of the
// last 10 seconds that contain substr, without their prefix.
func kmsgLines(substr string) []string { return kmsgSince(substr, 10*time.Second) }

// kmsgSince returns the kernel log messages of the last window that
// contain substr.
func kmsgSince(substr string, window time.Duration) []string {
	// raw fd: an os.File would park on EAGAIN in the netpoller
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	now := ts.Nano() / 1000
	var out []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			if errors.Is(err, unix.EPIPE) { // overwritten records: go on
				continue
			}
			break
		}
		rec := buf[:n]
		semi := bytes.IndexByte(rec, ';')
		if semi < 0 {
			continue
		}
		fields := strings.Split(string(rec[:semi]), ",")
		if len(fields) < 3 {
			continue
		}
		usec, _ := strconv.ParseInt(fields[2], 10, 64)
		msg := strings.TrimRight(string(rec[semi+1:]), "\n")
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if now-usec < window.Microseconds() && strings.Contains(msg, substr) {
			out = append(out, msg)
		}
	}
	return out
}

// moduleStats is the parsed stats file.
type moduleStats struct {
	subbufSize, nSubbufs int
	overwrite            bool
	probes               uint32
	cpus                 []cpuModuleStats
}

type cpuModuleStats struct {
	cpu                         int
	produced, consumed          uint64
	overwrittenSubbufs, backlog uint64
	probeNs, probeRuns          uint64
	kinds                       [event.NumKinds]kindModuleStats
}

type kindModuleStats struct {
	attempts, drops, truthFirst, truthLast, truthErrors, overwritten uint64
	// nested counts handled hits that ran inside another hit of the kind;
	// firstEmit is the count the first emit probe read, where the window
	// would start if nesting were ignored (kept to show the difference).
	nested, firstEmit uint64
	// stacks* count what became of each allocation's stack with
	// stack_depth set (event.Counts.StacksTaken and after).
	stacksTaken, stacksFull, stackCollisions, stacksFailed uint64
}

// readModuleStats reads and parses the loaded module's stats file.
func readModuleStats() (*moduleStats, error) {
	b, err := os.ReadFile(filepath.Join(debugfsDir, "stats"))
	if err != nil {
		return nil, fmt.Errorf("relay stats: %w", err)
	}
	return parseStats(b)
}

// parseStats parses the module's stats file (format in main.c).
func parseStats(b []byte) (*moduleStats, error) {
	ms := &moduleStats{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	var cur *cpuModuleStats
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		bad := func(why string) error {
			return fmt.Errorf("slabrelay stats line %d %q: %s", line, sc.Text(), why)
		}
		// kv reads "key value" pairs from f[start:].
		kv := func(start int) (map[string]uint64, error) {
			if (len(f)-start)%2 != 0 {
				return nil, bad("odd number of fields")
			}
			m := map[string]uint64{}
			for i := start; i < len(f); i += 2 {
				v, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					return nil, bad(err.Error())
				}
				m[f[i]] = v
			}
			return m, nil
		}
		switch f[0] {
		case "slabrelay":
			if len(f) < 2 || f[1] != "1" {
				return nil, bad("unknown stats version")
			}
			m, err := kv(2)
			if err != nil {
				return nil, err
			}
			ms.subbufSize, ms.nSubbufs = int(m["subbuf_size"]), int(m["n_subbufs"])
			ms.overwrite, ms.probes = m["overwrite"] != 0, uint32(m["probes"])
		case "cpu":
			if len(f) < 2 {
				return nil, bad("no cpu")
			}
			c, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, bad(err.Error())
			}
			m, err := kv(2)
			if err != nil {
				return nil, err
			}
			ms.cpus = append(ms.cpus, cpuModuleStats{cpu: c, produced: m["produced"], consumed: m["consumed"],
				overwrittenSubbufs: m["overwritten_subbufs"], backlog: m["max_backlog"],
				probeNs: m["probe_ns"], probeRuns: m["probe_runs"]})
			cur = &ms.cpus[len(ms.cpus)-1]
		case "kind":
			if len(f) < 3 || cur == nil || f[1] != strconv.Itoa(cur.cpu) {
				return nil, bad("kind line outside its cpu")
			}
			k, err := strconv.Atoi(f[2])
			if err != nil || !event.Kind(k).Valid() {
				return nil, bad("bad kind")
			}
			m, err := kv(3)
			if err != nil {
				return nil, err
			}
			cur.kinds[k] = kindModuleStats{attempts: m["attempts"], drops: m["drops"], truthFirst: m["truth_first"],
				truthLast: m["truth_last"], truthErrors: m["truth_errors"], overwritten: m["overwritten"],
				nested: m["nested"], firstEmit: m["first_emit"],
				stacksTaken: m["stacks_taken"], stacksFull: m["stacks_full"],
				stackCollisions: m["stack_collisions"], stacksFailed: m["stacks_failed"]}
		default:
			return nil, bad("unknown line")
		}
	}
	return ms, sc.Err()
}
