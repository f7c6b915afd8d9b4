package relaytrace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/slabbench/slabbench/event"
)

// Sub-buffer layout constants, mirroring kmod/include/slabrelay.h.
const (
	// HeaderSize is sizeof(struct slabrelay_subbuf_hdr).
	HeaderSize = 64
	// SubbufMagic is SLABRELAY_SUBBUF_MAGIC.
	SubbufMagic = 0x52424c53
	// MinSubbufSize is the smallest sub-buffer: a header and one record.
	MinSubbufSize = HeaderSize + event.RecordSize
	// MinSubbufs and MaxSubbufs bound the sub-buffer count.
	MinSubbufs = 2
	MaxSubbufs = 65536
	// MaxCPUBytes bounds subbuf size * count, the buffer of one CPU.
	MaxCPUBytes = 64 << 20
)

// SubbufHeader mirrors struct slabrelay_subbuf_hdr, the header the module
// reserves at the start of every sub-buffer.
type SubbufHeader struct {
	Magic       uint32
	CPU         uint32
	Seq         uint64 // sub-buffer sequence number on this CPU
	Commit      uint32 // bytes used, header included; 0 while open
	NRec        uint32 // records in the sub-buffer
	KindNRec    [event.NumKinds]uint32
	PrevPadding uint32
	TsNs        uint64
	Overwritten uint64 // sub-buffers overwritten on this CPU before this one
}

func init() {
	if unsafe.Sizeof(SubbufHeader{}) != HeaderSize {
		panic("relaytrace: SubbufHeader does not mirror struct slabrelay_subbuf_hdr")
	}
}

// DecodeHeader reads a header from the first HeaderSize bytes of b.
func DecodeHeader(b []byte) (SubbufHeader, error) {
	var h SubbufHeader
	if len(b) < HeaderSize {
		return h, fmt.Errorf("sub-buffer header truncated: %d bytes, want %d", len(b), HeaderSize)
	}
	le := binary.LittleEndian
	h.Magic = le.Uint32(b[0:])
	h.CPU = le.Uint32(b[4:])
	h.Seq = le.Uint64(b[8:])
	h.Commit = le.Uint32(b[16:])
	h.NRec = le.Uint32(b[20:])
	for k := range h.KindNRec {
		h.KindNRec[k] = le.Uint32(b[24+4*k:])
	}
	h.PrevPadding = le.Uint32(b[44:])
	h.TsNs = le.Uint64(b[48:])
	h.Overwritten = le.Uint64(b[56:])
	return h, nil
}

// Encode writes h into b (HeaderSize bytes), as the module lays it out.
func (h *SubbufHeader) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], h.Magic)
	le.PutUint32(b[4:], h.CPU)
	le.PutUint64(b[8:], h.Seq)
	le.PutUint32(b[16:], h.Commit)
	le.PutUint32(b[20:], h.NRec)
	for k := range h.KindNRec {
		le.PutUint32(b[24+4*k:], h.KindNRec[k])
	}
	le.PutUint32(b[44:], h.PrevPadding)
	le.PutUint64(b[48:], h.TsNs)
	le.PutUint64(b[56:], h.Overwritten)
}

// ErrCorrupt is wrapped by the errors a Walker returns for a buffer that is
// not laid out as the module writes it.
var ErrCorrupt = errors.New("corrupt relay buffer")

// Step is what Walker.Step found.
type Step int

const (
	// StepRecord: the record was decoded.
	StepRecord Step = iota
	// StepEmpty: the next sub-buffer is not complete yet; wait.
	StepEmpty
	// StepDone: a sub-buffer was read to its end. Tell the kernel that
	// sub-buffers before Next() are consumed, then call Settle with its
	// answer.
	StepDone
	// StepLost: the module overwrote the next sub-buffer before or while
	// it was read (overwrite mode). Tell the kernel as for StepDone; the
	// records already returned from it are counted in Recaptured.
	StepLost
)

