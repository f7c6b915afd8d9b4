// Package relaytrace is the relay path of slabbench: it loads the slabrelay
// kernel module (kmod/slabrelay), maps each CPU's relay buffer from debugfs
// read-only, and returns the module's slab event records through the
// event.Capture interface, with the module's drop, overwrite and truth
// counters for the loss accounting.
//
// A Capture reads whole sub-buffers: the module writes records into the
// current sub-buffer of the CPU they happen on; when it is full (or on
// flush) the module starts the next one and marks the previous complete in
// its header (kmod/include/slabrelay.h). The reader walks complete
// sub-buffers in sequence order and tells the module, one sub-buffer at a
// time, which ones it has consumed, so that the module can reuse them.
package relaytrace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/wait"
	"github.com/slabbench/slabbench/truth"
)

// Config selects the relay buffers and the events.
type Config struct {
	SubbufSize int          // bytes per sub-buffer; 0: 16 KiB
	NumSubbufs int          // sub-buffers per CPU; 0: 8
	Overwrite  bool         // flight recorder: overwrite unread sub-buffers instead of dropping
	Kinds      []event.Kind // nil: all four
	Truth      bool         // stamp every record with the perf truth counter
	// Empty registers probes that return at once (module parameter
	// empty=1): the floor of the relay path. Nothing is recorded.
	Empty bool
	// Part runs only part of the probe (module parameter part,
	// BenchmarkProbeParts); the zero value runs all of it.
	Part Part
	// ModulePath is slabrelay.ko; "" looks in $SLABBENCH_KMOD, next to the
	// executable and in kmod/slabrelay of the repository (FindModule).
	ModulePath string

	// ProbeTime makes the module sum the time spent inside its probes
	// (module parameter probe_time), for ProbeTime.
	ProbeTime bool

	// StackDepth, if not 0, makes the module store each allocation's
	// kernel stack, up to that many frames, in a table of StackEntries
	// distinct stacks (module parameters stack_depth, stack_entries;
	// StackFrames reads them).
	StackDepth, StackEntries int

	// nestFirst (tests) makes a kmalloc and kfree hit nest inside the first
	// kmalloc and kfree hit of each CPU (module parameter nest_first).
	nestFirst bool
	// startDelay (tests) makes each sub-buffer's start wait this many
	// microseconds once its seq is published (module parameter
	// start_delay_us).
	startDelay int
	// nestCalls (tests) makes every __kmalloc and kmem_cache_alloc call
	// have a same-kind call inside it (module parameter nest_calls).
	nestCalls bool
}

// Part is how much of the module's probe runs, to price its parts (module
// parameter part, enum slabrelay_part).
type Part uint32

// The parts, each adding to the one before.
const (
	// PartCapture is the whole probe.
	PartCapture Part = iota
	// PartFloor reserves a record holding only what the reader checks
	// (its CPU and kind) and counts it in the sub-buffer's header: the
	// transport's floor. It writes on every hit and counts nothing.
	PartFloor
	// PartFill fills the record's fields too.
	PartFill
)

// Defaults of Config.
const (
	DefaultSubbufSize = 16 << 10
	DefaultNumSubbufs = 8
)

// cpuBuf is the mapped buffer of one CPU.
type cpuBuf struct {
	cpu  int
	file *os.File
	mem  []byte
	w    *Walker
	// consume is c.consume for this CPU, bound once so that reading
	// does not allocate.
	consume consumeFunc
}

// Capture is a running relay capture; it implements event.Capture.
type Capture struct {
	cfg     Config
	control *os.File
	waiter  *wait.Waiter // the CPUs' files; Close, SetDeadline and Flush wake it

	// mu keeps Close from unmapping under a read. The reading goroutine
	// leases it (lease): it keeps it between the records of one
	// sub-buffer, so that a record costs no locked instruction (the lock
	// per record was a fifth of the reader's cost in the VM), and lets
	// go at each sub-buffer's end, before it waits and when ReadInto
	// fails. The walkers, the tracker and the read position belong to
	// the reading goroutine.
	mu       sync.Mutex
	leased   bool // reading goroutine only: it holds mu
	cpus     []*cpuBuf
	tracker  event.SeqTracker
	rr       int     // CPU to read first
	reading  *cpuBuf // c.cpus[c.rr], read by ReadInto's fast path
	cmd      []byte  // reused control command
	freeOnce sync.Once
	freeErr  error

	ctlMu   sync.Mutex // Stop, Stats and Close
	stopped bool
	final   *event.Stats   // Stats at Close
	foreign *truth.Foreign // other tools' programs on the tracepoints

	stacksMu sync.Mutex          // StackFrames
	stacks   map[uint32][]uint64 // the module's stack table as last read
}

