package bpftrace

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slabbench/slabbench/internal/wait"
)

// mapped is what the ring and perf buffer readers of a mapping share: the
// lock that keeps Close from unmapping under a read, the waiter, and the
// largest backlog a read saw, overall and since the last TakeBacklog.
//
// The reading goroutine leases the lock: it keeps it between reads and
// lets go once per published batch, before it waits and when a read
// fails, so that a record costs no locked instruction (a lock and unlock
// per record doubled the reader's cost in BenchmarkConsumer). Close takes
// the lock if it is free; otherwise the reader frees the buffers when it
// lets go, at its next read at the latest, which sees the Close (a reader
// that returned a record and never reads again keeps them until the
// process exits).
type mapped struct {
	mu         sync.Mutex
	leased     bool // reading goroutine only: it holds mu
	waiter     *wait.Waiter
	maxBacklog uint64
	// windowBacklog is the largest backlog since takeBacklog last
	// reset it, which another goroutine does while the reader reads.
	windowBacklog atomic.Uint64

	release  func() error // unmaps the buffers
	freeOnce sync.Once
	freeErr  error
}

// lease takes the lock for the reading goroutine, unless it holds it.
func (m *mapped) lease() {
	if !m.leased {
		m.mu.Lock()
		m.leased = true
	}
}

// unlease lets go of the lock, and frees the buffers if Close ran while
// the reader held it.
func (m *mapped) unlease() {
	if !m.leased {
		return
	}
	m.leased = false
	m.mu.Unlock()
	if m.waiter.Closed() {
		m.mu.Lock()
		m.free()
		m.mu.Unlock()
	}
}

// free unmaps the buffers and frees the waiter, once; mu is held.
func (m *mapped) free() error {
	m.freeOnce.Do(func() { m.freeErr = errors.Join(m.release(), m.waiter.Release()) })
	return m.freeErr
}

// publishInterval is how many consumed bytes of a buffer of size bytes a
// reader may hold back before publishing its position: a store the kernel
// must see costs a locked instruction, about half of a record's reading
// cost when paid per record (BenchmarkConsumer), while a position held
// back makes that much of the buffer look full to the producer. 1/16 of
// the buffer, at most 4 KiB, bounds the latter to 6%.
func publishInterval(size int) uint64 {
	return uint64(min(size/16, 4096))
}

// batch counts the consumed bytes of one buffer that its reader has not
// published yet.
type batch struct {
	unpublished, every uint64
}

// advance accounts n consumed bytes and says whether the position is due
// to be published now.
func (b *batch) advance(n uint64) bool {
	b.unpublished += n
	if b.unpublished < b.every {
		return false
	}
	b.unpublished = 0
	return true
}

// published says the position was published (the reader caught up).
func (b *batch) published() { b.unpublished = 0 }

func (m *mapped) setDeadline(t time.Time) { m.waiter.SetDeadline(t) }
func (m *mapped) flush() error            { return m.waiter.Flush() }
func (m *mapped) backlog() uint64         { return m.maxBacklog }
func (m *mapped) wakeups() uint64         { return m.waiter.Wakeups }
func (m *mapped) waits() uint64           { return m.waiter.Waits }

// noteBacklog records the backlog a read saw. The window's maximum is a
// load per record and a store only when it grows; a store racing with
// takeBacklog's reset puts one read's backlog in the next window.
func (m *mapped) noteBacklog(b uint64) {
	m.maxBacklog = max(m.maxBacklog, b)
	if b > m.windowBacklog.Load() {
		m.windowBacklog.Store(b)
	}
}

// takeBacklog returns the largest backlog since its last call and
// starts a new window; any goroutine may call it.
func (m *mapped) takeBacklog() uint64 { return m.windowBacklog.Swap(0) }

// close unblocks a waiting read and frees the buffers, now if no read
// holds them, else when the reader lets go. Idempotent.
func (m *mapped) close() error {
	if !m.waiter.Shutdown() {
		return nil
	}
	if !m.mu.TryLock() {
		return nil
	}
	defer m.mu.Unlock()
	return m.free()
}
