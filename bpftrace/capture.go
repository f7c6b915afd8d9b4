package bpftrace

import (
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
)

// Capture is a running eBPF capture. It implements event.Capture.
// ReadInto and Flush are called from one consumer goroutine; SetDeadline,
// Stop and Close may be called from any goroutine, also while ReadInto
// blocks. Stats is final once the consumer has drained the reader after
// Stop, and stays readable after Close.
type Capture struct {
	cfg        Config
	coll       *ebpf.Collection
	progs      map[event.Kind]*ebpf.Program
	entryProgs map[event.Kind]*ebpf.Program // fentry mode: allocations' entry stamps
	funcs      map[event.Kind]string        // function probes: the allocator function of each kind
	links      []link.Link
	truth      *truth.Counter
	foreign    *truth.Foreign // programs of others on the tracepoints
	// idleAtAttach and idleAtStop are the truth counter's idle times
	// when the programs were attached and once they were detached.
	idleAtAttach, idleAtStop *truthIdle
	ring                     *ringbuf.Reader // Config.CiliumReader
	perfReader               *perf.Reader    // Config.CiliumReader
	own                      ownReader       // slabbench's reader of the mapping otherwise
	bufBytes                 int
	runStats                 io.Closer // BPF_ENABLE_STATS while open (Config.ProbeTime)

	// deadline is the consumer's deadline (unix ns, 0: none); every
	// SetDeadline bumps deadlineGen so that ReadInto re-arms the library
	// reader's own deadline, which only its reading goroutine may set.
	deadline    atomic.Int64
	deadlineGen atomic.Uint64

	// consumer state, owned by the goroutine calling ReadInto
	ringRec  ringbuf.Record
	perfRec  perf.Record
	seq      event.SeqTracker
	armedGen uint64
	// maxBacklog is the most bytes the ring buffer held unread after a
	// read (producer - consumer position).
	maxBacklog uint64
	// perfLostRecords counts what PERF_RECORD_LOST samples reported: the
	// kernel's own count of refused perf writes. It lags the programs'
	// drop counters, since the kernel reports loss only once a later
	// sample fits.
	perfLostRecords uint64

	// final holds the kernel-side counters read at Close.
	final     *kernelCounts
	stopOnce  sync.Once
	stopErr   error
	closeOnce sync.Once
}

var _ event.Capture = (*Capture)(nil)

// ownReader is slabbench's reader of a ring or perf buffer's mapping.
type ownReader interface {
	// read decodes the next record into rec, with the mapping leased
	// (mapped.lease) so that Close does not unmap it meanwhile;
	// unlease lets the lease go, as the reader must when read fails.
	read(rec *event.Record) error
	unlease()
	setDeadline(t time.Time)
	flush() error
	close() error
	// backlog is the most written-but-unread bytes seen; wakeups the
	// polls that returned with data ready.
	backlog() uint64
	wakeups() uint64
	// waits is how often the reader waited for a record.
	waits() uint64
	// takeBacklog is the most written-but-unread bytes seen since its
	// last call; any goroutine may call it.
	takeBacklog() uint64
}

var (
	_ ownReader = (*ringReader)(nil)
	_ ownReader = (*perfReader)(nil)
)

// BufferBytes returns the buffer memory in bytes: the ring buffer, or the
// per-CPU perf buffers (data pages) over all possible CPUs.
func (c *Capture) BufferBytes() int { return c.bufBytes }

// Stop closes the capture window: it detaches the programs, makes any
// run the kernel still makes count and write nothing, and waits for the
// runs under way to end. Records already written stay readable. It is
// idempotent.
func (c *Capture) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		attached := len(c.links) > 0
		// In the reverse order of attaching: entry programs (fentry
		// mode) before the exit programs whose stamps they push.
		for _, l := range slices.Backward(c.links) {
			errs = append(errs, l.Close())
		}
		c.links = nil
		if attached {
			// A run the kernel still makes after the detach does
			// nothing; once those already under way end, the counters
			// are final. (Set before the detach, the flag would turn
			// away hits the probe-time statistics still count.)
			if v := c.coll.Variables["stopped"]; v != nil {
				errs = append(errs, v.Set(uint32(1)))
			}
			waitForRunningPrograms()
			errs = append(errs, c.noteForeignPrograms())
			var err error
			c.idleAtStop, err = c.readTruthIdle()
			errs = append(errs, err)
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// Close detaches the programs, unblocks a blocked ReadInto (it returns an
// error wrapping os.ErrClosed) and frees everything; Stats then returns the
// counters as they were at Close. It is idempotent.
func (c *Capture) Close() error {
	err := c.Stop()
	c.closeOnce.Do(func() {
		if c.coll != nil {
			if kc, kerr := c.readKernelCounts(); kerr == nil {
				c.final = &kc
			} else {
				err = errors.Join(err, kerr)
			}
		}
		if c.ring != nil {
			c.ring.Close()
		}
		if c.own != nil {
			err = errors.Join(err, c.own.close())
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
		if c.runStats != nil {
			c.runStats.Close()
		}
	})
	return err
}