var _ event.Capture = (*Capture)(nil)

// Open loads the module with cfg, maps every CPU's buffer and returns the
// running capture. The probes are attached when it returns.
func Open(cfg Config) (*Capture, error) {
	if cfg.SubbufSize == 0 {
		cfg.SubbufSize = DefaultSubbufSize
	}
	if cfg.NumSubbufs == 0 {
		cfg.NumSubbufs = DefaultNumSubbufs
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = append([]event.Kind(nil), event.AllKinds...)
	}
	for _, k := range cfg.Kinds {
		if !k.Valid() {
			return nil, fmt.Errorf("relay capture: unknown event kind %d", k)
		}
	}
	if err := CheckSizes(cfg.SubbufSize, cfg.NumSubbufs); err != nil {
		return nil, err
	}
	if cfg.Part > PartFill || cfg.Part != PartCapture && (cfg.Empty || cfg.Truth) {
		return nil, fmt.Errorf("relay probe part %d: want 0..%d, a part below the capture with neither the empty probe nor the truth", cfg.Part, PartFill)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the relay path needs root (loading a kernel module)")
	}
	if Loaded() {
		return nil, errors.New("slabrelay is already loaded: rmmod slabrelay")
	}
	if _, err := os.Stat("/proc/modules"); err != nil {
		return nil, errors.New("this kernel cannot load modules: run in the VM: slabbench vm -- capture --path relay ...")
	}
	path, err := FindModule(cfg.ModulePath)
	if err != nil {
		return nil, err
	}
	var ids tracepointIDs
	if cfg.Truth {
		for _, k := range cfg.Kinds {
			if ids[k-1], err = truth.TracepointID(k); err != nil {
				return nil, err
			}
		}
	}
	c := &Capture{cfg: cfg}
	if cfg.Truth {
		// The module's truth counters do not count a hit another
		// tool's tracepoint program returns 0 for (truth.Foreign).
		// Listed before the window opens and after it closes: listing
		// opens a perf event.
		c.foreign = truth.NewForeign(nil)
		if err := c.foreign.Note(cfg.Kinds); err != nil {
			return nil, err
		}
	}
	if err := loadModule(path, moduleParams(&cfg, ids)); err != nil {
		return nil, err
	}
	if err := c.open(); err != nil {
		return nil, errors.Join(err, c.free(), c.closeControl(), unloadModule())
	}
	return c, nil
}

// CheckSizes applies the module's limits to a sub-buffer size and count,
// so that a bad one is reported, naming its flag, without loading it.
func CheckSizes(size, n int) error {
	if size < MinSubbufSize || size%8 != 0 || size > MaxCPUBytes/MinSubbufs {
		return fmt.Errorf("--subbuf-size %d: want a multiple of 8 in %d..%d bytes (relay)", size, MinSubbufSize, MaxCPUBytes/MinSubbufs)
	}
	if n < MinSubbufs || n > MaxSubbufs {
		return fmt.Errorf("--subbufs %d: want %d..%d (relay)", n, MinSubbufs, MaxSubbufs)
	}
	if size*n > MaxCPUBytes {
		return fmt.Errorf("--subbuf-size %d x --subbufs %d: want at most %d bytes (64 MiB) per CPU (relay)", size, n, MaxCPUBytes)
	}
	return nil
}

// ensureDebugfs mounts debugfs if the module's directory is not visible.
func ensureDebugfs() error {
	if _, err := os.Stat(debugfsDir); err == nil {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/kernel/debug", &st); err == nil && st.Type == unix.DEBUGFS_MAGIC {
		return fmt.Errorf("%s missing although debugfs is mounted: did slabrelay load?", debugfsDir)
	}
	if err := unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, ""); err != nil {
		return fmt.Errorf("mounting debugfs: %w: mount -t debugfs debugfs /sys/kernel/debug", err)
	}
	if _, err := os.Stat(debugfsDir); err != nil {
		return fmt.Errorf("slabrelay loaded but %s is missing: %w", debugfsDir, err)
	}
	return nil
}

