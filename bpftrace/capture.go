package bpftrace

import (
	"bufio"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
)

// Transport is the BPF buffer the records go through.
type Transport string

// The two eBPF transports.
const (
	Ringbuf Transport = "ringbuf" // one BPF ring buffer shared by all CPUs
	Perfbuf Transport = "perfbuf" // one perf buffer per CPU
)

// Attach is how the programs hook the slab events.
type Attach string

// The four attach modes.
const (
	AttachTracepoint Attach = "tracepoint" // BPF_PROG_TYPE_TRACEPOINT on kmem:*
	AttachRawTP      Attach = "rawtp"      // raw tracepoint on kmem:*
	AttachKprobe     Attach = "kprobe"     // kprobes on the allocator functions
	AttachFentry     Attach = "fentry"     // fentry/fexit on the allocator functions
)

// IsFunctionProbe reports whether a sees function calls rather than
// tracepoint hits, so that its counts can't be compared with the truth
// counter.
func (a Attach) IsFunctionProbe() bool { return a == AttachKprobe || a == AttachFentry }

// Config of one eBPF capture.
type Config struct {
	Transport Transport
	Attach    Attach
	Kinds     []event.Kind
	// Truth stamps every hit with the kernel's counting perf event on the
	// same tracepoint, so Stats can check captured + lost == truth.
	// Tracepoint and raw tracepoint attachment only.
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
	// Empty attaches programs that return at once: the floor every
	// capture path pays. Nothing is recorded or counted.
	Empty bool
	// Detached loads the programs without attaching them: records then
	// come only from Inject (the consumer benchmarks).
	Detached bool
}

// Capture is a running eBPF capture. It implements event.Capture.
// ReadInto, SetDeadline and Flush may be called from one consumer
// goroutine while another calls Stop or Close; Stats is final once the
// consumer has drained the reader after Stop.
type Capture struct {
	cfg        Config
	coll       *ebpf.Collection
	progs      map[event.Kind]*ebpf.Program
	links      []link.Link
	truth      *truth.Counter
	ring       *ringbuf.Reader
	perfReader *perf.Reader
	bufBytes   int

	// consumer state, owned by the goroutine calling ReadInto
	ringRec ringbuf.Record
	perfRec perf.Record
	seq     event.SeqTracker
	// perfLostRecords counts what PERF_RECORD_LOST samples reported: the
	// kernel's own count of refused perf writes. It lags the programs'
	// drop counters, since the kernel reports loss only once a later
	// sample fits.
	perfLostRecords uint64

	stopOnce  sync.Once
	stopErr   error
	closeOnce sync.Once
}

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

// functionCandidates lists, per kind, the allocator functions a function
// probe attaches to, newest kernel first (6.10 renamed them *_noprof).
var functionCandidates = map[event.Kind][]string{
	event.KindKmalloc:        {"__kmalloc_noprof", "__kmalloc"},
	event.KindKfree:          {"kfree"},
	event.KindKmemCacheAlloc: {"kmem_cache_alloc_noprof", "kmem_cache_alloc"},
	event.KindKmemCacheFree:  {"kmem_cache_free"},
}

var truthMapNames = map[event.Kind]string{
	event.KindKmalloc:        "truth_kmalloc",
	event.KindKfree:          "truth_kfree",
	event.KindKmemCacheAlloc: "truth_kmem_cache_alloc",
	event.KindKmemCacheFree:  "truth_kmem_cache_free",
}

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
		if cfg.RingbufSize <= 0 {
			return fmt.Errorf("ring buffer size %d: must be > 0 (--ringbuf-size)", cfg.RingbufSize)
		}
		if cfg.RingbufSize > 1<<30 {
			return fmt.Errorf("ring buffer size %d: at most 1GiB (--ringbuf-size)", cfg.RingbufSize)
		}
		if cfg.WakeupBytes < 0 || cfg.WakeupBytes >= RoundRingbufSize(cfg.RingbufSize) {
			return fmt.Errorf("wakeup bytes %d: must be >= 0 and below the ring buffer size %d (--wakeup-bytes)",
				cfg.WakeupBytes, RoundRingbufSize(cfg.RingbufSize))
		}
	case Perfbuf:
		if cfg.PerCPUBufferSize <= 0 {
			return fmt.Errorf("perf buffer size %d per CPU: must be > 0 (--subbuf-size x --subbufs)", cfg.PerCPUBufferSize)
		}
		if cfg.PerCPUBufferSize > 256<<20 {
			return fmt.Errorf("perf buffer size %d per CPU: at most 256MiB (--subbuf-size x --subbufs)", cfg.PerCPUBufferSize)
		}
		if cfg.WakeupBytes < 0 || cfg.WakeupBytes >= cfg.PerCPUBufferSize {
			return fmt.Errorf("wakeup bytes %d: must be >= 0 and below the per-CPU buffer %d (--wakeup-bytes)",
				cfg.WakeupBytes, cfg.PerCPUBufferSize)
		}
	default:
		return fmt.Errorf("unknown eBPF transport %q: use ringbuf or perfbuf (--path)", cfg.Transport)
	}
	if _, ok := programNames[cfg.Attach]; !ok {
		return fmt.Errorf("unknown attach mode %q: use tracepoint, rawtp, kprobe or fentry (--attach)", cfg.Attach)
	}
	if len(cfg.Kinds) == 0 {
		return errors.New("no events selected (--events)")
	}
	for _, k := range cfg.Kinds {
		if !k.Valid() {
			return fmt.Errorf("unknown event kind %d (--events)", k)
		}
	}
	if cfg.Truth && cfg.Attach.IsFunctionProbe() {
		return fmt.Errorf("the truth counter counts tracepoint hits, which %s probes do not see: use --truth off with --attach %s", cfg.Attach, cfg.Attach)
	}
	return nil
}

