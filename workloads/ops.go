package workloads

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// messageSize is the payload of one socketpair or pipe op: small, so that
// the op's slab events come from the message's bookkeeping, not its data.
const messageSize = 64

// openClose opens and closes /dev/null. It calls openat(2) itself because
// unix.Open copies the path into a new Go allocation on every call.
type openClose struct{}

// devNull is the NUL-terminated path openClose hands to the kernel.
var devNull = [...]byte{'/', 'd', 'e', 'v', '/', 'n', 'u', 'l', 'l', 0}

// atFDCWD is unix.AT_FDCWD as a variable: the constant is negative and
// cannot be converted to uintptr at compile time.
var atFDCWD = unix.AT_FDCWD

func newOpenClose(int64) (worker, error) { return openClose{}, nil }

func (openClose) op() error {
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&devNull[0])),
		unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("open /dev/null: %w", errno)
	}
	return closeFD(int(fd))
}

func (openClose) close() error { return nil }

// fdHold opens /dev/null and keeps the fd: the known leak that
// `slabbench top` must find (one struct file from the filp cache per op,
// allocated in alloc_empty_file), released when the thread tears down.
type fdHold struct {
	fds []int // capacity quota, made at set-up, so that op does not allocate
}

// maxHeld bounds fdhold's --ops: each op holds a file descriptor.
const maxHeld = 1 << 20

func newFDHold(quota int64) (worker, error) {
	if quota > maxHeld {
		return nil, fmt.Errorf("fdhold holds one fd per op: %d ops is more than %d", quota, maxHeld)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil && uint64(quota)+64 > lim.Cur {
		return nil, fmt.Errorf("fdhold would hold %d fds and the open-file limit is %d: lower --ops or raise ulimit -n", quota, lim.Cur)
	}
	return &fdHold{fds: make([]int, 0, quota)}, nil
}

func (h *fdHold) op() error {
	if len(h.fds) == cap(h.fds) {
		return fmt.Errorf("fdhold: already holding %d fds, its quota", len(h.fds))
	}
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&devNull[0])),
		unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("open /dev/null: %w", errno)
	}
	h.fds = append(h.fds, int(fd))
	return nil
}

func (h *fdHold) close() error {
	var errs []error
	for _, fd := range h.fds {
		if err := closeFD(fd); err != nil {
			errs = append(errs, err)
		}
	}
	h.fds = h.fds[:0]
	return errors.Join(errs...)
}

// eventfdOp creates and closes an eventfd.
type eventfdOp struct{}

func newEventfd(int64) (worker, error) { return eventfdOp{}, nil }

func (eventfdOp) op() error {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	return closeFD(fd)
}

func (eventfdOp) close() error { return nil }

// pipeCreate creates and closes a pipe.
type pipeCreate struct {
	fds [2]int // kept here so that Pipe2's slice argument does not escape per op
}

func newPipeCreate(int64) (worker, error) { return &pipeCreate{}, nil }

func (p *pipeCreate) op() error {
	if err := unix.Pipe2(p.fds[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe2: %w", err)
	}
	return errors.Join(closeFD(p.fds[0]), closeFD(p.fds[1]))
}

func (*pipeCreate) close() error { return nil }

// mmapPage maps one anonymous page, writes to it so that the kernel
// really backs it (page fault, page table), and unmaps it. MmapPtr is
// used because unix.Mmap records every mapping in a Go map.
type mmapPage struct {
	size uintptr
}

func newMmap(int64) (worker, error) { return &mmapPage{size: uintptr(unix.Getpagesize())}, nil }

func (m *mmapPage) op() error {
	p, err := unix.MmapPtr(-1, 0, nil, m.size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	*(*byte)(p) = 1
	if err := unix.MunmapPtr(p, m.size); err != nil {
		return fmt.Errorf("munmap: %w", err)
	}
	return nil
}

func (*mmapPage) close() error { return nil }

// messenger sends a message from one fd and receives it on another: the
// two ends of a socketpair or a pipe, created once per thread.
type messenger struct {
	kind string // "socketpair" or "pipe", for errors
	tx   int
	rx   int
	msg  [messageSize]byte
	buf  [messageSize]byte
}

func newSocketpair(int64) (worker, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	return &messenger{kind: "socketpair", tx: fds[0], rx: fds[1]}, nil
}

func newPipe(int64) (worker, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	return &messenger{kind: "pipe", tx: fds[1], rx: fds[0]}, nil
}

func (m *messenger) op() error {
	for {
		n, err := unix.Write(m.tx, m.msg[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s write: %w", m.kind, err)
		}
		if n != len(m.msg) {
			// Both ends are ours and the buffer is empty before each
			// op, so a short write means something else uses the fd.
			return fmt.Errorf("%s write: short write of %d of %d bytes", m.kind, n, len(m.msg))
		}
		break
	}
	// A stream may hand the message back in pieces; read all of it so
	// that the next op starts with an empty buffer.
	for got := 0; got < len(m.buf); {
		n, err := unix.Read(m.rx, m.buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s read: %w", m.kind, err)
		}
		if n == 0 {
			return fmt.Errorf("%s read: unexpected end of file", m.kind)
		}
		got += n
	}
	return nil
}

func (m *messenger) close() error {
	return errors.Join(closeFD(m.tx), closeFD(m.rx))
}

// closeFD closes fd. EINTR is not retried: Linux releases the fd even
// then, and a retry could close a descriptor another thread just got.
func closeFD(fd int) error {
	if err := unix.Close(fd); err != nil && err != unix.EINTR {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}
