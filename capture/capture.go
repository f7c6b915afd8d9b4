// Package capture runs one measured capture end to end, the same way for
// every path: open the transport (relay module or eBPF), start a consumer
// that drains it (optionally late, to provoke loss), drive a workload,
// close the window, drain what is left and account for every event
// against the kernel's own count. The CLI, the tests and the benchmarks
// all go through Run.
package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

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
	// Overwrite puts the relay channel in flight-recorder mode.
	Overwrite bool

	// ConsumerStall delays the consumer's first read, to provoke loss.
	ConsumerStall time.Duration
	// OnRecord, if set, sees every record the consumer reads (the
	// consumer goroutine calls it; it must not keep rec).
	OnRecord func(rec *event.Record)
}

// KindResult is the accounting of one kind.
type KindResult struct {
	Captured uint64 `json:"captured"`
	Lost     uint64 `json:"lost"`
	Truth    uint64 `json:"truth"`
	Attempts uint64 `json:"attempts"`
	Missed   uint64 `json:"missed"`
	SeqGaps  uint64 `json:"seq_gaps"`
}

// Result is what one capture measured. Its JSON form is the contract of
// `slabbench capture --json`.
type Result struct {
	Path          Path                  `json:"path"`
	Attach        string                `json:"attach"`
	Workload      string                `json:"workload"`
	Threads       int                   `json:"threads"`
	Ops           int64                 `json:"ops"`
	DurationNs    int64                 `json:"duration_ns"`
	CPUs          int                   `json:"cpus"`
	BufferBytes   int                   `json:"buffer_bytes"`
	SubbufSize    int                   `json:"subbuf_size"`
	NumSubbufs    int                   `json:"subbufs"`
	WakeupBytes   int                   `json:"wakeup_bytes"`
	Captured      uint64                `json:"captured"`
	Lost          uint64                `json:"lost"`
	Truth         uint64                `json:"truth"`
	TruthChecked  bool                  `json:"truth_checked"`
	Kinds         map[string]KindResult `json:"kinds"`
	ProbeMisses   uint64                `json:"probe_misses"`
	SeqGaps       uint64                `json:"seq_gaps"`
	MaxBacklog    int                   `json:"max_backlog,omitempty"`
	ConsumerCPUNs int64                 `json:"consumer_cpu_ns"`
	CapturedBytes uint64                `json:"captured_bytes"`
	// Reference says what Truth is compared with: "tracepoint hits" (the
	// kernel's counting perf events), or "own attempts" for function
	// probes, which see calls, not tracepoint hits.
	Reference string `json:"reference"`
	// Verified is true when every accounting rule held (event.Stats.Verify).
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verify_error,omitempty"`

	Stats event.Stats `json:"-"`
}

// Validate checks cfg before anything is loaded; every error names the
// flag to change and the accepted range.
func (cfg *Config) Validate() error {
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
		if err := relaytrace.CheckSizes(cfg.SubbufSize, cfg.NumSubbufs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--path %q: use ringbuf, perfbuf or relay", cfg.Path)
	}
	if cfg.ConsumerStall < 0 {
		return fmt.Errorf("--consumer-stall %v: want >= 0", cfg.ConsumerStall)
	}
	if cfg.Workload.Name != "" && cfg.Workload.Name != "none" {
		return cfg.Workload.Validate()
	}
	if cfg.Workload.Duration <= 0 {
		return fmt.Errorf("--workload none: set --duration > 0 (how long to capture what the system does)")
	}
	if cfg.Workload.Ops != 0 || cfg.Workload.Rate != 0 {
		return fmt.Errorf("--workload none runs no ops: drop --ops and --rate, or name a workload")
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
			SubbufSize: cfg.SubbufSize,
			NumSubbufs: cfg.NumSubbufs,
			Overwrite:  cfg.Overwrite,
			Kinds:      cfg.Kinds,
			Truth:      cfg.Truth,
		})
	}
	return nil, fmt.Errorf("--path %q: use ringbuf, perfbuf or relay", cfg.Path)
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
		SubbufSize: cfg.SubbufSize, NumSubbufs: cfg.NumSubbufs, WakeupBytes: cfg.WakeupBytes,
		CPUs: runtime.NumCPU(), TruthChecked: cfg.Truth}
	if res.Workload == "" {
		res.Workload = "none"
	}
	if cfg.Path != PathRelay {
		res.Attach = string(cfg.Attach)
	} else {
		res.Attach = "tracepoint"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	res.BufferBytes = c.BufferBytes()
	return &Session{cfg: cfg, c: c, res: res, cons: startConsumer(c, cfg.ConsumerStall, cfg.OnRecord)}, nil
}

