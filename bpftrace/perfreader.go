package bpftrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/wait"
)

// perfCPU is one CPU's perf buffer: the metadata page and the data pages.
type perfCPU struct {
	fd   int
	mmap []byte
	meta *unix.PerfEventMmapPage
	data []byte
	tail uint64 // consumer position, published in batches
	batch
}

// perfReader reads the per-CPU perf buffers through their mappings, as the
// relay and ring buffer readers do: samples are decoded where they lie (or,
// when one wraps around the end, from a copy), under the reader's lock,
// data_tail is published in batches (see publishInterval) and whenever a
// CPU's buffer is empty, and the reader polls only when every buffer is
// empty. (cilium/ebpf's perf.Reader: BenchmarkConsumer measures both.)
type perfReader struct {
	cpus    []*perfCPU
	rr      int    // CPU to read first
	scratch []byte // a sample that wraps around the end of its buffer

	mapped      // maxBacklog: the most data_head - data_tail of one CPU
	letGo  bool // a position was published: unlease once the sample is decoded

	lost uint64 // PERF_RECORD_LOST: samples the kernel could not write
}

// Perf record types and the sample layout (include/uapi/linux/perf_event.h):
// a sample is the 8-byte header, a u32 raw size, then the raw bytes.
const (
	perfHeaderSize       = 8
	perfSampleRawOffset  = perfHeaderSize + 4
	perfRecordLostOffset = perfHeaderSize + 8 // after the u64 id
)

// newPerfReader opens a BPF output perf event of perCPU bytes (rounded up to
// a power of two pages) on every possible CPU and puts it into array.
// wakeupBytes > 0 wakes the reader once that many bytes are pending, 0 for
// every sample.
func newPerfReader(array *ebpf.Map, perCPU, wakeupBytes int) (_ *perfReader, err error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	page := os.Getpagesize()
	pages := 1
	for pages*page < perCPU {
		pages *= 2
	}
	r := &perfReader{scratch: make([]byte, 0, 64<<10)}
	r.release = r.releaseBuffers
	defer func() {
		if err != nil {
			r.releaseBuffers()
		}
	}()
	var fds []int
	for cpu := range ncpu {
		attr := unix.PerfEventAttr{
			Type:        unix.PERF_TYPE_SOFTWARE,
			Config:      unix.PERF_COUNT_SW_BPF_OUTPUT,
			Sample_type: unix.PERF_SAMPLE_RAW,
			Bits:        unix.PerfBitWatermark,
			Wakeup:      uint32(max(wakeupBytes, 1)),
		}
		attr.Size = uint32(unsafe.Sizeof(attr))
		fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if errors.Is(err, unix.ENODEV) {
			continue // a possible CPU that is not online
		}
		if err != nil {
			return nil, fmt.Errorf("perf buffer of cpu %d: perf_event_open: %w", cpu, err)
		}
		pc := &perfCPU{fd: fd}
		r.cpus = append(r.cpus, pc)
		if pc.mmap, err = unix.Mmap(fd, 0, (1+pages)*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
			return nil, fmt.Errorf("perf buffer of cpu %d: mmap: %w", cpu, err)
		}
		pc.meta = (*unix.PerfEventMmapPage)(unsafe.Pointer(&pc.mmap[0]))
		off, size := pc.meta.Data_offset, pc.meta.Data_size
		if size == 0 { // kernels before 4.1 leave them 0: data follows the page
			off, size = uint64(page), uint64(pages*page)
		}
		pc.data = pc.mmap[off : off+size]
		pc.tail = atomic.LoadUint64(&pc.meta.Data_tail)
		pc.every = publishInterval(int(size))
		if err := array.Put(uint32(cpu), uint32(fd)); err != nil {
			return nil, fmt.Errorf("perf buffer of cpu %d into the perf event array: %w", cpu, err)
		}
		fds = append(fds, fd)
	}
	if r.waiter, err = wait.New(fds...); err != nil {
		return nil, err
	}
	return r, nil
}

