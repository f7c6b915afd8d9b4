package bpftrace

import (
	"errors"
	"sync"
	"time"

	"github.com/slabbench/slabbench/internal/wait"
)

// mapped is what the ring and perf buffer readers of a mapping share: the
// lock that keeps Close from unmapping under a read, the waiter, and the
// largest backlog a read saw.
type mapped struct {
	mu         sync.Mutex
	waiter     *wait.Waiter
	maxBacklog uint64
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

// closeWith unblocks a waiting read, then, once no read runs, calls
// release and frees the waiter. Idempotent.
func (m *mapped) closeWith(release func() error) error {
	if !m.waiter.Shutdown() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return errors.Join(release(), m.waiter.Release())
}
