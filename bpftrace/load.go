package bpftrace

import (
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
	"golang.org/x/sys/unix"
)

var truthMapNames = map[event.Kind]string{
	event.KindKmalloc:        "truth_kmalloc",
	event.KindKfree:          "truth_kfree",
	event.KindKmemCacheAlloc: "truth_kmem_cache_alloc",
	event.KindKmemCacheFree:  "truth_kmem_cache_free",
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

	c := &Capture{cfg: cfg, progs: map[event.Kind]*ebpf.Program{}, entryProgs: map[event.Kind]*ebpf.Program{}}
	c.deadlineGen.Store(1) // the first ReadInto arms the reader's deadline slice
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	if cfg.Attach.IsFunctionProbe() {
		if c.funcs, err = kernelFunctions(cfg.Kinds); err != nil {
			return nil, err
		}
	}
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
		if c.truth, err = c.openTruth(); err != nil {
			return nil, err
		}
	}

	c.coll, err = ebpf.NewCollection(spec)
	if err != nil {
		return nil, loadError(cfg.Attach, err)
	}
	for _, k := range cfg.Kinds {
		c.progs[k] = c.coll.Programs[programNames[cfg.Attach][k]]
		if name := cfg.entryProgram(k); name != "" {
			c.entryProgs[k] = c.coll.Programs[name]
		}
	}
	if c.truth != nil {
		if err := c.fillTruthMaps(); err != nil {
			return nil, err
		}
	}

	if err := c.openReader(); err != nil {
		return nil, err
	}

	if cfg.ProbeTime {
		if c.runStats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
			return nil, fmt.Errorf("turning on BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+): %w", err)
		}
	}
	if !cfg.Detached {
		if err := c.attach(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// openReader opens the reader of the transport's buffer: slabbench's own
// reader of the mapping, or cilium/ebpf's (Config.CiliumReader).
func (c *Capture) openReader() error {
	var err error
	switch c.cfg.Transport {
	case Ringbuf:
		m := c.coll.Maps["events_ringbuf"]
		if c.cfg.CiliumReader {
			if c.ring, err = ringbuf.NewReader(m); err != nil {
				return fmt.Errorf("ring buffer reader: %w", err)
			}
			c.bufBytes = c.ring.BufferSize()
		} else {
			rr, err := newRingReader(m.FD(), int(m.MaxEntries()))
			if err != nil {
				return err
			}
			rr.waiter.Interval = c.cfg.PollInterval
			c.own = rr
			c.bufBytes = int(m.MaxEntries())
		}
	case Perfbuf:
		m := c.coll.Maps["events_perfbuf"]
		cpus, err := ebpf.PossibleCPU()
		if err != nil {
			return err
		}
		if c.cfg.CiliumReader {
			c.perfReader, err = perf.NewReaderWithOptions(m, c.cfg.PerCPUBufferSize, perf.ReaderOptions{Watermark: c.cfg.WakeupBytes})
			if err != nil {
				return fmt.Errorf("perf buffer reader: %w", err)
			}
			c.bufBytes = c.perfReader.BufferSize() * cpus
		} else {
			wakeup := c.cfg.WakeupBytes
			if c.cfg.PollInterval > 0 {
				// The least the kernel allows: a wakeup per buffer written.
				wakeup = c.cfg.PerCPUBufferSize
			}
			pr, err := newPerfReader(m, c.cfg.PerCPUBufferSize, wakeup)
			if err != nil {
				return err
			}
			pr.waiter.Interval = c.cfg.PollInterval
			c.own = pr
			c.bufBytes = pr.bufferSize() * cpus
		}
	}
	return nil
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
		// 1/16 of the batch: a look at the pending bytes every few
		// records, a wakeup at most 1/16 of the batch per CPU late.
		"wakeup_query_bytes": uint64(cfg.WakeupBytes / 16),
		"wakeup_never":       boolToU32(cfg.PollInterval > 0),
		"empty_probe":        boolToU32(cfg.Empty),
		"probe_part":         uint32(cfg.Part),
		"stacks_on":          boolToU32(cfg.StackDepth > 0),
	}
	for name, v := range consts {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("setting %s in the BPF object: %w", name, err)
		}
	}
	if cfg.StackDepth > 0 {
		stacks := spec.Maps["stacks"]
		stacks.ValueSize = uint32(8 * cfg.StackDepth)
		stacks.MaxEntries = uint32(cmp.Or(cfg.StackEntries, DefaultStackEntries))
	}
	if cfg.Transport == Ringbuf {
		spec.Maps["events_ringbuf"].MaxEntries = uint32(RoundRingbufSize(cfg.RingbufSize))
	} else {
		spec.Maps["events_ringbuf"].MaxEntries = uint32(os.Getpagesize())
	}

	wanted := map[string]event.Kind{}
	for _, k := range cfg.Kinds {
		wanted[programNames[cfg.Attach][k]] = k
		if name := cfg.entryProgram(k); name != "" {
			wanted[name] = k
		}
	}
	for name, ps := range spec.Programs {
		k, ok := wanted[name]
		if !ok {
			delete(spec.Programs, name)
			continue
		}
		if cfg.Attach == AttachFentry {
			ps.AttachTo = c.funcs[k]
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

// openTruth opens the kernel's own count of what the programs see:
// tracepoint hits, or for function probes, calls of the functions they
// attach to (counting kprobes on the same functions).
func (c *Capture) openTruth() (*truth.Counter, error) {
	if !c.cfg.Attach.IsFunctionProbe() {
		return truth.Open(c.cfg.Kinds)
	}
	return truth.OpenKprobes(c.cfg.Kinds, c.funcs)
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