// Walker reads one per-CPU relay buffer: n sub-buffers of size bytes,
// sub-buffer seq in slot seq % n. It only reads buf, with atomic loads
// where the module may be writing, so it works on the live mapping and on
// a synthetic slice alike. Not safe for concurrent use.
type Walker struct {
	buf  []byte
	size int
	n    int
	cpu  uint32

	next uint64 // next sub-buffer sequence number

	open      bool   // reading sub-buffer cur
	cur       uint64 // sequence number being read
	off, end  int    // next record offset and commit, in the slot
	base      int    // slot offset in buf
	delivered [event.NumKinds]uint64

	settle        bool // last StepDone sub-buffer needs Settle
	settleCounted [event.NumKinds]uint64

	recaptured  [event.NumKinds]uint64
	lostSubbufs uint64

	// overwrite: the module may overwrite the sub-buffer being read,
	// so every record is checked against its header (NoOverwrite).
	overwrite bool
}

// NewWalker walks buf as the buffer of cpu with n sub-buffers of size
// bytes.
func NewWalker(buf []byte, size, n, cpu int) (*Walker, error) {
	if size < MinSubbufSize || size%8 != 0 || n < MinSubbufs || len(buf) < size*n {
		return nil, fmt.Errorf("relay buffer of %d bytes cannot hold %d sub-buffers of %d bytes (multiple of 8, at least %d)",
			len(buf), n, size, MinSubbufSize)
	}
	if uintptr(unsafe.Pointer(&buf[0]))%8 != 0 {
		return nil, errors.New("relay buffer is not 8-byte aligned")
	}
	return &Walker{buf: buf, size: size, n: n, cpu: uint32(cpu), overwrite: true}, nil
}

// NoOverwrite says that the module does not overwrite unread sub-buffers
// (no-overwrite mode): a sub-buffer cannot change while it is read, so
// records need no check against its header.
func (w *Walker) NoOverwrite() { w.overwrite = false }

// Next returns the sequence number of the next sub-buffer to read: the
// ones before it are consumed.
func (w *Walker) Next() uint64 { return w.next }

// Recaptured returns, for kind k, the records this walker returned from
// sub-buffers the module counted as overwritten; the module's overwritten
// count minus this is what was lost.
func (w *Walker) Recaptured(k event.Kind) uint64 { return w.recaptured[k] }

// LostSubbufs returns how many sub-buffers were overwritten before they
// were read to the end.
func (w *Walker) LostSubbufs() uint64 { return w.lostSubbufs }

func (w *Walker) load64(off int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&w.buf[off])))
}

func (w *Walker) load32(off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&w.buf[off])))
}

// Settle must follow StepDone, once the kernel answered the consumed
// count: overwritten says the kernel found the sub-buffer already consumed
// by an overwrite (ESTALE), so it counted its records as lost, and the
// ones returned from it are recaptured. Step settles a forgotten StepDone
// as not overwritten.
func (w *Walker) Settle(overwritten bool) {
	if !w.settle {
		return
	}
	w.settle = false
	if overwritten {
		w.lostSubbufs++
		for k := range w.recaptured {
			w.recaptured[k] += w.settleCounted[k]
		}
	}
}

func (w *Walker) lost() Step {
	if w.open { // returned records of it before it was overwritten
		for k := range w.recaptured {
			w.recaptured[k] += w.delivered[k]
		}
	}
	w.lostSubbufs++
	w.open = false
	w.next++
	return StepLost
}

// Step decodes the next record into rec, or says why there is none.
func (w *Walker) Step(rec *event.Record) (Step, error) {
	if w.open && w.off < w.end {
		return w.record(rec)
	}
	return w.boundary(rec)
}

// boundary is Step where no sub-buffer is open or the open one has been
// read to its end.
func (w *Walker) boundary(rec *event.Record) (Step, error) {
	if w.settle {
		w.Settle(false)
	}
	if !w.open {
		base := int(w.next%uint64(w.n)) * w.size
		seq := w.load64(base + 8)
		if seq < w.next {
			return StepEmpty, nil // not started yet (or never)
		}
		if seq > w.next {
			return w.lost(), nil
		}
		commit := w.load32(base + 16)
		if commit == 0 {
			return StepEmpty, nil // still being written
		}
		h, _ := DecodeHeader(w.buf[base : base+HeaderSize])
		if w.load64(base+8) != w.next {
			return w.lost(), nil // overwritten while the header was read
		}
		if err := w.check(&h); err != nil {
			return StepEmpty, err
		}
		w.open, w.cur, w.base = true, w.next, base
		w.off, w.end = HeaderSize, int(h.Commit)
		w.delivered = [event.NumKinds]uint64{}
	}
	if w.off >= w.end {
		w.open = false
		w.next++
		w.settle, w.settleCounted = true, w.delivered
		return StepDone, nil
	}
	return w.record(rec)
}

