package bpftrace

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"time"

	"github.com/slabbench/slabbench/event"
)

// Transport is the BPF buffer the records go through.
type Transport string

// The two eBPF transports.
const (
	Ringbuf Transport = "ringbuf" // one BPF ring buffer shared by all CPUs
	Perfbuf Transport = "perfbuf" // one perf buffer per CPU
)

// Attach is how the programs hook the slab events (event.Attach).
type Attach = event.Attach

// The four attach modes.
const (
	AttachTracepoint = event.AttachTracepoint
	AttachRawTP      = event.AttachRawTP
	AttachKprobe     = event.AttachKprobe
	AttachFentry     = event.AttachFentry
)

// Config of one eBPF capture.
type Config struct {
	Transport Transport
	Attach    Attach
	Kinds     []event.Kind
	// Truth stamps every hit with the kernel's counting perf event on the
	// same tracepoint (for kprobe and fentry: a counting kprobe on the
	// same function), so Stats can check captured + lost == truth.
	Truth bool
	// RingbufSize is the ring buffer's size in bytes; it is rounded up to
	// a power of two of at least one page, as the kernel requires.
	RingbufSize int
	// PerCPUBufferSize is each CPU's perf buffer in bytes, rounded up to a
	// power of two pages.
	PerCPUBufferSize int
	// WakeupBytes batches reader wakeups: the ring buffer program only
	// wakes the reader once at least this many bytes are pending (0: the
	// kernel's default, a wakeup whenever the reader has caught up); for
	// the perf buffer it is the watermark.
	WakeupBytes int
	// PollInterval, if > 0, makes the reader look for records on a timer,
	// this often, and the transport never wake it: no wakeup costs the
	// producer anything (the ring buffer's programs ask for none; the
	// perf buffer's watermark is its whole size), at the cost of up to
	// this much lag. Not with WakeupBytes or CiliumReader.
	PollInterval time.Duration
	// Empty attaches programs that return at once: the floor every
	// capture path pays. Nothing is recorded or counted.
	Empty bool
	// Part runs only part of the capture program (BenchmarkProbeParts);
	// the zero value runs all of it.
	Part ProbePart
	// Detached loads the programs without attaching them: records then
	// come only from Inject (the consumer benchmarks).
	Detached bool
	// CiliumReader reads the buffer with cilium/ebpf's ringbuf.Reader or
	// perf.Reader instead of slabbench's own reader of the mapping (the
	// consumer benchmarks compare the two).
	CiliumReader bool
	// ProbeTime turns on the kernel's BPF run-time statistics
	// (BPF_ENABLE_STATS) while the capture is open, so that ProbeTime
	// reports the time spent inside the programs. The kernel then reads
	// its clock around every program run, which the programs pay.
	ProbeTime bool
	// StackDepth, if > 0, takes each allocation's kernel stack, up to that
	// many frames, into a stack map of StackEntries distinct stacks
	// (0: DefaultStackEntries); records carry its id (event.FlagStack).
	StackDepth   int
	StackEntries int
}

// ProbePart is how much of the capture program runs, to price its parts
// (slab.c, enum slab_probe_part).
type ProbePart uint32

// The parts, each adding to the one before.
const (
	// PartCapture is the whole capture program.
	PartCapture ProbePart = iota
	// PartFloor writes a zeroed record into the transport (ring buffer
	// reserve and submit, or perf buffer output), counts nothing and
	// never wakes the reader: the transport's floor.
	PartFloor
	// PartFill fills the record's fields.
	PartFill
	// PartAccounted is the capture without its wakeup policy: the
	// per-CPU accounting, sequence numbers and, with Truth, the truth
	// stamp; it never wakes the reader.
	PartAccounted
)

// Polling intervals (Config.PollInterval): below 100 µs a reader spends
// more time looking than a wakeup costs; above a second its lag is no
// longer live.
const (
	MinPollInterval = 100 * time.Microsecond
	MaxPollInterval = time.Second
)

// Stack limits: the kernel walks at most 127 frames (PERF_MAX_STACK_DEPTH).
const (
	MaxStackDepth       = 127
	DefaultStackDepth   = 16
	DefaultStackEntries = 16384
	MaxStackEntries     = 1 << 20
)

// programNames maps attach mode and kind to the program in slab.c.
var programNames = map[Attach]map[event.Kind]string{
	AttachTracepoint: {event.KindKmalloc: "tp_kmalloc", event.KindKfree: "tp_kfree",
		event.KindKmemCacheAlloc: "tp_kmem_cache_alloc", event.KindKmemCacheFree: "tp_kmem_cache_free"},
	AttachRawTP: {event.KindKmalloc: "rawtp_kmalloc", event.KindKfree: "rawtp_kfree",
		event.KindKmemCacheAlloc: "rawtp_kmem_cache_alloc", event.KindKmemCacheFree: "rawtp_kmem_cache_free"},
	AttachKprobe: {event.KindKmalloc: "kprobe_kmalloc", event.KindKfree: "kprobe_kfree",
		event.KindKmemCacheAlloc: "kprobe_kmem_cache_alloc", event.KindKmemCacheFree: "kprobe_kmem_cache_free"},
	AttachFentry: {event.KindKmalloc: "fexit_kmalloc", event.KindKfree: "fentry_kfree",
		event.KindKmemCacheAlloc: "fexit_kmem_cache_alloc", event.KindKmemCacheFree: "fentry_kmem_cache_free"},
}

