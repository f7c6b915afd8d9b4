package capture

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/slabbench/slabbench/event"
	"golang.org/x/sys/unix"
)

// consumer drains a capture on a goroutine locked to one OS thread, so its
// CPU time can be read from that thread alone.
type consumer struct {
	c       event.Capture
	done    chan struct{}
	records uint64
	cpuNs   int64
	lag     *LagRecorder
	err     error
	once    sync.Once
}

// startConsumer starts draining c, on cfg.ConsumerCPU if cfg.PinConsumer.
func startConsumer(c event.Capture, cfg Config, onRecord func(*event.Record)) (*consumer, error) {
	cons := &consumer{c: c, done: make(chan struct{})}
	started := make(chan error)
	go func() {
		defer close(cons.done)
		runtime.LockOSThread()
		if cfg.PinConsumer {
			var set unix.CPUSet
			set.Set(cfg.ConsumerCPU)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				// The thread keeps its affinity: let it go with the
				// goroutine rather than back to the scheduler.
				started <- fmt.Errorf("pinning the consumer to CPU %d: %w", cfg.ConsumerCPU, err)
				return
			}
		} else {
			defer runtime.UnlockOSThread()
		}
		before := threadCPUTime()
		cons.lag = NewLagRecorder(c)
		started <- nil
		if cfg.ConsumerStall > 0 {
			time.Sleep(cfg.ConsumerStall)
		}
		var rec event.Record
		for {
			err := c.ReadInto(&rec)
			if err != nil {
				if !errors.Is(err, event.ErrFlushed) && !errors.Is(err, os.ErrDeadlineExceeded) {
					cons.err = err
				}
				break
			}
			cons.records++
			cons.lag.Record(rec.TsNs)
			if onRecord != nil {
				onRecord(&rec)
			}
		}
		cons.cpuNs = threadCPUTime() - before
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return cons, nil
}

// finish asks the reader to return everything pending and waits for the
// consumer to end. Call it after Stop.
func (cons *consumer) finish() {
	cons.once.Do(func() {
		if err := cons.c.Flush(); err != nil {
			// A reader that cannot flush still returns pending records
			// before a past deadline.
			cons.c.SetDeadline(time.Now())
		}
		<-cons.done
	})
}

func threadCPUTime() int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