func (c *Capture) open() error {
	if err := ensureDebugfs(); err != nil {
		return err
	}
	var err error
	if c.control, err = os.OpenFile(filepath.Join(debugfsDir, "control"), os.O_WRONLY, 0); err != nil {
		return err
	}
	names, err := filepath.Glob(filepath.Join(debugfsDir, "cpu*"))
	if err != nil {
		return err
	}
	var cpus []int
	for _, n := range names {
		if cpu, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(n), "cpu")); err == nil {
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) == 0 {
		return fmt.Errorf("no relay buffers in %s", debugfsDir)
	}
	sort.Ints(cpus)
	var fds []int
	size := c.cfg.SubbufSize * c.cfg.NumSubbufs
	pg := os.Getpagesize()
	mapLen := (size + pg - 1) / pg * pg // relay maps exactly its page-aligned size
	for _, cpu := range cpus {
		f, err := os.Open(filepath.Join(debugfsDir, "cpu"+strconv.Itoa(cpu)))
		if err != nil {
			return err
		}
		cb := &cpuBuf{cpu: cpu, file: f}
		c.cpus = append(c.cpus, cb)
		// PROT_READ + MAP_PRIVATE: nothing is ever written through
		// the mapping, so no page is ever copied and every page stays
		// the kernel's own buffer page, seeing the module's writes.
		// MAP_POPULATE: relay maps a page at its first touch, and a
		// fault per page read cost more than the records on it under
		// the VM (BenchmarkConsumer).
		if cb.mem, err = unix.Mmap(int(f.Fd()), 0, mapLen, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_POPULATE); err != nil {
			return fmt.Errorf("mmap %s: %w", f.Name(), err)
		}
		if cb.w, err = NewWalker(cb.mem, c.cfg.SubbufSize, c.cfg.NumSubbufs, cpu); err != nil {
			return err
		}
		if !c.cfg.Overwrite {
			cb.w.NoOverwrite()
		}
		cb.consume = func(next uint64) (bool, error) { return c.consume(cb.cpu, next) }
		fds = append(fds, int(f.Fd()))
	}
	c.waiter, err = wait.New(fds...)
	return err
}

// command writes one control command.
func (c *Capture) command(cmd []byte) error {
	_, err := c.control.Write(cmd)
	return err
}

// Stop detaches the probes and flushes the open sub-buffers: no record is
// written after it returns, and all written ones are readable. Idempotent.
func (c *Capture) Stop() error {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	return c.stopLocked()
}

func (c *Capture) stopLocked() error {
	if c.stopped {
		return nil
	}
	if c.control == nil {
		return fmt.Errorf("relay capture: %w", os.ErrClosed)
	}
	if err := c.command([]byte("stop")); err != nil {
		return fmt.Errorf("relay stop: %w", err)
	}
	c.stopped = true
	// After the window: listing opens a perf event (truth.Foreign).
	if c.foreign != nil {
		return c.foreign.Note(c.cfg.Kinds)
	}
	return nil
}

// Close stops the capture, unmaps the buffers and unloads the module. A
// blocked ReadInto returns an error wrapping os.ErrClosed. Idempotent. A
// reader that returned a record and has not read since holds the
// mappings: Close waits a moment for it to let go, then unloads the
// module anyway (relay's buffer files hold no reference to it) and the
// reader unmaps them at its next read.
func (c *Capture) Close() error {
	if !c.waiter.Shutdown() {
		return nil
	}
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	errs := []error{c.stopLocked()}
	locked := c.lockWithin(100 * time.Millisecond)
	if st, err := c.statsLocked(); err == nil {
		c.final = &st
	} else {
		errs = append(errs, err)
	}
	if locked {
		errs = append(errs, c.free())
		c.mu.Unlock()
	}
	return errors.Join(append(errs, c.closeControl(), unloadModule())...)
}

// lockWithin takes mu unless the reader holds it for longer than d: a
// reading one lets go at its next record, which sees the Close.
func (c *Capture) lockWithin(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !c.mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// free unmaps the buffers and closes their files and the waiter, once;
// mu is held (or the capture never ran).
func (c *Capture) free() error {
	c.freeOnce.Do(func() {
		var errs []error
		for _, cb := range c.cpus {
			if cb.mem != nil {
				errs = append(errs, unix.Munmap(cb.mem))
				cb.mem = nil
			}
			errs = append(errs, cb.file.Close())
		}
		c.reading = nil
		if c.waiter != nil {
			errs = append(errs, c.waiter.Release())
		}
		c.freeErr = errors.Join(errs...)
	})
	return c.freeErr
}

// closeControl closes the control file: the module can then be unloaded.
func (c *Capture) closeControl() error {
	if c.control == nil {
		return nil
	}
	return c.control.Close()
}
