package bpftrace

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/wait"
)

// BPF ring buffer record header (include/uapi/linux/bpf.h).
const (
	ringbufBusyBit    = 1 << 31
	ringbufDiscardBit = 1 << 30
)

// maxBusySpins bounds how often next yields to a producer that reserved
// the next record and has not committed it, before it polls.
const maxBusySpins = 100

// ringReader reads a BPF ring buffer through its own mapping, as the relay
// reader reads relay's: records are decoded where they lie, under the
// reader's lock, the consumer position is published in batches (see
// publishInterval) and whenever the reader catches up, and the reader
// polls only when the ring is empty. (cilium/ebpf's ringbuf.Reader copies
// each record out under a lock; BenchmarkConsumer measures both.)
type ringReader struct {
	consPage []byte // consumer position, read-write
	prodMap  []byte // producer position page, then the data pages twice
	data     []byte
	mask     uint64
	consPos  *uint64
	prodPos  *uint64

	mapped
	cons uint64 // consumer position, published in batches
	batch
	prod uint64 // producer position last loaded
}

func newRingReader(mapFD, size int) (*ringReader, error) {
	page := os.Getpagesize()
	if size <= 0 || size&(size-1) != 0 || size%page != 0 {
		return nil, fmt.Errorf("ring buffer size %d: want a power of two of whole pages", size)
	}
	r := &ringReader{mask: uint64(size - 1)}
	r.every = publishInterval(size)
	r.release = r.unmap
	var err error
	if r.consPage, err = unix.Mmap(mapFD, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("mapping the ring buffer's consumer page: %w", err)
	}
	if r.prodMap, err = unix.Mmap(mapFD, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		unix.Munmap(r.consPage)
		return nil, fmt.Errorf("mapping the ring buffer's data pages: %w", err)
	}
	r.data = r.prodMap[page:]
	r.consPos = (*uint64)(unsafe.Pointer(&r.consPage[0]))
	r.prodPos = (*uint64)(unsafe.Pointer(&r.prodMap[0]))
	r.cons = atomic.LoadUint64(r.consPos)
	if r.waiter, err = wait.New(mapFD); err != nil {
		r.unmap()
		return nil, err
	}
	return r, nil
}

func (r *ringReader) unmap() error {
	err := errors.Join(unix.Munmap(r.consPage), unix.Munmap(r.prodMap))
	r.consPage, r.prodMap, r.data = nil, nil, nil
	return err
}

// read decodes the next record into rec, taking the lease that keeps
// Close from unmapping the ring meanwhile; the caller lets it go when
// read fails (ownReader).
func (r *ringReader) read(rec *event.Record) error {
	spins := 0
	for {
		r.lease()
		if r.waiter.Closed() {
			return fmt.Errorf("ring buffer reader: %w", os.ErrClosed)
		}
		if r.cons < r.prod || r.cons < r.loadProd() {
			// The length word is written last, with release order:
			// loading it atomically orders the record before it.
			hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[r.cons&r.mask])))
			if hdr&ringbufBusyBit == 0 {
				n := uint64(hdr &^ (ringbufBusyBit | ringbufDiscardBit))
				next := r.cons + (ringbufHeaderSize+n+7)&^7
				if next > r.prod {
					return fmt.Errorf("ring buffer reader: record of %d bytes at %d runs past the producer position %d", n, r.cons, r.prod)
				}
				r.noteBacklog(r.prod - r.cons)
				start := (r.cons + ringbufHeaderSize) & r.mask
				var err error
				discarded := hdr&ringbufDiscardBit != 0
				if !discarded { // the data pages are mapped twice: no wrap
					err = rec.Decode(r.data[start : start+n])
				}
				publish := r.advance(next - r.cons)
				r.cons = next
				if publish {
					atomic.StoreUint64(r.consPos, next)
					r.unlease()
				}
				if err != nil || !discarded {
					return err
				}
				continue
			}
			// Reserved, not committed yet: the producer is in the
			// middle of writing it; let it finish.
			if spins < maxBusySpins {
				spins++
				runtime.Gosched()
				continue
			}
		}
		// Caught up: publish the position, so the kernel sees the space
		// and wakes the poll below for the next record.
		if r.unpublished > 0 {
			atomic.StoreUint64(r.consPos, r.cons)
			r.published()
		}
		if err := r.waiter.Empty(r.mu.Unlock, r.mu.Lock); err != nil {
			return err
		}
	}
}

func (r *ringReader) loadProd() uint64 {
	r.prod = atomic.LoadUint64(r.prodPos)
	return r.prod
}