// record decodes the record at off of the open sub-buffer.
func (w *Walker) record(rec *event.Record) (Step, error) {
	if err := rec.Decode(w.buf[w.base+w.off : w.base+w.off+event.RecordSize]); err != nil {
		return StepEmpty, err
	}
	// Records are written after the header's seq: if seq still holds
	// cur, the bytes just decoded are the ones of sub-buffer cur.
	if w.overwrite && w.load64(w.base+8) != w.cur {
		return w.lost(), nil
	}
	if rec.CPU != w.cpu || !rec.Kind.Valid() {
		return StepEmpty, fmt.Errorf("%w: cpu %d sub-buffer %d offset %d: record of cpu %d kind %d",
			ErrCorrupt, w.cpu, w.cur, w.off, rec.CPU, rec.Kind)
	}
	w.off += event.RecordSize
	if w.overwrite { // only an overwrite needs what was returned from a sub-buffer
		w.delivered[rec.Kind]++
	}
	return StepRecord, nil
}

func (w *Walker) check(h *SubbufHeader) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: cpu %d sub-buffer %d: %s", ErrCorrupt, w.cpu, w.next, fmt.Sprintf(format, a...))
	}
	if h.Magic != SubbufMagic {
		return bad("magic %#x, want %#x", h.Magic, SubbufMagic)
	}
	if h.CPU != w.cpu {
		return bad("header says cpu %d", h.CPU)
	}
	c := int(h.Commit)
	if c < HeaderSize || c > w.size || (c-HeaderSize)%event.RecordSize != 0 {
		return bad("commit %d is not header + whole records within %d bytes", c, w.size)
	}
	if n := (c - HeaderSize) / event.RecordSize; int(h.NRec) != n {
		return bad("%d records in header, %d in commit %d", h.NRec, n, c)
	}
	var sum uint32
	for _, v := range h.KindNRec {
		sum += v
	}
	if sum != h.NRec || h.KindNRec[0] != 0 {
		return bad("per-kind counts %v do not add up to %d records", h.KindNRec, h.NRec)
	}
	return nil
}

// consumeFunc tells the module that the sub-buffers of one CPU before next
// are read; stale reports that an overwrite had consumed them first
// (ESTALE).
type consumeFunc func(next uint64) (stale bool, err error)

// readCPU returns the next record of one CPU's buffer in rec, telling the
// module through consume each time a sub-buffer has been read or was lost.
// It returns false when no complete sub-buffer is waiting.
func readCPU(w *Walker, rec *event.Record, consume consumeFunc) (bool, error) {
	for {
		st, err := w.Step(rec)
		if err != nil {
			return false, err
		}
		switch st {
		case StepRecord:
			return true, nil
		case StepEmpty:
			return false, nil
		case StepDone:
			stale, err := consume(w.Next())
			if err != nil {
				return false, err
			}
			w.Settle(stale)
		case StepLost:
			if _, err := consume(w.Next()); err != nil {
				return false, err
			}
		}
	}
}

// kindCounts is the accounting of kind k on one CPU: what the reader saw
// (tracker, w) against what the module counted (km). Lost is the module's
// drops plus, in overwrite mode, the records of overwritten sub-buffers
// that this reader had not returned.
func kindCounts(cpu int, k event.Kind, tracker *event.SeqTracker, w *Walker, km kindModuleStats, truthOn bool) (event.Counts, error) {
	cnt := event.Counts{
		Captured:    tracker.Captured(cpu, k),
		Attempts:    km.attempts,
		Lost:        km.drops + km.overwritten - w.Recaptured(k),
		SeqGaps:     tracker.Gaps(cpu, k, km.attempts),
		Disorder:    tracker.Disorder(cpu, k),
		StacksTaken: km.stacksTaken, StacksFull: km.stacksFull,
		StackCollisions: km.stackCollisions, StacksFailed: km.stacksFailed,
	}
	if !truthOn {
		return cnt, nil
	}
	if km.truthErrors > 0 {
		return cnt, fmt.Errorf("cpu %d %s: the truth counter could not be read on %d hits (its perf event was not active)",
			cpu, k, km.truthErrors)
	}
	if km.attempts > 0 {
		cnt.Truth = km.truthLast - km.truthFirst + 1
	}
	return cnt, nil
}