// Open loads the programs for cfg, attaches them and returns the running
// capture. The caller must Close it; Close detaches everything even when
// the consumer is still blocked in ReadInto.
func Open(cfg Config) (_ *Capture, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("loading BPF programs needs root (CAP_BPF, CAP_PERFMON): run slabbench with sudo")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raising RLIMIT_MEMLOCK for BPF maps: %w", err)
	}

	c := &Capture{cfg: cfg, progs: map[event.Kind]*ebpf.Program{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	spec, err := loadSlab()
	if err != nil {
		return nil, fmt.Errorf("parsing the embedded BPF object: %w", err)
	}
	if err := c.configure(spec); err != nil {
		return nil, err
	}
	if cfg.Truth {
		// Opened before anything attaches, so every handled hit finds its
		// counter running.
		if c.truth, err = truth.Open(cfg.Kinds); err != nil {
			return nil, err
		}
	}

	c.coll, err = ebpf.NewCollection(spec)
	if err != nil {
		return nil, loadError(cfg.Attach, err)
	}
	for _, k := range cfg.Kinds {
		c.progs[k] = c.coll.Programs[programNames[cfg.Attach][k]]
	}
	if c.truth != nil {
		if err := c.fillTruthMaps(); err != nil {
			return nil, err
		}
	}

	switch cfg.Transport {
	case Ringbuf:
		if c.ring, err = ringbuf.NewReader(c.coll.Maps["events_ringbuf"]); err != nil {
			return nil, fmt.Errorf("ring buffer reader: %w", err)
		}
		c.bufBytes = c.ring.BufferSize()
	case Perfbuf:
		c.perfReader, err = perf.NewReaderWithOptions(c.coll.Maps["events_perfbuf"], cfg.PerCPUBufferSize,
			perf.ReaderOptions{Watermark: cfg.WakeupBytes})
		if err != nil {
			return nil, fmt.Errorf("perf buffer reader: %w", err)
		}
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, err
		}
		c.bufBytes = c.perfReader.BufferSize() * cpus
	}

	if !cfg.Detached {
		if err := c.attach(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Inject runs the raw tracepoint kmalloc program n times with
// BPF_PROG_TEST_RUN, writing n records into the buffer exactly as a real
// hit would, without any workload. It needs Attach rawtp and kmalloc among
// the kinds, and Truth off (a test run has no tracepoint to count).
func (c *Capture) Inject(n int) error {
	prog := c.progs[event.KindKmalloc]
	if c.cfg.Attach != AttachRawTP || prog == nil || c.cfg.Truth {
		return errors.New("Inject needs --attach rawtp, kmalloc selected and the truth counter off")
	}
	// kmalloc(call_site, ptr, bytes_req, bytes_alloc, gfp_flags, node)
	args := []uint64{0xffffffff81000000, 0xffff888000000000, 64, 64, 0xcc0, 0}
	for i := range n {
		args[1] += 64
		args[2] = uint64(8 + i%256)
		if _, err := prog.Run(&ebpf.RunOptions{Context: args}); err != nil {
			return fmt.Errorf("BPF_PROG_TEST_RUN of the raw tracepoint program: %w", err)
		}
	}
	return nil
}

// configure sets the load-time constants, sizes the maps and keeps only
// the programs cfg needs, so a kernel without kprobes or fentry can still
// load the tracepoint programs.
func (c *Capture) configure(spec *ebpf.CollectionSpec) error {
	cfg := c.cfg
	transport := uint32(0)
	if cfg.Transport == Perfbuf {
		transport = 1
	}
	consts := map[string]any{
		"transport":    transport,
		"truth_on":     boolToU32(cfg.Truth),
		"wakeup_bytes": uint64(cfg.WakeupBytes),
		"empty_probe":  boolToU32(cfg.Empty),
	}
	for name, v := range consts {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("setting %s in the BPF object: %w", name, err)
		}
	}
	if cfg.Transport == Ringbuf {
		spec.Maps["events_ringbuf"].MaxEntries = uint32(RoundRingbufSize(cfg.RingbufSize))
	} else {
		spec.Maps["events_ringbuf"].MaxEntries = uint32(os.Getpagesize())
	}

	wanted := map[string]event.Kind{}
	for _, k := range cfg.Kinds {
		wanted[programNames[cfg.Attach][k]] = k
	}
	for name, ps := range spec.Programs {
		k, ok := wanted[name]
		if !ok {
			delete(spec.Programs, name)
			continue
		}
		if cfg.Attach == AttachFentry {
			sym, err := kernelFunction(k)
			if err != nil {
				return err
			}
			ps.AttachTo = sym
		}
	}
	return nil
}

func boolToU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// kernelFunction returns the allocator function of kind k this kernel has.
func kernelFunction(k event.Kind) (string, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return "", fmt.Errorf("finding the allocator functions: %w", err)
	}
	defer f.Close()
	present := map[string]bool{}
	for _, c := range functionCandidates[k] {
		present[c] = false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 {
			if _, ok := present[fields[2]]; ok {
				present[fields[2]] = true
			}
		}
	}
	for _, c := range functionCandidates[k] {
		if present[c] {
			return c, nil
		}
	}
	return "", fmt.Errorf("no %s function in /proc/kallsyms (looked for %s): use --attach tracepoint or rawtp",
		k, strings.Join(functionCandidates[k], ", "))
}

// loadError explains a failed load; function probes fail on kernels that
// refuse them, and the user should learn what to use instead.
func loadError(a Attach, err error) error {
	var verr *ebpf.VerifierError
	if a == AttachFentry {
		return fmt.Errorf("this kernel refused the fentry/fexit programs (%v): fentry needs BTF, JIT and a kernel without lockdown restrictions; use --attach tracepoint or rawtp here, or run in the VM: slabbench vm -- capture --attach fentry ...", err)
	}
	if errors.As(err, &verr) {
		return fmt.Errorf("the kernel's verifier rejected the %s programs: %+v", a, verr)
	}
	return fmt.Errorf("loading the %s programs: %w", a, err)
}

func (c *Capture) fillTruthMaps() error {
	for _, k := range c.cfg.Kinds {
		m := c.coll.Maps[truthMapNames[k]]
		for i, cpu := range c.truth.CPUs() {
			if err := m.Put(uint32(cpu), uint32(c.truth.FD(k, i))); err != nil {
				return fmt.Errorf("truth counter of %s on cpu %d into the BPF map: %w", k, cpu, err)
			}
		}
	}
	return nil
}

func (c *Capture) attach() error {
	for _, k := range c.cfg.Kinds {
		prog := c.progs[k]
		var l link.Link
		var err error
		switch c.cfg.Attach {
		case AttachTracepoint:
			l, err = link.Tracepoint("kmem", k.String(), prog, nil)
		case AttachRawTP:
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: k.String(), Program: prog})
		case AttachKprobe:
			var sym string
			if sym, err = kernelFunction(k); err == nil {
				l, err = link.Kprobe(sym, prog, nil)
			}
			if err != nil {
				return fmt.Errorf("attaching a kprobe for %s failed (%v): this kernel has no usable kprobes (CONFIG_KPROBES); use --attach tracepoint or rawtp here, or run in the VM: slabbench vm -- capture --attach kprobe ...", k, err)
			}
		case AttachFentry:
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		}
		if err != nil {
			return fmt.Errorf("attaching the %s program for %s: %w", c.cfg.Attach, k, err)
		}
		c.links = append(c.links, l)
	}
	return nil
}

