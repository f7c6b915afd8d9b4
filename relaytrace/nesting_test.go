package relaytrace

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slabbench/slabbench/event"
)

// moduleKindStats reads the module's own counters of a running capture.
func moduleKindStats(t *testing.T) *moduleStats {
	t.Helper()
	ms, err := readModuleStats()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// stoppedCapture opens a capture with cfg, runs ops opens and closes the
// window; the caller drains it.
func stoppedCapture(t *testing.T, cfg Config, ops int) *Capture {
	t.Helper()
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	openClose(context.Background(), ops)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTruthWindowUnderNesting makes a same-kind hit nest, on every CPU,
// inside the first kmalloc and kfree hit of the window, between the
// counting perf event's probe and the module's (module parameter
// nest_first): the case an interrupt freeing memory there creates. The
// window must still be exact, and the window a stamp in the emitting probe
// alone would give (first_emit) must be one short: the bug this fixes.
func TestTruthWindowUnderNesting(t *testing.T) {
	needModule(t)
	c := stoppedCapture(t, Config{Truth: true, SubbufSize: 64 << 10, NumSubbufs: 16, nestFirst: true}, 2000)
	var rec event.Record
	drain(t, c, &rec)
	checkStats(t, c) // captured + lost == truth on every kind
	ms := moduleKindStats(t)
	checked := 0
	for _, cs := range ms.cpus {
		for _, k := range []event.Kind{event.KindKmalloc, event.KindKfree} {
			km := cs.kinds[k]
			if km.attempts == 0 {
				continue
			}
			checked++
			window := km.truthLast - km.truthFirst + 1
			emitOnly := km.truthLast - km.firstEmit + 1
			t.Logf("cpu %d %s: attempts %d, window %d, nested %d; an emit-only stamp would give %d",
				cs.cpu, k, km.attempts, window, km.nested, emitOnly)
			if km.nested == 0 {
				t.Errorf("cpu %d %s: nest_first nested no hit", cs.cpu, k)
			}
			if window != km.attempts || emitOnly != km.attempts-1 {
				t.Errorf("cpu %d %s: window %d and emit-only window %d for %d attempts; want %d and %d",
					cs.cpu, k, window, emitOnly, km.attempts, km.attempts, km.attempts-1)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no kmalloc or kfree hit on any CPU")
	}
}

// loopbackTraffic sends 1 KiB messages back and forth over loopback TCP
// until ctx ends: skbs are freed in softirq context, often nested inside a
// task's own slab calls.
func loopbackTraffic(ctx context.Context, t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal("SIOCGIFFLAGS lo: ", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal("bringing lo up: ", err)
	}
	unix.Close(fd)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			context.AfterFunc(ctx, func() { conn.Close() })
			go io.Copy(conn, conn)
		}
	}()
	for range 2 {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		go func() {
			buf := make([]byte, 1024)
			for ctx.Err() == nil {
				if _, err := conn.Write(buf); err != nil {
					return
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					return
				}
			}
		}()
	}
}

// TestTruthUnderSoftirqFrees captures the whole system for 3 s, several
// times, under loopback network traffic and open/close (frees in softirq
// context): every window must balance exactly. SLABBENCH_SOFTIRQ_RUNS sets the number of
// runs (default 3).
func TestTruthUnderSoftirqFrees(t *testing.T) {
	needModule(t)
	runs := 3
	if s := os.Getenv("SLABBENCH_SOFTIRQ_RUNS"); s != "" {
		var err error
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("SLABBENCH_SOFTIRQ_RUNS=%q: want a count >= 1", s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loopbackTraffic(ctx, t)
	go openClose(ctx, 0) // files are freed from RCU callbacks in softirq
	var nested uint64
	for i := range runs {
		c, err := Open(Config{Truth: true, SubbufSize: 256 << 10, NumSubbufs: 16})
		if err != nil {
			t.Fatal(err)
		}
		var rec event.Record
		readUntil(t, c, &rec, time.Now().Add(3*time.Second))
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		drain(t, c, &rec)
		st := checkStats(t, c)
		var runNested uint64
		for _, cs := range moduleKindStats(t).cpus {
			for _, k := range event.AllKinds {
				runNested += cs.kinds[k].nested
			}
		}
		nested += runNested
		tot := st.Total()
		t.Logf("run %d: captured %d lost %d truth %d, %d handled hits nested in another of their kind",
			i+1, tot.Captured, tot.Lost, tot.Truth, runNested)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d runs balanced exactly; %d nested hits in all", runs, nested)
}