// entryProgramNames maps an allocation kind to the fentry program that
// stamps its calls at entry for the fexit program (slab.c); attached in
// fentry mode with the truth counter on.
var entryProgramNames = map[event.Kind]string{
	event.KindKmalloc:        "fentry_kmalloc",
	event.KindKmemCacheAlloc: "fentry_kmem_cache_alloc",
}

// entryProgram returns the name of kind k's entry program under cfg, or "".
func (cfg *Config) entryProgram(k event.Kind) string {
	if cfg.Attach != AttachFentry || !cfg.Truth {
		return ""
	}
	return entryProgramNames[k]
}

// Buffer size limits: the kernel caps a ring buffer's data area, and a perf
// buffer of more than 256 MiB per CPU is beyond any sensible capture.
const (
	MaxRingbufSize      = 1 << 30
	MaxPerCPUBufferSize = 256 << 20
)

// RoundRingbufSize returns the size the kernel accepts for a ring buffer
// of at least size bytes: a power of two, at least one page.
func RoundRingbufSize(size int) int {
	page := os.Getpagesize()
	if size < page {
		return page
	}
	return 1 << bits.Len(uint(size-1))
}

// Validate checks cfg and names the flag to change.
func (cfg *Config) Validate() error {
	switch cfg.Transport {
	case Ringbuf:
		if cfg.RingbufSize <= 0 || cfg.RingbufSize > MaxRingbufSize {
			return fmt.Errorf("ring buffer size %d: want 1..%d bytes (--ringbuf-size, default --subbuf-size x --subbufs x CPUs)",
				cfg.RingbufSize, MaxRingbufSize)
		}
		if ring := RoundRingbufSize(cfg.RingbufSize); cfg.WakeupBytes < 0 || cfg.WakeupBytes >= ring {
			return fmt.Errorf("--wakeup-bytes %d: want 0..%d, below the ring buffer size", cfg.WakeupBytes, ring-1)
		}
	case Perfbuf:
		if cfg.PerCPUBufferSize <= 0 || cfg.PerCPUBufferSize > MaxPerCPUBufferSize {
			return fmt.Errorf("perf buffer of %d bytes per CPU: want 1..%d (--subbuf-size x --subbufs)",
				cfg.PerCPUBufferSize, MaxPerCPUBufferSize)
		}
		if cfg.WakeupBytes < 0 || cfg.WakeupBytes >= cfg.PerCPUBufferSize {
			return fmt.Errorf("--wakeup-bytes %d: want 0..%d, below the per-CPU perf buffer", cfg.WakeupBytes, cfg.PerCPUBufferSize-1)
		}
	default:
		return fmt.Errorf("--path %q: use ringbuf or perfbuf for eBPF", cfg.Transport)
	}
	if cfg.PollInterval != 0 {
		switch {
		case cfg.PollInterval < MinPollInterval || cfg.PollInterval > MaxPollInterval:
			return fmt.Errorf("--poll %v: want %v..%v (0: the transport wakes the reader)", cfg.PollInterval, MinPollInterval, MaxPollInterval)
		case cfg.WakeupBytes != 0:
			return errors.New("--poll and --wakeup-bytes: use one (a polling reader is never woken)")
		case cfg.CiliumReader:
			return errors.New("polling: slabbench's own readers only, not cilium/ebpf's")
		}
	}
	if _, ok := programNames[cfg.Attach]; !ok {
		return fmt.Errorf("--attach %q: use tracepoint, rawtp, kprobe or fentry", cfg.Attach)
	}
	if len(cfg.Kinds) == 0 {
		return errors.New("no events selected (--events)")
	}
	if cfg.Part > PartAccounted {
		return fmt.Errorf("probe part %d: want 0..%d", cfg.Part, PartAccounted)
	}
	if cfg.StackDepth < 0 || cfg.StackDepth > MaxStackDepth {
		return fmt.Errorf("--stack-depth %d: want 1..%d frames", cfg.StackDepth, MaxStackDepth)
	}
	if cfg.StackEntries < 0 || cfg.StackEntries > MaxStackEntries {
		return fmt.Errorf("--stack-entries %d: want 1..%d distinct stacks", cfg.StackEntries, MaxStackEntries)
	}
	for _, k := range cfg.Kinds {
		if !k.Valid() {
			return fmt.Errorf("unknown event kind %d (--events)", k)
		}
	}
	return nil
}