// BufferBytes returns the buffer memory in bytes: the ring buffer, or the
// per-CPU perf buffers (data pages) over all possible CPUs.
func (c *Capture) BufferBytes() int { return c.bufBytes }

// ReadInto blocks until a record is available and decodes it into rec.
// It does not allocate once the first record has been read.
func (c *Capture) ReadInto(rec *event.Record) error {
	for {
		var raw []byte
		switch {
		case c.ring != nil:
			if err := c.ring.ReadInto(&c.ringRec); err != nil {
				return readerError(err)
			}
			raw = c.ringRec.RawSample
		case c.perfReader != nil:
			if err := c.perfReader.ReadInto(&c.perfRec); err != nil {
				return readerError(err)
			}
			if c.perfRec.LostSamples > 0 {
				c.perfLostRecords += c.perfRec.LostSamples
				continue
			}
			raw = c.perfRec.RawSample
		default:
			return fmt.Errorf("slab capture: %w", os.ErrClosed)
		}
		if err := rec.Decode(raw); err != nil {
			return err
		}
		c.seq.Observe(rec)
		return nil
	}
}

func readerError(err error) error {
	if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, perf.ErrFlushed) {
		return event.ErrFlushed
	}
	return err
}

// SetDeadline makes a blocked ReadInto return os.ErrDeadlineExceeded at t,
// after every pending record has been returned.
func (c *Capture) SetDeadline(t time.Time) {
	switch {
	case c.ring != nil:
		c.ring.SetDeadline(t)
	case c.perfReader != nil:
		c.perfReader.SetDeadline(t)
	}
}

