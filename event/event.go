// Package event defines what both capture paths of slabbench deliver: the
// slab event record (mirroring kmod/include/slab_event.h), its kinds, the
// per-CPU and per-kind counts that prove nothing was lost silently, and the
// Reader interface that the relay and eBPF readers share.
package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"
)

// Kind is the tracepoint an event came from (enum slab_event_kind).
type Kind uint16

// The four kmem tracepoints slabbench captures.
const (
	KindKmalloc        Kind = 1
	KindKfree          Kind = 2
	KindKmemCacheAlloc Kind = 3
	KindKmemCacheFree  Kind = 4
	// NumKinds sizes arrays indexed by Kind (index 0 is unused).
	NumKinds = 5
)

// AllKinds lists every kind in tracepoint order.
var AllKinds = []Kind{KindKmalloc, KindKfree, KindKmemCacheAlloc, KindKmemCacheFree}

// String returns the tracepoint name (kmalloc, kfree, ...).
func (k Kind) String() string {
	switch k {
	case KindKmalloc:
		return "kmalloc"
	case KindKfree:
		return "kfree"
	case KindKmemCacheAlloc:
		return "kmem_cache_alloc"
	case KindKmemCacheFree:
		return "kmem_cache_free"
	}
	return fmt.Sprintf("kind(%d)", uint16(k))
}

// Valid reports whether k is one of the four kinds.
func (k Kind) Valid() bool { return k >= KindKmalloc && k <= KindKmemCacheFree }

// IsAlloc says whether k is an allocation (kmalloc, kmem_cache_alloc).
func (k Kind) IsAlloc() bool { return k == KindKmalloc || k == KindKmemCacheAlloc }

// ParseKinds parses a comma-separated list of tracepoint names such as
// "kmalloc,kfree". An empty string or "all" selects all four.
func ParseKinds(s string) ([]Kind, error) {
	if s == "" || s == "all" {
		return append([]Kind(nil), AllKinds...), nil
	}
	var kinds []Kind
	seen := map[Kind]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		var found Kind
		for _, k := range AllKinds {
			if k.String() == name {
				found = k
			}
		}
		if found == 0 {
			return nil, fmt.Errorf("unknown event %q: use kmalloc, kfree, kmem_cache_alloc or kmem_cache_free", name)
		}
		if !seen[found] {
			seen[found] = true
			kinds = append(kinds, found)
		}
	}
	return kinds, nil
}

// KindMask returns the bit mask (1<<kind) of kinds, as the BPF programs and
// the kernel module take it.
func KindMask(kinds []Kind) uint32 {
	var mask uint32
	for _, k := range kinds {
		mask |= 1 << k
	}
	return mask
}

// Record flags (enum slab_event_flag).
const (
	// FlagTruth: Record.Truth holds the in-band truth counter stamp.
	FlagTruth uint16 = 1 << 0
	// FlagFunc: a function probe (kprobe/fentry) wrote the record, so it
	// counts function calls, not tracepoint hits.
	FlagFunc uint16 = 1 << 1
	// FlagStack: Record.StackID names the allocation's kernel stack (the
	// eBPF stack map's id; capture --stacks).
	FlagStack uint16 = 1 << 2
)

// Record mirrors struct slab_event. Its layout is checked against the BTF
// of the compiled BPF object by a test in bpftrace/.
type Record struct {
	TsNs       uint64 // CLOCK_MONOTONIC nanoseconds
	Seq        uint64 // per-CPU sequence number, stamped on every attempt
	CallSite   uint64
	Ptr        uint64
	BytesReq   uint64
	BytesAlloc uint64
	GfpFlags   uint32
	StackID    uint32 // the allocation's kernel stack (FlagStack)
	Truth      uint64 // truth counter stamp (FlagTruth)
	Tgid       uint32
	Pid        uint32
	CPU        uint32
	Kind       Kind
	Flags      uint16
}

// Attach is how the eBPF programs hook the slab events. It lives here,
// not in bpftrace, so that the benchmark plan and the report can name
// attach modes without linking the capture code.
type Attach string

// The four attach modes.
const (
	AttachTracepoint Attach = "tracepoint" // BPF_PROG_TYPE_TRACEPOINT on kmem:*
	AttachRawTP      Attach = "rawtp"      // raw tracepoint on kmem:*
	AttachKprobe     Attach = "kprobe"     // kprobes on the allocator functions
	AttachFentry     Attach = "fentry"     // fentry/fexit on the allocator functions
)

// IsFunctionProbe reports whether a sees function calls rather than
// tracepoint hits: its truth counter counts calls (counting kprobes).
func (a Attach) IsFunctionProbe() bool { return a == AttachKprobe || a == AttachFentry }