// Finish closes the capture window, lets the consumer drain what was
// written, and accounts for every event. ops and elapsed describe the
// workload that ran since Start. The session is closed afterwards.
func (s *Session) Finish(ops int64, elapsed time.Duration) (Result, error) {
	defer s.Close()
	res := s.res
	res.Ops = ops
	res.DurationNs = elapsed.Nanoseconds()
	stopErr := s.c.Stop()
	s.cons.finish()
	if stopErr != nil {
		return res, fmt.Errorf("stopping the capture: %w", stopErr)
	}
	if s.cons.err != nil {
		return res, fmt.Errorf("consumer: %w", s.cons.err)
	}
	res.ConsumerCPUNs = s.cons.cpuNs
	res.CapturedBytes = s.cons.records * uint64(event.RecordSize)
	st, err := s.c.Stats()
	if err != nil {
		return res, err
	}
	res.fill(st, s.cfg)
	return res, nil
}

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
	start := time.Now()
	var ops int64
	var werr error
	var elapsed time.Duration
	if s.res.Workload == "none" {
		select {
		case <-time.After(cfg.Workload.Duration):
		case <-ctx.Done():
			werr = ctx.Err()
		}
		elapsed = time.Since(start)
	} else {
		var wr workloads.Result
		wr, werr = workloads.Run(ctx, cfg.Workload)
		ops, elapsed = wr.Ops, wr.Elapsed // set-up excluded
	}
	res, err := s.Finish(ops, elapsed)
	if werr != nil {
		return res, fmt.Errorf("workload %s: %w", res.Workload, werr)
	}
	return res, err
}

func (res *Result) fill(st event.Stats, cfg Config) {
	res.Stats = st
	res.Kinds = map[string]KindResult{}
	for _, k := range cfg.Kinds {
		kc := st.Kind(k)
		res.Kinds[k.String()] = KindResult{Captured: kc.Captured, Lost: kc.Lost, Truth: kc.Truth,
			Attempts: kc.Attempts, Missed: kc.Missed, SeqGaps: kc.SeqGaps}
		res.Captured += kc.Captured
		res.Lost += kc.Lost
		res.Truth += kc.Truth
		res.SeqGaps += kc.SeqGaps
		res.ProbeMisses += st.ProbeMisses[k]
	}
	for _, cs := range st.PerCPU {
		res.MaxBacklog = max(res.MaxBacklog, cs.MaxBacklog)
	}
	switch {
	case cfg.Attach.IsFunctionProbe() && cfg.Path != PathRelay:
		res.Reference = "own attempts (function calls, not tracepoint hits)"
	case cfg.Truth:
		res.Reference = "tracepoint hits (kernel counting perf events)"
	default:
		res.Reference = "own attempts (truth counter off)"
	}
	if err := st.Verify(); err != nil {
		res.VerifyError = err.Error()
		if cfg.Truth {
			res.VerifyError += " (a mismatch is a bug, or another BPF program on the kmem tracepoints, such as a second capture, suppressing perf counting)"
		}
	} else {
		res.Verified = true
	}
}

// consumer drains a capture on a goroutine locked to one OS thread, so its
// CPU time can be read from that thread alone.
type consumer struct {
	c       event.Capture
	done    chan struct{}
	records uint64
	cpuNs   int64
	err     error
	once    sync.Once
}

func startConsumer(c event.Capture, stall time.Duration, onRecord func(*event.Record)) *consumer {
	cons := &consumer{c: c, done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		defer close(cons.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before := threadCPUTime()
		close(started)
		if stall > 0 {
			time.Sleep(stall)
		}
		var rec event.Record
		for {
			err := c.ReadInto(&rec)
			if err != nil {
				if !errors.Is(err, event.ErrFlushed) && !errors.Is(err, os.ErrDeadlineExceeded) {
					cons.err = err
				}
				break
			}
			cons.records++
			if onRecord != nil {
				onRecord(&rec)
			}
		}
		cons.cpuNs = threadCPUTime() - before
	}()
	<-started
	return cons
}

// finish asks the reader to return everything pending and waits for the
// consumer to end. Call it after Stop.
func (cons *consumer) finish() {
	cons.once.Do(func() {
		if err := cons.c.Flush(); err != nil {
			// A reader that cannot flush still returns pending records
			// before a past deadline.
			cons.c.SetDeadline(time.Now())
		}
		<-cons.done
	})
}

func threadCPUTime() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