// Flush makes ReadInto return every pending record, then event.ErrFlushed.
func (c *Capture) Flush() error {
	switch {
	case c.ring != nil:
		return c.ring.Flush()
	case c.perfReader != nil:
		return c.perfReader.Flush()
	}
	return fmt.Errorf("slab capture: %w", os.ErrClosed)
}

// Stop detaches every program: the capture window closes. Records already
// written stay readable. It is idempotent.
func (c *Capture) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		for _, l := range c.links {
			errs = append(errs, l.Close())
		}
		c.links = nil
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// Close detaches the programs, unblocks a blocked ReadInto (it returns an
// error wrapping os.ErrClosed) and frees everything. It is idempotent.
func (c *Capture) Close() error {
	err := c.Stop()
	c.closeOnce.Do(func() {
		if c.ring != nil {
			c.ring.Close()
		}
		if c.perfReader != nil {
			c.perfReader.Close()
		}
		if c.coll != nil {
			c.coll.Close()
		}
		if c.truth != nil {
			c.truth.Close()
		}
	})
	return err
}

// PerfLostRecords returns the records the perf buffer reader was told the
// kernel could not write (PERF_RECORD_LOST). It never exceeds the
// programs' drop count and can lag it.
func (c *Capture) PerfLostRecords() uint64 { return c.perfLostRecords }

// Stats returns the accounting per CPU and kind. Call it after Stop, once
// the consumer has drained the reader.
func (c *Capture) Stats() (event.Stats, error) {
	st := event.Stats{TruthChecked: c.cfg.Truth}
	if c.coll == nil {
		return st, fmt.Errorf("slab capture: %w", os.ErrClosed)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return st, err
	}
	st.PerCPU = make([]event.CPUStats, ncpu)
	for cpu := range st.PerCPU {
		st.PerCPU[cpu].CPU = cpu
	}
	m := c.coll.Maps["kind_stats"]
	for _, k := range c.cfg.Kinds {
		var perCPU []slabSlabKindStats
		if err := m.Lookup(uint32(k), &perCPU); err != nil {
			return st, fmt.Errorf("reading the %s counters: %w", k, err)
		}
		for cpu, ks := range perCPU {
			if cpu >= ncpu {
				break
			}
			counts := event.Counts{
				Captured: c.seq.Captured(cpu, k),
				Lost:     ks.Drops,
				Attempts: ks.Attempts,
				SeqGaps:  c.seq.Gaps(cpu, k, ks.Attempts),
				Disorder: c.seq.Disorder(cpu, k),
			}
			if c.cfg.Truth {
				if ks.TruthErrors > 0 {
					return st, fmt.Errorf("cpu %d %s: the truth counter could not be read on %d hits", cpu, k, ks.TruthErrors)
				}
				if ks.Attempts > 0 {
					counts.Truth = ks.TruthLast - ks.TruthFirst + 1
				}
			}
			st.PerCPU[cpu].Kinds[k] = counts
		}
		if s, err := c.progs[k].Stats(); err == nil {
			st.ProbeMisses[k] = s.RecursionMisses
		}
	}
	return st, nil
}
