package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slabbench/slabbench/internal/tail"
)

// guestWatch follows a running guest's channels: the console's tail, its
// first fault report and panic line, and the job's status.
type guestWatch struct {
	wg        sync.WaitGroup
	mu        sync.Mutex
	console   *lineRing
	fault     faultHead
	panicLine string
	started   bool
	exited    bool
	start     time.Time
	logf      func(string, ...any)
}

// follow copies the command's output to cfg's writers and reads the
// console and status channels until qemu closes them.
func (g *guestWatch) follow(readers []*os.File, cfg Config, res *Result) {
	copyTo := func(r io.Reader, w io.Writer) {
		defer g.wg.Done()
		io.Copy(orDiscard(w), r)
	}
	g.wg.Add(4)
	go copyTo(readers[1], cfg.Stdout)
	go copyTo(readers[2], cfg.Stderr)
	go g.readConsole(readers[0])
	go g.readStatus(readers[3], cfg.SMP, res)
}

func (g *guestWatch) readConsole(r io.Reader) {
	defer g.wg.Done()
	lines := bufio.NewScanner(r)
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		line := strings.TrimRight(lines.Text(), "\r")
		g.logf("console: %s", line)
		g.mu.Lock()
		g.console.add(line)
		g.fault.add(line)
		if g.panicLine == "" && strings.Contains(line, "Kernel panic") {
			g.panicLine = line
		}
		g.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

func (g *guestWatch) readStatus(r io.Reader, smp int, res *Result) {
	defer g.wg.Done()
	lines := bufio.NewScanner(r)
	for lines.Scan() {
		line := lines.Text()
		g.mu.Lock()
		switch {
		case line == "start":
			g.started = true
			res.BootTime = time.Since(g.start)
			g.logf("booted in %v (%s, %d CPUs, kernel %s)", res.BootTime.Round(time.Millisecond), res.Accel, smp, res.Release)
		case strings.HasPrefix(line, "exit "):
			if code, err := strconv.Atoi(strings.TrimPrefix(line, "exit ")); err == nil {
				res.ExitCode, g.exited = code, true
			}
		}
		g.mu.Unlock()
	}
}

// tail is what an error shows of a guest that failed: qemu's stderr, the
// first fault report and the console's last lines.
func (g *guestWatch) tail(qemuStderr *tail.Buffer) string {
	var b strings.Builder
	if s := qemuStderr.String(); s != "" {
		fmt.Fprintf(&b, "\nqemu stderr:\n%s", s)
	}
	if len(g.fault.lines) > 0 {
		fmt.Fprintf(&b, "\nthe guest's first fault report began:\n%s", strings.Join(g.fault.lines, "\n"))
	}
	if lines := g.console.lines(); len(lines) > 0 {
		fmt.Fprintf(&b, "\nlast guest console lines:\n%s", strings.Join(lines, "\n"))
	}
	return b.String()
}

// faultMarkers start the kernel's report of a fault. A panic's last
// lines are its stack; what faulted is at the report's start.
var faultMarkers = []string{"BUG:", "Oops:", "general protection fault", "invalid opcode", "int3:",
	"------------[ cut here ]------------", "kernel BUG at", "Unable to handle"}

// faultHeadLines is how many lines of the first fault report an error
// shows.
const faultHeadLines = 20

// faultHead keeps the first faultHeadLines lines of the first fault
// report on the console.
type faultHead struct{ lines []string }

func (h *faultHead) add(line string) {
	if len(h.lines) >= faultHeadLines {
		return
	}
	if len(h.lines) == 0 && !slices.ContainsFunc(faultMarkers, func(m string) bool { return strings.Contains(line, m) }) {
		return
	}
	h.lines = append(h.lines, line)
}

// lineRing keeps the last n lines of the console for error messages.
type lineRing struct {
	buf  []string
	next int
	full bool
}

func newLineRing(n int) *lineRing { return &lineRing{buf: make([]string, n)} }

func (r *lineRing) add(line string) {
	r.buf[r.next] = line
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *lineRing) lines() []string {
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}
