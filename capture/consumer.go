package capture

import (
	"errors"
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
	lag     lagRecorder
	err     error
	once    sync.Once
}

func startConsumer(c event.Capture, stall time.Duration, onRecord func(*event.Record)) *consumer {
	cons := &consumer{c: c, done: make(chan struct{})}
	started := make(chan struct{})
	go func() {
		defer close(cons.done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		before := threadCPUTime()
		cons.lag.start()
		close(started)
		if stall > 0 {
			time.Sleep(stall)
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
			cons.lag.record(rec.TsNs)
			if onRecord != nil {
				onRecord(&rec)
			}
		}
		cons.cpuNs = threadCPUTime() - before
	}()
	<-started
	return cons
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
