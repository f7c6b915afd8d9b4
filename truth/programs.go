package truth

import (
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// maxQueriedPrograms bounds one query; the kernel says how many there are
// beyond it (ENOSPC), and TracepointPrograms asks again with room for all.
const maxQueriedPrograms = 64

// TracepointPrograms returns the ids of the BPF programs attached to
// kmem:<k> as tracepoint programs, from the kernel's own list
// (PERF_EVENT_IOC_QUERY_BPF), ours among them. Any one of them that
// returns 0 for a hit makes the kernel skip that hit's perf events, this
// package's counter among them (perf_trace_run_bpf_submit), while a raw
// tracepoint program or the relay module still sees the hit.
func TracepointPrograms(k event.Kind) ([]uint32, error) {
	id, err := TracepointID(k)
	if err != nil {
		return nil, err
	}
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_TRACEPOINT, Config: id, Bits: unix.PerfBitDisabled}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("truth counter: perf_event_open(kmem:%s) to list its programs: %w (needs root)", k, err)
	}
	defer unix.Close(fd)
	n := maxQueriedPrograms
	for {
		// struct perf_event_query_bpf: ids_len, prog_cnt, then the ids.
		buf := make([]uint32, 2+n)
		buf[0] = uint32(n)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PERF_EVENT_IOC_QUERY_BPF, uintptr(unsafe.Pointer(&buf[0])))
		cnt := int(buf[1])
		switch {
		case errno == 0:
			return buf[2 : 2+cnt], nil
		case errors.Is(errno, unix.ENOSPC) && cnt > n:
			n = cnt
		default:
			return nil, fmt.Errorf("truth counter: listing the programs on kmem:%s (PERF_EVENT_IOC_QUERY_BPF): %w (needs root)", k, errno)
		}
	}
}

// Foreign keeps the programs found on the kmem tracepoints other than a
// capture's own, each time Note looks: a capture notes them just before
// its window opens and again just after it closes.
type Foreign struct {
	own  map[uint32]bool
	seen [event.NumKinds][]uint32
}

// NewForeign returns a Foreign that leaves out the capture's own
// programs, own.
func NewForeign(own []uint32) *Foreign {
	f := &Foreign{own: map[uint32]bool{}}
	for _, id := range own {
		f.own[id] = true
	}
	return f
}

// Note lists the programs on each kind's tracepoint and keeps the ones
// neither the capture's own nor kept already.
func (f *Foreign) Note(kinds []event.Kind) error {
	for _, k := range kinds {
		ids, err := TracepointPrograms(k)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !f.own[id] && !slices.Contains(f.seen[k], id) {
				f.seen[k] = append(f.seen[k], id)
			}
		}
	}
	return nil
}

// Seen returns, per kind, the foreign programs Note found.
func (f *Foreign) Seen() [event.NumKinds][]uint32 {
	var s [event.NumKinds][]uint32
	for k := range f.seen {
		s[k] = slices.Clone(f.seen[k])
	}
	return s
}
