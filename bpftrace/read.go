package bpftrace

import (
	"errors"
	"os"
	"time"

	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/slabbench/slabbench/event"
)

// deadlineSlice bounds how long the library reader blocks before ReadInto
// looks at a deadline another goroutine set: cilium/ebpf's SetDeadline
// takes the lock its ReadInto holds while waiting, so only the reading
// goroutine can set it.
const deadlineSlice = 100 * time.Millisecond

// ringbufHeaderSize is BPF_RINGBUF_HDR_SZ, the header before every record.
const ringbufHeaderSize = 8

// ReadInto blocks until a record is available and decodes it into rec.
// It does not allocate once the first record has been read.
func (c *Capture) ReadInto(rec *event.Record) error {
	if c.own != nil {
		if err := c.own.read(rec); err != nil {
			c.own.unlease()
			return err
		}
		c.seq.Observe(rec)
		return nil
	}
	for {
		if g := c.deadlineGen.Load(); g != c.armedGen {
			c.armedGen = g
			c.rearm()
		}
		raw, err := c.next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Every pending record has been returned: the library's
			// slice ended, and perhaps ours.
			if !c.rearm() {
				return os.ErrDeadlineExceeded
			}
			continue
		}
		if err != nil {
			return err
		}
		if raw == nil {
			continue // a perf buffer loss notice, counted
		}
		if err := rec.Decode(raw); err != nil {
			return err
		}
		c.seq.Observe(rec)
		return nil
	}
}

// next returns the next raw sample of cilium/ebpf's reader, or nil for a
// perf loss notice.
func (c *Capture) next() ([]byte, error) {
	if c.ring != nil {
		if err := c.ring.ReadInto(&c.ringRec); err != nil {
			return nil, readerError(err)
		}
		// What was still unread behind this record, plus the record.
		if b := uint64(c.ringRec.Remaining + len(c.ringRec.RawSample) + ringbufHeaderSize); b > c.maxBacklog {
			c.maxBacklog = b
		}
		return c.ringRec.RawSample, nil
	}
	if err := c.perfReader.ReadInto(&c.perfRec); err != nil {
		return nil, readerError(err)
	}
	if c.perfRec.LostSamples > 0 {
		c.perfLostRecords += c.perfRec.LostSamples
		return nil, nil
	}
	return c.perfRec.RawSample, nil
}

// rearm sets the library reader's deadline to the end of the next slice,
// or to the consumer's deadline if that comes first (also when it has
// passed, so that the library returns what is pending and then
// os.ErrDeadlineExceeded). It reports false when the consumer's deadline
// has passed.
func (c *Capture) rearm() bool {
	now := time.Now()
	until := now.Add(deadlineSlice)
	if d := c.deadline.Load(); d != 0 && d < until.UnixNano() {
		until = time.Unix(0, d)
	}
	if c.ring != nil {
		c.ring.SetDeadline(until)
	} else {
		c.perfReader.SetDeadline(until)
	}
	return until.After(now)
}

func readerError(err error) error {
	if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, perf.ErrFlushed) {
		return event.ErrFlushed
	}
	return err
}

// SetDeadline makes ReadInto return os.ErrDeadlineExceeded once t has
// passed and every pending record has been returned; the zero time removes
// the deadline. A ReadInto blocked in another goroutine sees it at once
// (the ring buffer's own reader) or within 100 ms (cilium/ebpf's readers).
func (c *Capture) SetDeadline(t time.Time) {
	if c.own != nil {
		c.own.setDeadline(t)
		return
	}
	if t.IsZero() {
		c.deadline.Store(0)
	} else {
		c.deadline.Store(t.UnixNano())
	}
	c.deadlineGen.Add(1)
}

// Flush makes ReadInto return every pending record, then event.ErrFlushed.
func (c *Capture) Flush() error {
	if c.own != nil {
		return c.own.flush()
	}
	if c.ring != nil {
		return c.ring.Flush()
	}
	return c.perfReader.Flush()
}
