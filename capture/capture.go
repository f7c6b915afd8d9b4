// Package capture runs one measured capture end to end, the same way for
// every path: open the transport (relay module or eBPF), start a consumer
// that drains it (optionally late, to provoke loss), drive a workload,
// close the window, drain what is left and account for every event
// against the kernel's own count. The CLI and the tests go through Run;
// the benchmarks through Start and Session.Finish, which Run is made of,
// so that they time the workload alone.
package capture

import (
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/workloads"
)

// Path names a transport.
type Path string

// The capture paths.
const (
	PathRingbuf Path = "ringbuf"
	PathPerfbuf Path = "perfbuf"
	PathRelay   Path = "relay"
)

// RecordBytes is what one record takes in the path's buffer
// (event.RecordBytesIn).
func (p Path) RecordBytes() int { return event.RecordBytesIn(string(p)) }

// Config of one capture run.
type Config struct {
	Path   Path
	Attach bpftrace.Attach // eBPF paths only; the relay module hooks tracepoints
	Kinds  []event.Kind
	Truth  bool

	// Workload drives the events; Workload.Name "none" (or "") captures
	// whatever the system does for Workload.Duration.
	Workload workloads.Config

	// Buffer geometry. Relay: NumSubbufs sub-buffers of SubbufSize bytes
	// per CPU. Perf buffer: SubbufSize*NumSubbufs per CPU. Ring buffer:
	// RingbufSize if set, else SubbufSize*NumSubbufs*CPUs, rounded up to
	// a power of two.
	SubbufSize  int
	NumSubbufs  int
	RingbufSize int
	WakeupBytes int
	// PollInterval makes the eBPF paths' reader look on a timer, never
	// woken (bpftrace.Config.PollInterval).
	PollInterval time.Duration
	// Overwrite puts the relay channel in flight-recorder mode.
	Overwrite bool

	// ProbeTime measures the time spent inside the probes, in the kernel
	// (eBPF: BPF run-time statistics; relay: the module's clock around
	// its probes), at the cost of a clock read or two per hit.
	ProbeTime bool

	// ConsumerStall delays the consumer's first read, to provoke loss.
	ConsumerStall time.Duration
	// PinConsumer pins the consumer to ConsumerCPU and, unless
	// Workload.CPUs says otherwise, the workload to every other CPU, so
	// that the transport's cost is seen without the consumer competing
	// with the workload for a CPU.
	PinConsumer bool
	ConsumerCPU int
	// StackDepth, if > 0, takes each allocation's kernel stack, up to
	// that many frames, into a map of StackEntries stacks (0: the
	// default); eBPF paths only.
	StackDepth   int
	StackEntries int
	// Command, if set, is the workload: a program run when the window
	// opens, which closes when it exits (or at Workload.Duration, which
	// kills it), with Workload.Name none.
	Command []string
	// StartCommand, if set, starts Command's process instead of its
	// Start method (a view that follows the program's process tree forks
	// it from a thread it watches; it may also redirect its output).
	StartCommand func(*exec.Cmd) error
	// OnRecord, if set, sees every record the consumer reads (the
	// consumer goroutine calls it; it must not keep rec).
	OnRecord func(rec *event.Record)
}