// releaseBuffers unmaps the buffers and closes the perf events.
func (r *perfReader) releaseBuffers() error {
	var errs []error
	for _, pc := range r.cpus {
		if pc.mmap != nil {
			errs = append(errs, unix.Munmap(pc.mmap))
			pc.mmap, pc.data, pc.meta = nil, nil, nil
		}
		errs = append(errs, unix.Close(pc.fd))
	}
	r.cpus = nil
	return errors.Join(errs...)
}

// bufferSize is the data area of one CPU.
func (r *perfReader) bufferSize() int {
	if len(r.cpus) == 0 {
		return 0
	}
	return len(r.cpus[0].data)
}

// read decodes the next sample into rec, taking the lease that keeps
// Close from unmapping the buffers meanwhile; the caller lets it go when
// read fails (ownReader).
func (r *perfReader) read(rec *event.Record) error {
	for {
		r.lease()
		if r.waiter.Closed() {
			return fmt.Errorf("perf buffer reader: %w", os.ErrClosed)
		}
		for i := range r.cpus {
			idx := r.rr + i
			if idx >= len(r.cpus) {
				idx -= len(r.cpus)
			}
			ok, err := r.sample(r.cpus[idx], rec)
			if err != nil {
				return err
			}
			if ok {
				r.rr = idx
				if r.letGo { // a batch was published: let go of the lease
					r.letGo = false
					r.unlease()
				}
				return nil
			}
		}
		if err := r.waiter.Empty(r.mu.Unlock, r.mu.Lock); err != nil {
			return err
		}
	}
}

// sample decodes the next sample of one CPU into rec, skipping (and
// counting) loss records; false when the CPU's buffer is empty, whose
// position it then publishes.
func (r *perfReader) sample(pc *perfCPU, rec *event.Record) (bool, error) {
	size := uint64(len(pc.data))
	for {
		head := atomic.LoadUint64(&pc.meta.Data_head) // acquire: the data before it is written
		if pc.tail >= head {
			if pc.unpublished > 0 {
				atomic.StoreUint64(&pc.meta.Data_tail, pc.tail)
				pc.published()
			}
			return false, nil
		}
		r.noteBacklog(head - pc.tail)
		raw := r.record(pc, size)
		typ := binary.LittleEndian.Uint32(raw)
		n := uint64(binary.LittleEndian.Uint16(raw[6:]))
		if n < perfHeaderSize || pc.tail+n > head {
			return false, fmt.Errorf("perf buffer reader: record of %d bytes at %d, head %d", n, pc.tail, head)
		}
		var err error
		switch typ {
		case unix.PERF_RECORD_SAMPLE:
			rawLen := uint64(binary.LittleEndian.Uint32(raw[perfHeaderSize:]))
			if perfSampleRawOffset+rawLen > n {
				return false, fmt.Errorf("perf buffer reader: sample of %d raw bytes in a %d-byte record", rawLen, n)
			}
			err = rec.Decode(raw[perfSampleRawOffset : perfSampleRawOffset+rawLen])
		case unix.PERF_RECORD_LOST:
			r.lost += binary.LittleEndian.Uint64(raw[perfRecordLostOffset:])
		}
		pc.tail += n
		if pc.advance(n) {
			atomic.StoreUint64(&pc.meta.Data_tail, pc.tail)
			r.letGo = true
		}
		if err != nil || typ == unix.PERF_RECORD_SAMPLE {
			return true, err
		}
	}
}

// record returns the record at pc.tail: in place, or copied out when it
// wraps around the end of the buffer.
func (r *perfReader) record(pc *perfCPU, size uint64) []byte {
	// Records are 8-byte aligned and the buffer a power of two pages, so
	// a header never wraps; a record may.
	start := pc.tail & (size - 1) // a power of two
	n := uint64(binary.LittleEndian.Uint16(pc.data[start+6:]))
	if start+n <= size {
		return pc.data[start : start+n]
	}
	r.scratch = append(append(r.scratch[:0], pc.data[start:]...), pc.data[:n-(size-start)]...)
	return r.scratch
}
