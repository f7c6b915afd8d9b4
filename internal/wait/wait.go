// Package wait is the blocking part the slabbench readers share: poll the
// transport's file descriptors together with an eventfd that SetDeadline,
// Flush and Close write, with the deadline and flush semantics of the
// event.Reader contract.
package wait

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// MaxPoll bounds one poll: a wakeup the transport never sends (relay
// wakes through irq_work, a BPF ring buffer only when asked) costs at most
// this much delay.
const MaxPoll = 100 * time.Millisecond

// Waiter is one reader's waiting state. Empty is called by the reading
// goroutine; SetDeadline, Flush and Shutdown from any goroutine.
type Waiter struct {
	fds      []unix.PollFd // the transport's, then the eventfd
	wakeFd   int
	deadline atomic.Int64 // unix nanoseconds; 0: none
	flushReq atomic.Bool
	closed   atomic.Bool
	flushing bool // reading goroutine only

	// Wakeups counts polls that returned with a transport descriptor
	// ready (reading goroutine only).
	Wakeups uint64
	// Waits counts every wait in Empty, however it ended (reading
	// goroutine only): a consumer that reads the clock only now and then
	// reads it again after a wait (capture's lag).
	Waits uint64
	// Interval, if > 0, makes Empty wait this long instead of for the
	// transport's wakeup: a reader that looks on a timer. Set it before
	// the first read.
	Interval time.Duration
}

// New waits on fds (readable) and its own eventfd.
func New(fds ...int) (*Waiter, error) {
	wakeFd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &Waiter{wakeFd: wakeFd}
	for _, fd := range fds {
		w.fds = append(w.fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	w.fds = append(w.fds, unix.PollFd{Fd: int32(wakeFd), Events: unix.POLLIN})
	return w, nil
}

func (w *Waiter) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(w.wakeFd, one[:])
}

// SetDeadline sets the deadline (zero: none) and wakes a waiting reader.
func (w *Waiter) SetDeadline(t time.Time) {
	if t.IsZero() {
		w.deadline.Store(0)
	} else {
		w.deadline.Store(t.UnixNano())
	}
	w.wake()
}

// Flush makes the reader return what is pending, then event.ErrFlushed;
// after Shutdown it fails with an error wrapping os.ErrClosed.
func (w *Waiter) Flush() error {
	if w.closed.Load() {
		return fmt.Errorf("slab event reader: %w", os.ErrClosed)
	}
	w.flushReq.Store(true)
	w.wake()
	return nil
}

// Shutdown marks the reader closed and wakes it; it reports whether this
// call closed it.
func (w *Waiter) Shutdown() bool {
	if w.closed.Swap(true) {
		return false
	}
	w.wake()
	return true
}

// Closed reports whether Shutdown was called.
func (w *Waiter) Closed() bool { return w.closed.Load() }

// Release closes the eventfd, once no reader uses the Waiter any more.
func (w *Waiter) Release() error {
	if w.wakeFd < 0 {
		return nil
	}
	err := unix.Close(w.wakeFd)
	w.wakeFd = -1
	return err
}

// Empty is what the reading goroutine calls when no record is pending. It
// returns nil when the reader should look again (after a wait, or to take
// what a Flush made pending), or the error the read must return:
// event.ErrFlushed, os.ErrDeadlineExceeded or one wrapping os.ErrClosed.
// unlock and lock release the reader's lock around the wait.
func (w *Waiter) Empty(unlock, lock func()) error {
	if w.closed.Load() {
		return fmt.Errorf("slab event reader: %w", os.ErrClosed)
	}
	if w.flushing {
		w.flushing = false
		return event.ErrFlushed
	}
	if w.flushReq.Swap(false) {
		w.flushing = true
		return nil
	}
	timeout, fds := MaxPoll, w.fds
	if w.Interval > 0 {
		// Only SetDeadline, Flush and Close end the wait early.
		timeout, fds = w.Interval, w.fds[len(w.fds)-1:]
	}
	if d := w.deadline.Load(); d != 0 {
		left := time.Until(time.Unix(0, d))
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		timeout = min(timeout, left)
	}
	ts := unix.NsecToTimespec(timeout.Nanoseconds())
	unlock()
	_, err := unix.Ppoll(fds, &ts, nil)
	lock()
	w.Waits++
	if err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("slab event reader: poll: %w", err)
	}
	for _, pfd := range fds[:len(fds)-1] {
		if pfd.Revents&unix.POLLIN != 0 {
			w.Wakeups++
			break
		}
	}
	var drain [8]byte
	_, _ = unix.Read(w.wakeFd, drain[:])
	return nil
}