// Validate checks cfg before anything is loaded; every error names the
// flag to change and the accepted range.
func (cfg *Config) Validate() error {
	if len(cfg.Command) > 0 && cfg.Workload.Name != "" && cfg.Workload.Name != "none" {
		return fmt.Errorf("--workload %s: -- CMD runs a program as the workload instead; give one or the other", cfg.Workload.Name)
	}
	switch cfg.Path {
	case PathRingbuf, PathPerfbuf:
		if cfg.SubbufSize <= 0 {
			return fmt.Errorf("--subbuf-size %d: want > 0 bytes", cfg.SubbufSize)
		}
		if cfg.NumSubbufs <= 0 {
			return fmt.Errorf("--subbufs %d: want >= 1", cfg.NumSubbufs)
		}
		if cfg.RingbufSize < 0 || (cfg.RingbufSize > 0 && cfg.Path != PathRingbuf) {
			return fmt.Errorf("--ringbuf-size %d: only for --path ringbuf, 1..%d bytes", cfg.RingbufSize, bpftrace.MaxRingbufSize)
		}
		if cfg.Overwrite {
			return fmt.Errorf("--overwrite: only for --path relay (BPF ring and perf buffers drop new records when full)")
		}
		bc := cfg.bpfConfig()
		if err := bc.Validate(); err != nil {
			return err
		}
	case PathRelay:
		if cfg.Attach != "" && cfg.Attach != bpftrace.AttachTracepoint {
			return fmt.Errorf("--attach %s: the relay module hooks tracepoints only; drop --attach or use --path ringbuf|perfbuf", cfg.Attach)
		}
		if cfg.RingbufSize != 0 {
			return fmt.Errorf("--ringbuf-size: only for --path ringbuf")
		}
		if cfg.WakeupBytes != 0 {
			return fmt.Errorf("--wakeup-bytes: only for --path ringbuf or perfbuf (relay wakes the reader once per sub-buffer)")
		}
		if cfg.PollInterval != 0 {
			return fmt.Errorf("--poll: only for --path ringbuf or perfbuf (relay wakes the reader once per sub-buffer)")
		}
		if err := relaytrace.CheckSizes(cfg.SubbufSize, cfg.NumSubbufs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--path %q: use ringbuf, perfbuf or relay", cfg.Path)
	}
	if cfg.ConsumerStall < 0 {
		return fmt.Errorf("--consumer-stall %v: want >= 0", cfg.ConsumerStall)
	}
	if cfg.PinConsumer {
		cpus, err := workloads.UsableCPUs()
		if err != nil {
			return err
		}
		if !slices.Contains(cpus, cfg.ConsumerCPU) {
			return fmt.Errorf("--consumer-cpu %d: want one of the CPUs this process may use, %v", cfg.ConsumerCPU, cpus)
		}
		if cfg.Workload.CPUs == nil && len(cpus) < 2 {
			return fmt.Errorf("--consumer-cpu %d: the workload needs another CPU, and only %v are usable", cfg.ConsumerCPU, cpus)
		}
	}
	if cfg.Workload.Name != "" && cfg.Workload.Name != "none" {
		return cfg.Workload.Validate()
	}
	if cfg.Workload.Ops != 0 || cfg.Workload.Rate != 0 || cfg.Workload.Hold != 0 {
		if len(cfg.Command) > 0 {
			return fmt.Errorf("-- CMD runs a program, not ops: drop --ops, --rate and --hold")
		}
		return fmt.Errorf("--workload none runs no ops: drop --ops, --rate and --hold, or name a workload")
	}
	if cfg.Workload.Duration <= 0 && len(cfg.Command) == 0 {
		return fmt.Errorf("--workload none: set --duration > 0 (how long to capture what the system does)")
	}
	return nil
}

// bpfConfig is the eBPF transport's configuration for cfg.
func (cfg *Config) bpfConfig() bpftrace.Config {
	ring := cfg.RingbufSize
	if ring == 0 {
		ring = cfg.SubbufSize * cfg.NumSubbufs * runtime.NumCPU()
	}
	return bpftrace.Config{
		Transport:        bpftrace.Transport(cfg.Path),
		Attach:           cfg.Attach,
		Kinds:            cfg.Kinds,
		Truth:            cfg.Truth,
		RingbufSize:      ring,
		PerCPUBufferSize: cfg.SubbufSize * cfg.NumSubbufs,
		WakeupBytes:      cfg.WakeupBytes,
		PollInterval:     cfg.PollInterval,
		ProbeTime:        cfg.ProbeTime,
		StackDepth:       cfg.StackDepth,
		StackEntries:     cfg.StackEntries,
	}
}

// Open opens the transport of cfg without a workload or consumer, for
// callers that consume records themselves (the benchmarks).
func Open(cfg Config) (event.Capture, error) {
	switch cfg.Path {
	case PathRingbuf, PathPerfbuf:
		return bpftrace.Open(cfg.bpfConfig())
	case PathRelay:
		return relaytrace.Open(relaytrace.Config{
			SubbufSize:   cfg.SubbufSize,
			NumSubbufs:   cfg.NumSubbufs,
			Overwrite:    cfg.Overwrite,
			Kinds:        cfg.Kinds,
			Truth:        cfg.Truth,
			ProbeTime:    cfg.ProbeTime,
			StackDepth:   cfg.StackDepth,
			StackEntries: cmp.Or(cfg.StackEntries, bpftrace.DefaultStackEntries),
		})
	}
	return nil, fmt.Errorf("--path %q: use ringbuf, perfbuf or relay", cfg.Path)
}

// ProbeTimer is a capture that measures the time spent inside its probes.
type ProbeTimer interface {
	// ProbeTime returns how often the probes ran and their total time.
	ProbeTime() (runs uint64, total time.Duration, err error)
}

// Session is a capture in progress: the transport is open and the
// consumer is draining it. Start it, drive the events, then Finish.
type Session struct {
	cfg  Config
	c    event.Capture
	cons *consumer
	res  Result
}

// Start validates cfg, opens the transport and starts the consumer.
// Benchmarks use it to time the workload alone; Run wraps it.
func Start(cfg Config) (*Session, error) {
	res := Result{Path: cfg.Path, Workload: cfg.Workload.Name, Threads: cfg.Workload.Threads,
		SubbufSize: cfg.SubbufSize, NumSubbufs: cfg.NumSubbufs, WakeupBytes: cfg.WakeupBytes, PollNs: cfg.PollInterval.Nanoseconds(),
		CPUs: runtime.NumCPU(), TruthChecked: cfg.Truth}
	if res.Workload == "" {
		res.Workload = "none"
	}
	if len(cfg.Command) > 0 {
		res.Workload, res.Command, res.Threads = "command", strings.Join(cfg.Command, " "), 0
	}
	if cfg.Path != PathRelay {
		res.Attach = string(cfg.Attach)
	} else {
		res.Attach = "tracepoint"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PinConsumer {
		res.ConsumerCPU = cfg.ConsumerCPU
		if cfg.Workload.CPUs == nil {
			cpus, _ := workloads.UsableCPUs()
			cfg.Workload.CPUs = slices.DeleteFunc(cpus, func(c int) bool { return c == cfg.ConsumerCPU })
		}
	} else {
		res.ConsumerCPU = -1
	}
	c, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	res.BufferBytes = c.BufferBytes()
	cons, err := startConsumer(c, cfg, cfg.OnRecord)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Session{cfg: cfg, c: c, res: res, cons: cons}, nil
}

// Finish closes the capture window, lets the consumer drain what was
// written, and accounts for every event. wr describes the workload that
// ran since Start (zero for none). The session is closed afterwards.
func (s *Session) Finish(wr workloads.Result) (Result, error) {
	defer s.Close()
	res := s.res
	res.Ops = wr.Ops
	res.DurationNs = wr.Elapsed.Nanoseconds()
	if secs := wr.Elapsed.Seconds(); secs > 0 && wr.Ops > 0 {
		res.AchievedOpsPerSec = float64(wr.Ops) / secs
	}
	if rate := s.cfg.Workload.Rate; rate > 0 && wr.Ops > 0 {
		res.TargetOpsPerSec = rate
		res.LatePercent = 100 * float64(wr.Late) / float64(wr.Ops)
	}
	stopErr := s.c.Stop()
	if pt, ok := s.c.(ProbeTimer); ok && s.cfg.ProbeTime && stopErr == nil {
		runs, total, err := pt.ProbeTime()
		if err != nil {
			return res, err
		}
		res.ProbeRuns, res.ProbeNs = runs, uint64(total.Nanoseconds())
	}
	s.cons.finish()
	if stopErr != nil {
		return res, fmt.Errorf("stopping the capture: %w", stopErr)
	}
	if s.cons.err != nil {
		return res, fmt.Errorf("consumer: %w", s.cons.err)
	}
	res.ConsumerCPUNs = s.cons.cpuNs
	res.CapturedBytes = s.cons.records * uint64(event.RecordSize)
	res.WrittenBytes = s.cons.records * uint64(s.cfg.Path.RecordBytes())
	res.Lag = s.cons.lag.Result()
	if br, ok := s.c.(interface{ MaxBacklogBytes() uint64 }); ok {
		res.MaxBacklogBytes = br.MaxBacklogBytes()
	}
	if wr, ok := s.c.(interface{ Wakeups() uint64 }); ok {
		res.Wakeups = wr.Wakeups()
	}
	st, err := s.c.Stats()
	if err != nil {
		return res, err
	}
	res.fill(st, s.cfg)
	return res, nil
}

// Publish makes what the transport holds back readable now, where it
// holds records back: relay closes its open sub-buffers (which a reader
// otherwise sees only once full). It reports whether there was anything
// to do; the consumer then needs a moment to read them.
func (s *Session) Publish() (bool, error) {
	p, ok := s.c.(interface{ Publish() error })
	if !ok {
		return false, nil
	}
	return true, p.Publish()
}

// RecursionMisses returns, per kind, how often the kernel has skipped the
// probe for recursion so far, where the path keeps such a count (eBPF);
// ok is false where it does not (relay's probe is never skipped).
func (s *Session) RecursionMisses() (m [event.NumKinds]uint64, ok bool, err error) {
	r, ok := s.c.(interface {
		RecursionMisses() ([event.NumKinds]uint64, error)
	})
	if !ok {
		return m, false, nil
	}
	m, err = r.RecursionMisses()
	return m, true, err
}

// TakeBacklogBytes returns the most bytes one buffer held unread when the
// consumer took a record since the last call (the ring buffer: all of
// it; the perf buffer: one CPU's), and starts a new window. ok is false
// where the reader does not see its backlog as it reads (relay, whose
// module keeps the largest only, and cilium/ebpf's readers).
func (s *Session) TakeBacklogBytes() (b uint64, ok bool) {
	t, ok := s.c.(interface{ TakeBacklogBytes() (uint64, bool) })
	if !ok {
		return 0, false
	}
	return t.TakeBacklogBytes()
}

// StackFrames returns the frames (kernel addresses, innermost first) of
// the stack a record's StackID names (event.FlagStack).
func (s *Session) StackFrames(id uint32) ([]uint64, error) {
	f, ok := s.c.(interface {
		StackFrames(uint32) ([]uint64, error)
	})
	if !ok {
		return nil, fmt.Errorf("path %s takes no stacks", s.cfg.Path)
	}
	return f.StackFrames(id)
}

// Workload is the workload to drive for this session: the configured one,
// pinned away from the consumer's CPU when the consumer is pinned.
func (s *Session) Workload() workloads.Config { return s.cfg.Workload }

// Close detaches and frees everything; it is safe after Finish and on
// error paths, and unblocks the consumer.
func (s *Session) Close() error {
	err := s.c.Close()
	<-s.cons.done
	return err
}

// Run performs one capture and returns its accounting. The returned error
// is about running the capture; a broken accounting rule is reported in
// Result.Verified and Result.VerifyError.
func Run(ctx context.Context, cfg Config) (Result, error) {
	s, err := Start(cfg)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	wr, werr := s.Drive(ctx)
	res, err := s.Finish(wr)
	if werr != nil {
		return res, fmt.Errorf("workload %s: %w", res.Workload, werr)
	}
	return res, err
}

// Drive runs the session's workload (its set-up excluded from the
// result's time): its command until it exits (or Workload.Duration ends
// it), else the synthetic workload, or, for workload none, a wait of
// Workload.Duration while the system makes the events.
func (s *Session) Drive(ctx context.Context) (workloads.Result, error) {
	if len(s.cfg.Command) > 0 {
		res, code, err := runCommand(ctx, s.cfg.Command, s.cfg.Workload.Duration, s.cfg.StartCommand)
		s.res.CommandExit = code
		return res, err
	}
	cfg := s.Workload()
	if cfg.Name != "" && cfg.Name != "none" {
		return workloads.Run(ctx, cfg)
	}
	start := time.Now()
	var err error
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
		err = ctx.Err()
	}
	return workloads.Result{Elapsed: time.Since(start)}, err
}