// RecordSize is sizeof(struct slab_event).
const RecordSize = int(unsafe.Sizeof(Record{}))

// RecordBytesIn is what one record takes in a transport's buffer
// ("relay", "ringbuf", "perfbuf"): relay records lie back to back (the
// sub-buffer header and end padding are not counted), a ring buffer
// record has an 8-byte header and is 8-byte aligned, a perf sample an
// 8-byte header and a 4-byte size, 8-byte aligned.
func RecordBytesIn(transport string) int {
	switch transport {
	case "ringbuf":
		return (8 + RecordSize + 7) &^ 7
	case "perfbuf":
		return (8 + 4 + RecordSize + 7) &^ 7
	}
	return RecordSize
}

// ErrShortRecord is returned by Decode for a buffer shorter than a record.
var ErrShortRecord = errors.New("slab event record truncated")

// Decode fills r from the first RecordSize bytes of b (little endian, as
// every supported kernel writes it). It does not allocate.
func (r *Record) Decode(b []byte) error {
	if len(b) < RecordSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrShortRecord, len(b), RecordSize)
	}
	le := binary.LittleEndian
	r.TsNs = le.Uint64(b[0:])
	r.Seq = le.Uint64(b[8:])
	r.CallSite = le.Uint64(b[16:])
	r.Ptr = le.Uint64(b[24:])
	r.BytesReq = le.Uint64(b[32:])
	r.BytesAlloc = le.Uint64(b[40:])
	r.GfpFlags = le.Uint32(b[48:])
	r.StackID = le.Uint32(b[52:])
	r.Truth = le.Uint64(b[56:])
	r.Tgid = le.Uint32(b[64:])
	r.Pid = le.Uint32(b[68:])
	r.CPU = le.Uint32(b[72:])
	r.Kind = Kind(le.Uint16(b[76:]))
	r.Flags = le.Uint16(b[78:])
	return nil
}

// Encode writes r into b, which must hold RecordSize bytes. Tests and the
// consumer benchmarks use it to build buffers laid out as the kernel does.
func (r *Record) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], r.TsNs)
	le.PutUint64(b[8:], r.Seq)
	le.PutUint64(b[16:], r.CallSite)
	le.PutUint64(b[24:], r.Ptr)
	le.PutUint64(b[32:], r.BytesReq)
	le.PutUint64(b[40:], r.BytesAlloc)
	le.PutUint32(b[48:], r.GfpFlags)
	le.PutUint32(b[52:], r.StackID)
	le.PutUint64(b[56:], r.Truth)
	le.PutUint32(b[64:], r.Tgid)
	le.PutUint32(b[68:], r.Pid)
	le.PutUint32(b[72:], r.CPU)
	le.PutUint16(b[76:], uint16(r.Kind))
	le.PutUint16(b[78:], r.Flags)
}

// Reader is the shape both capture paths give their consumer, after
// cilium/ebpf's ringbuf and perf readers.
//
// ReadInto blocks until a record is available and decodes it into rec
// without allocating. SetDeadline makes ReadInto return
// os.ErrDeadlineExceeded once every pending record has been returned; it
// may be called from another goroutine while ReadInto blocks (a reader
// built on cilium/ebpf's notices within 100 ms). Flush makes ReadInto
// return every pending record, then ErrFlushed. Close is idempotent and
// makes a blocked ReadInto return an error wrapping os.ErrClosed.
// event/eventtest checks all of this for every implementation.
type Reader interface {
	ReadInto(rec *Record) error
	SetDeadline(t time.Time)
	Flush() error
	Close() error
}

// ErrFlushed is returned by ReadInto after Flush, once the records pending
// at the time of the Flush have been returned.
var ErrFlushed = errors.New("slab event reader flushed")

// Capture is a running capture on either path: a Reader over the records,
// plus the accounting that proves nothing was lost silently.
//
// The consumer reads until Stop has been called and ReadInto has returned
// every pending record (deadline exceeded or ErrFlushed after Flush);
// Stats is then final.
type Capture interface {
	Reader
	// Stop detaches every probe: the capture window closes, no new
	// record is produced, and the records already written stay readable.
	// It is idempotent.
	Stop() error
	// Stats returns the accounting per CPU and kind: Captured from what
	// ReadInto returned, Lost/Attempts/Truth from the producer. After
	// Close it returns the producer's counters as they were at Close.
	Stats() (Stats, error)
	// BufferBytes is the total buffer memory of the transport.
	BufferBytes() int
}
