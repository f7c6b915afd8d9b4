package relaytrace

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// consume tells the module that cpu's sub-buffers before next are read;
// the answer says whether an overwrite consumed them first.
func (c *Capture) consume(cpu int, next uint64) (stale bool, err error) {
	c.cmd = append(c.cmd[:0], "consumed "...)
	c.cmd = strconv.AppendInt(c.cmd, int64(cpu), 10)
	c.cmd = append(c.cmd, ' ')
	c.cmd = strconv.AppendUint(c.cmd, next, 10)
	err = c.command(c.cmd)
	if errors.Is(err, unix.ESTALE) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("relay consumed count of cpu %d: %w", cpu, err)
	}
	return false, nil
}

// step tries every CPU once for a record.
func (c *Capture) step(rec *event.Record) (bool, error) {
	for i := range c.cpus {
		idx := c.rr + i
		if idx >= len(c.cpus) {
			idx -= len(c.cpus)
		}
		cb := c.cpus[idx]
		ok, err := readCPU(cb.w, rec, cb.consume)
		if err != nil {
			return false, err
		}
		if ok {
			c.tracker.Observe(rec)
			c.rr, c.reading = idx, cb
			return true, nil
		}
	}
	return false, nil
}

// ReadInto returns the next record in rec. It blocks until one is
// available, the deadline passes (os.ErrDeadlineExceeded), a Flush has
// returned every record pending at its call (event.ErrFlushed), or the
// capture is closed (an error wrapping os.ErrClosed). Records of one CPU
// come in order; CPUs are interleaved by sub-buffer.
func (c *Capture) ReadInto(rec *event.Record) error {
	c.lease()
	// The next record of the sub-buffer being read, without a call per
	// layer: under the VM each costs about what decoding does
	// (BenchmarkConsumer).
	var lost *cpuBuf
	if cb := c.reading; cb != nil && cb.w.open && cb.w.off < cb.w.end && !c.waiter.Closed() {
		st, err := cb.w.record(rec)
		if err == nil && st == StepRecord {
			c.tracker.Observe(rec)
			return nil
		}
		if err == nil { // StepLost: overwritten while read
			lost = cb
		}
	}
	// A sub-buffer's end: let Close and Stats in.
	c.unlease()
	c.lease()
	err := c.readLocked(rec, lost)
	if err != nil {
		c.unlease()
	}
	return err
}

// lease takes mu for the reading goroutine, unless it holds it.
func (c *Capture) lease() {
	if !c.leased {
		c.mu.Lock()
		c.leased = true
	}
}

// unlease lets go of mu, and frees the mappings if Close could not
// because the reader held it.
func (c *Capture) unlease() {
	if !c.leased {
		return
	}
	c.leased = false
	c.mu.Unlock()
	if c.waiter.Closed() {
		c.mu.Lock()
		c.free()
		c.mu.Unlock()
	}
}

// readLocked is ReadInto past the fast path: the next sub-buffer of some
// CPU, or a wait for one; first, as readCPU does, it tells the module
// about the sub-buffer of lost that the fast path found overwritten.
// The reader holds its lease.
func (c *Capture) readLocked(rec *event.Record, lost *cpuBuf) error {
	for {
		if c.waiter.Closed() {
			return fmt.Errorf("relay capture: %w", os.ErrClosed)
		}
		if lost != nil {
			if _, err := lost.consume(lost.w.Next()); err != nil {
				return err
			}
			lost = nil
		}
		ok, err := c.step(rec)
		if ok || err != nil {
			return err
		}
		if err := c.waiter.Empty(c.mu.Unlock, c.mu.Lock); err != nil {
			return err
		}
	}
}

// SetDeadline makes ReadInto return os.ErrDeadlineExceeded once t has
// passed and no record is pending; the zero time removes the deadline.
func (c *Capture) SetDeadline(t time.Time) { c.waiter.SetDeadline(t) }

// Wakeups returns how often the reader woke up from a poll with a CPU's
// relay file readable. Read it once the consumer has stopped.
func (c *Capture) Wakeups() uint64 { return c.waiter.Wakeups }

// Waits returns how often the reader waited for a record; it counts them
// all (true). Only the reading goroutine may call it.
func (c *Capture) Waits() (uint64, bool) { return c.waiter.Waits, true }

// Flush closes the open sub-buffer of every CPU, so that every record
// written so far becomes readable, and makes ReadInto return
// event.ErrFlushed once it has returned them.
func (c *Capture) Flush() error {
	if c.waiter.Closed() {
		return fmt.Errorf("relay capture: %w", os.ErrClosed)
	}
	if err := c.command([]byte("flush")); err != nil {
		return fmt.Errorf("relay flush: %w", err)
	}
	return c.waiter.Flush()
}

// Publish closes the open sub-buffer of every CPU that holds records, so
// that the reader sees them now rather than when the sub-buffer fills; a
// live view calls it once per interval, at the cost of the closed
// sub-buffers' unused ends. Unlike Flush it does not end the reading.
func (c *Capture) Publish() error {
	if c.waiter.Closed() {
		return fmt.Errorf("relay capture: %w", os.ErrClosed)
	}
	if err := c.command([]byte("flush")); err != nil {
		return fmt.Errorf("relay flush: %w", err)
	}
	return nil
}
