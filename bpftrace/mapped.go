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
