// Package truth is slabbench's independent count of kmem tracepoint hits:
// per-CPU perf_event_open counting events (PERF_TYPE_TRACEPOINT, ids read
// from tracefs), one per kind; for function probes, of calls of the
// allocator functions (counting kprobes through the kprobe PMU). The
// capture code never touches them; the BPF programs only read them
// (bpf_perf_event_read) to stamp the window they handled, so a
// capture can be checked against the kernel's own count.
package truth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// tracefsDirs are where tracefs is found, newest convention first.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

var mountOnce sync.Once

// TracefsDir returns a mounted tracefs, mounting it at /sys/kernel/tracing
// if no mount is found (needs root).
func TracefsDir() (string, error) {
	find := func() string {
		for _, d := range tracefsDirs {
			if _, err := os.Stat(filepath.Join(d, "events")); err == nil {
				return d
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	var mountErr error
	mountOnce.Do(func() {
		mountErr = unix.Mount("tracefs", tracefsDirs[0], "tracefs", 0, "")
	})
	if d := find(); d != "" {
		return d, nil
	}
	if mountErr != nil {
		return "", fmt.Errorf("tracefs is not mounted and mounting it failed (%v): run as root or mount -t tracefs tracefs /sys/kernel/tracing", mountErr)
	}
	return "", errors.New("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing")
}

// TracepointID returns the perf tracepoint id of kmem:<kind> from tracefs.
func TracepointID(k event.Kind) (uint64, error) {
	dir, err := TracefsDir()
	if err != nil {
		return 0, err
	}
	p := filepath.Join(dir, "events", "kmem", k.String(), "id")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("tracepoint kmem:%s: %w (is the kernel built with CONFIG_TRACEPOINTS and are you root?)", k, err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tracepoint kmem:%s: bad id in %s: %w", k, p, err)
	}
	return id, nil
}

// Counter holds one counting perf event per online CPU and kind.
type Counter struct {
	kinds []event.Kind
	cpus  []int
	fds   [event.NumKinds][]int // fds[kind][i] counts kinds on cpus[i]
}

// OnlineCPUs returns the CPUs the kernel lists as online.
func OnlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, err
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// Open opens and enables counting events for kinds on every online CPU.
func Open(kinds []event.Kind) (*Counter, error) {
	return open(kinds, func(k event.Kind) (unix.PerfEventAttr, string, error) {
		id, err := TracepointID(k)
		return unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id}, "kmem:" + k.String(), err
	})
}

// kprobePMU is where the kernel lists the kprobe PMU, through which perf
// and libbpf create kprobes without tracefs.
const kprobePMU = "/sys/bus/event_source/devices/kprobe/type"

// OpenKprobes opens and enables, for each kind, counting kprobes on the
// entry of the function funcs names, on every online CPU: the count of
// calls that function probes (kprobe, fentry) are checked against.
func OpenKprobes(kinds []event.Kind, funcs map[event.Kind]string) (*Counter, error) {
	b, err := os.ReadFile(kprobePMU)
	if err != nil {
		return nil, fmt.Errorf("truth counter: this kernel has no kprobe PMU (%v), so it cannot count the calls kprobe and fentry probes see: use --attach tracepoint or rawtp here, or run in the VM: slabbench vm -- capture --attach kprobe ...", err)
	}
	pmu, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("truth counter: bad kprobe PMU type in %s: %w", kprobePMU, err)
	}
	names := map[event.Kind][]byte{}
	c, err := open(kinds, func(k event.Kind) (unix.PerfEventAttr, string, error) {
		fn := funcs[k]
		if fn == "" {
			return unix.PerfEventAttr{}, "", fmt.Errorf("no function for %s", k)
		}
		name := append([]byte(fn), 0)
		names[k] = name
		// config1 is the function's name, config2 the offset in it.
		return unix.PerfEventAttr{Type: uint32(pmu), Ext1: uint64(uintptr(unsafe.Pointer(&name[0])))}, "kprobe:" + fn, nil
	})
	runtime.KeepAlive(names)
	return c, err
}

// open opens a counting event per kind and CPU with the attribute attrFor
// gives, named desc in errors.
func open(kinds []event.Kind, attrFor func(event.Kind) (attr unix.PerfEventAttr, desc string, err error)) (*Counter, error) {
	cpus, err := OnlineCPUs()
	if err != nil {
		return nil, fmt.Errorf("truth counter: %w", err)
	}
	c := &Counter{kinds: kinds, cpus: cpus}
	for _, k := range kinds {
		attr, desc, err := attrFor(k)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("truth counter: %w", err)
		}
		attr.Size = uint32(unsafe.Sizeof(unix.PerfEventAttr{}))
		// Enabled and running time tell whether the event ever stopped
		// counting while enabled (Idle); the probes read the count alone.
		attr.Read_format = unix.PERF_FORMAT_TOTAL_TIME_ENABLED | unix.PERF_FORMAT_TOTAL_TIME_RUNNING
		for _, cpu := range cpus {
			fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err != nil {
				c.Close()
				return nil, fmt.Errorf("truth counter: perf_event_open(%s, cpu %d): %w (needs root or kernel.perf_event_paranoid <= -1)", desc, cpu, err)
			}
			c.fds[k] = append(c.fds[k], fd)
		}
	}
	return c, nil
}

// CPUs returns the CPUs counted, in the order of FD's index.
func (c *Counter) CPUs() []int { return c.cpus }

// FD returns the counting event of kind k on the i-th counted CPU, or -1.
func (c *Counter) FD(k event.Kind, i int) int {
	if int(k) >= len(c.fds) || i >= len(c.fds[k]) {
		return -1
	}
	return c.fds[k][i]
}

// Read returns the current count of kind k on the i-th counted CPU.
func (c *Counter) Read(k event.Kind, i int) (uint64, error) {
	v, err := c.read(k, i)
	return v[0], err
}

// Idle returns how long, in nanoseconds, the counting event of kind k on
// the i-th counted CPU has been enabled but not counting (scheduled out
// or stopped) since it was opened: hits in that time are not counted.
func (c *Counter) Idle(k event.Kind, i int) (uint64, error) {
	v, err := c.read(k, i)
	return v[1] - v[2], err
}

// read returns the count, enabled time and running time of one event.
func (c *Counter) read(k event.Kind, i int) ([3]uint64, error) {
	var v [3]uint64
	fd := c.FD(k, i)
	if fd < 0 {
		return v, fmt.Errorf("truth counter: kind %s is not counted", k)
	}
	var buf [24]byte
	if _, err := unix.Read(fd, buf[:]); err != nil {
		return v, fmt.Errorf("truth counter: read kmem:%s cpu %d: %w", k, c.cpus[i], err)
	}
	runtime.KeepAlive(c)
	for j := range v {
		v[j] = binary.NativeEndian.Uint64(buf[8*j:])
	}
	return v, nil
}

// Total returns the count of kind k summed over all counted CPUs.
func (c *Counter) Total(k event.Kind) (uint64, error) {
	var sum uint64
	for i := range c.cpus {
		v, err := c.Read(k, i)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// Close closes every counting event. It is idempotent.
func (c *Counter) Close() error {
	for k := range c.fds {
		for _, fd := range c.fds[k] {
			unix.Close(fd)
		}
		c.fds[k] = nil
	}
	return nil
}
