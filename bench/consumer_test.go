package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/workloads"
)

// Consumer benchmarks: one op is one record read through the capture's
// event.Reader (ReadInto, sequence tracking included), with the buffer
// filled beforehand (untimed), so ns/op is the reader's cost per event.
// The copy row is the floor: the same records copied out and decoded.
// A lag=stamped row adds what the capture's consumer does with each record
// besides reading it: its delivery lag (capture.LagRecorder).

const consumerSubbuf, consumerSubbufs = 64 << 10, 16

func BenchmarkConsumer(b *testing.B) {
	b.Run("reader=copy", benchCopy)
	b.Run("reader=relay", benchRelayReader)
	b.Run("reader=ringbuf-direct", func(b *testing.B) { benchBPFReader(b, bpftrace.Ringbuf, false, false) })
	b.Run("reader=ringbuf-cilium", func(b *testing.B) { benchBPFReader(b, bpftrace.Ringbuf, true, false) })
	b.Run("reader=perfbuf-direct", func(b *testing.B) { benchBPFReader(b, bpftrace.Perfbuf, false, false) })
	b.Run("reader=perfbuf-cilium", func(b *testing.B) { benchBPFReader(b, bpftrace.Perfbuf, true, false) })
	// The lag stamp's cost does not depend on the reader: relay, whose
	// rows load the module again and again, goes without it, to keep make
	// bench within its budget.
	b.Run("reader=ringbuf-direct/lag=stamped", func(b *testing.B) { benchBPFReader(b, bpftrace.Ringbuf, false, true) })
	b.Run("reader=perfbuf-direct/lag=stamped", func(b *testing.B) { benchBPFReader(b, bpftrace.Perfbuf, false, true) })
}

func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "events/s")
	}
}

// syntheticRingLayout lays out records as a BPF ring buffer does: an
// 8-byte header holding the length, then the record, 8-byte aligned.
func syntheticRingLayout(size int) ([]byte, int) {
	buf := unsafeBytes(make([]uint64, size/8))
	step := (ringbufHeader + event.RecordSize + 7) &^ 7
	n := size / step
	for i := range n {
		binary.LittleEndian.PutUint32(buf[i*step:], uint32(event.RecordSize))
		rec := event.Record{TsNs: uint64(i), Seq: uint64(i), Kind: event.AllKinds[i%len(event.AllKinds)], Ptr: 0xffff888000000000}
		rec.Encode(buf[i*step+ringbufHeader:])
	}
	return buf, n
}

const ringbufHeader = 8

// benchCopy is the floor: the records, laid out as the ring buffer lays
// them out, found by their headers, copied out and decoded, with no
// synchronization and no sequence tracking.
func benchCopy(b *testing.B) {
	buf, records := syntheticRingLayout(consumerSubbuf * consumerSubbufs)
	var dst [event.RecordSize]byte
	var rec event.Record
	off := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%records == 0 {
			off = 0
		}
		n := int(binary.LittleEndian.Uint32(buf[off:]))
		copy(dst[:], buf[off+ringbufHeader:off+ringbufHeader+n])
		if err := rec.Decode(dst[:]); err != nil {
			b.Fatal(err)
		}
		off += (ringbufHeader + n + 7) &^ 7
	}
	reportRate(b)
}

// benchRelayReader times the relay capture's own ReadInto (walking the
// mapped sub-buffers, telling the module what was consumed, sequence
// tracking) over records the module wrote: each round (untimed) loads
// the module, runs the workload without reading, and stops the capture,
// so that the records wait in full sub-buffers as they do for the BPF
// rows.
func benchRelayReader(b *testing.B) {
	if err := relaytrace.Available(""); err != nil {
		b.Skip("relay: ", err)
	}
	// 3,000 openclose ops on 2 threads write about 9,000 records per CPU:
	// under the 13,000 that 16 sub-buffers of 64 KiB hold.
	const ops = 3000
	var rec event.Record
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		c, err := relaytrace.Open(relaytrace.Config{SubbufSize: consumerSubbuf, NumSubbufs: consumerSubbufs, Kinds: event.AllKinds})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := workloads.Run(context.Background(), workloads.Config{Name: "openclose", Threads: 2, Ops: ops}); err != nil {
			b.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(-time.Second)) // return what is pending, then ErrDeadlineExceeded
		b.StartTimer()
		n := 0
		for ; done+n < b.N; n++ {
			if err := c.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				b.Fatal(err)
			}
		}
		b.StopTimer()
		done += n
		st, err := c.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatal("the module wrote no record")
		}
		if tot := st.Total(); tot.Lost != 0 {
			b.Fatalf("%d records dropped while filling: the workload is too large for the buffer", tot.Lost)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportRate(b)
}

// benchBPFReader fills the buffer with records written by the real BPF
// program, run through BPF_PROG_TEST_RUN (untimed), then times reading
// them.
// benchBPFReader times the capture's whole event.Reader (ReadInto:
// reading, decoding and sequence tracking), as the capture rows use it.
func benchBPFReader(b *testing.B, tr bpftrace.Transport, cilium, lag bool) {
	testenv.RequireRoot(b)
	memory := consumerSubbuf * consumerSubbufs
	c, err := bpftrace.Open(bpftrace.Config{Transport: tr, Attach: bpftrace.AttachRawTP,
		Kinds: []event.Kind{event.KindKmalloc}, RingbufSize: memory, PerCPUBufferSize: memory, Detached: true,
		CiliumReader: cilium})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Records that fit with room to spare: ring buffer records carry an
	// 8-byte header, perf samples a 16-byte one.
	batch := memory / (event.RecordSize + 16) / 2
	var rec event.Record
	var lags *capture.LagRecorder
	if lag {
		lags = capture.NewLagRecorder(c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		b.StopTimer()
		if err := c.Inject(n); err != nil {
			b.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Second))
		b.StartTimer()
		for range n {
			if err := c.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					b.Fatalf("after %d of %d records: the buffer held fewer records than were injected", done, b.N)
				}
				b.Fatal(err)
			}
			if lags != nil {
				lags.Record(rec.TsNs)
			}
		}
		done += n
	}
	b.StopTimer()
	reportRate(b)
	st, err := c.Stats()
	if err != nil {
		b.Fatal(err)
	}
	if tot := st.Total(); tot.Lost != 0 {
		b.Fatalf("%d records dropped while filling: the batch is too large", tot.Lost)
	}
}
