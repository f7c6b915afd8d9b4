package perfrecord

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/tail"
	"github.com/slabbench/slabbench/truth"
)

// DefaultPerCPUBufferBytes is used when Config.PerCPUBufferBytes is 0:
// perf's own default for root (512 KiB per CPU).
const DefaultPerCPUBufferBytes = 512 << 10

// Timeouts for perf to answer.
var (
	enableTimeout = 60 * time.Second  // start-up synthesizes every task in /proc
	ackTimeout    = 60 * time.Second  // a busy perf under TCG answers late
	exitTimeout   = 120 * time.Second // draining and writing the file
	// disableAckTimeout bounds the wait for "disable": Stop falls back
	// to SIGINT without it.
	disableAckTimeout = 5 * time.Second
)

// Config of one perf record run.
type Config struct {
	Kinds []event.Kind // tracepoints kmem:<kind>; nil = all four
	// PerCPUBufferBytes is the data size of perf's ring buffer on each
	// CPU. perf -m takes a power-of-two page count, so it is rounded up to
	// one; Result.BufferBytes reports the real size. 0 = 512 KiB.
	PerCPUBufferBytes int
	// Output is the perf.data path; "" = a temporary file removed by
	// Close. perf renames an existing non-empty file to Output+".old".
	Output   string
	PerfPath string // "" = look up "perf" in PATH
}

// Session is one running perf record.
type Session struct {
	cfg      Config
	kinds    []event.Kind
	output   string
	tmpDir   string
	pages    int
	cpus     int
	ctl      *os.File // write end of perf's control fd
	ack      *os.File // read end of perf's ack fd
	ackBuf   []byte
	stderr   *tail.Buffer // perf's stderr, the last 64 KiB
	pid      int
	done     chan struct{} // closed when perf has exited
	state    *os.ProcessState
	waitErr  error
	startCPU time.Duration
	enabled  time.Time

	closeOnce sync.Once
	stopped   bool
}

func perfPath(p string) (string, error) {
	if p == "" {
		p = "perf"
	}
	path, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("perf not found (%v): install it (apt-get install linux-perf) or set the perf path", err)
	}
	return path, nil
}

// Available reports whether perf is installed and can record the kmem
// tracepoints system-wide here, by running a short perf record.
func Available() error {
	path, err := perfPath("")
	if err != nil {
		return err
	}
	for _, k := range event.AllKinds {
		if _, err := truth.TracepointID(k); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "slabbench-perf-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(path, "record", "-a", "-q", "--no-buildid", "--no-buildid-cache",
		"-e", "kmem:kmalloc", "-m", "1", "-o", filepath.Join(dir, "perf.data"), "--", "true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := runTimeout(cmd, 60*time.Second); err != nil {
		return fmt.Errorf("perf cannot record kmem tracepoints system-wide here (%v: %s): run as root, or set kernel.perf_event_paranoid=-1 and make tracefs readable", err, strings.TrimSpace(out.String()))
	}
	return nil
}

func runTimeout(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	t := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer t.Stop()
	return cmd.Wait()
}

// pagesFor rounds a byte size up to a power-of-two page count.
func pagesFor(bytes, pageSize int) int {
	pages := max((bytes+pageSize-1)/pageSize, 1)
	p := 1
	for p < pages {
		p <<= 1
	}
	return p
}

// events returns the kinds to record (all when none are given), perf's
// names for them and the per-CPU buffer size.
func (cfg Config) events() (kinds []event.Kind, names []string, perCPU int, err error) {
	kinds = cfg.Kinds
	if len(kinds) == 0 {
		kinds = event.AllKinds
	}
	for _, k := range kinds {
		if !k.Valid() {
			return nil, nil, 0, fmt.Errorf("perfrecord: invalid kind %d", k)
		}
		names = append(names, "kmem:"+k.String())
	}
	perCPU = cfg.PerCPUBufferBytes
	if perCPU == 0 {
		perCPU = DefaultPerCPUBufferBytes
	}
	if perCPU < 0 {
		return nil, nil, 0, fmt.Errorf("perfrecord: negative per-CPU buffer size %d", perCPU)
	}
	return kinds, names, perCPU, nil
}

// startLocked starts perf from a goroutine that keeps its thread locked
// until perf has exited: perf dies with the thread that forked it
// (Pdeathsig), so it dies only with this process, never while it records.
// It returns once perf has started; s.done closes when it has exited.
func (s *Session) startLocked(cmd *exec.Cmd) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // the thread ends with the goroutine; perf has exited by then
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.done)
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		s.state = cmd.ProcessState
		close(s.done)
	}()
	return <-started
}

// Start starts perf record and returns once its events are enabled.
func Start(cfg Config) (*Session, error) {
	path, err := perfPath(cfg.PerfPath)
	if err != nil {
		return nil, err
	}
	kinds, names, perCPU, err := cfg.events()
	if err != nil {
		return nil, err
	}
	cpus, err := truth.OnlineCPUs()
	if err != nil {
		return nil, fmt.Errorf("perfrecord: online CPUs: %w", err)
	}
	s := &Session{
		cfg:    cfg,
		kinds:  append([]event.Kind(nil), kinds...),
		output: cfg.Output,
		pages:  pagesFor(perCPU, os.Getpagesize()),
		cpus:   len(cpus),
		stderr: &tail.Buffer{Max: 64 << 10},
		done:   make(chan struct{}),
	}
	if s.output == "" {
		if s.tmpDir, err = os.MkdirTemp("", "slabbench-perf-"); err != nil {
			return nil, fmt.Errorf("perfrecord: temp dir: %w", err)
		}
		s.output = filepath.Join(s.tmpDir, "perf.data")
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		s.removeTemp()
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		s.removeTemp()
		return nil, err
	}
	s.ctl, s.ack = ctlW, ackR

	cmd := exec.Command(path, "record", "-a", "-q", "--no-buildid", "--no-buildid-cache",
		"-D", "-1", "--control", "fd:3,4",
		"-e", strings.Join(names, ","), "-m", strconv.Itoa(s.pages), "-o", s.output)
	cmd.ExtraFiles = []*os.File{ctlR, ackW} // fds 3 and 4 in perf
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr
	// perf dies with the forking thread; fork from a goroutine that keeps
	// its thread (locked) until perf has exited, so perf dies only with
	// this process, never while it records.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = s.startLocked(cmd)
	ctlR.Close()
	ackW.Close()
	if err != nil {
		s.ctl.Close()
		s.ack.Close()
		s.removeTemp()
		return nil, fmt.Errorf("perfrecord: start %s: %w", path, err)
	}
	s.pid = cmd.Process.Pid

	if err := s.command("enable", enableTimeout); err != nil {
		s.Close()
		return nil, fmt.Errorf("perfrecord: perf record did not enable its events: %w", err)
	}
	s.enabled = time.Now()
	s.startCPU = threadsCPUTime(s.pid)
	return s, nil
}

// command sends cmd on perf's control fd and waits for its "ack".
func (s *Session) command(cmd string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if _, err := s.ctl.Write([]byte(cmd + "\n")); err != nil {
		// EPIPE: perf closed its end of the control fifo, so it is
		// exiting; say so, as for an EOF on the ack fifo below.
		if errors.Is(err, syscall.EPIPE) {
			select {
			case <-s.done:
				return fmt.Errorf("perf exited (%v) before reading %q%s", s.waitErr, cmd, s.stderrNote())
			case <-time.After(timeout):
			}
		}
		return fmt.Errorf("send %q: %w%s", cmd, err, s.stderrNote())
	}
	if err := s.ack.SetReadDeadline(deadline); err != nil {
		return err
	}
	var b [64]byte
	for {
		if i := bytes.Index(s.ackBuf, []byte("ack\n")); i >= 0 {
			s.ackBuf = append(s.ackBuf[:0], s.ackBuf[i+4:]...)
			return nil
		}
		n, err := s.ack.Read(b[:])
		for _, c := range b[:n] {
			if c != 0 { // perf writes "ack\n\0"
				s.ackBuf = append(s.ackBuf, c)
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no ack for %q within %v%s", cmd, timeout, s.stderrNote())
			}
			if errors.Is(err, io.EOF) {
				<-s.done
				return fmt.Errorf("perf exited (%v) before acknowledging %q%s", s.waitErr, cmd, s.stderrNote())
			}
			return fmt.Errorf("read ack: %w", err)
		}
	}
}

func (s *Session) stderrNote() string {
	if e := s.stderr.String(); e != "" {
		return ": perf said: " + e
	}
	return ""
}

// threadsCPUTime sums the CPU time of every thread of pid from
// /proc/PID/task/*/schedstat (nanoseconds); 0 if it cannot be read.
func threadsCPUTime(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		sum += time.Duration(ns)
	}
	return sum
}

// Stop disables perf's events, stops perf with SIGINT, waits for it to
// write perf.data and counts what it wrote and lost.
func (s *Session) Stop() (Result, error) {
	if s.stopped {
		return Result{}, errors.New("perfrecord: Stop called twice")
	}
	s.stopped = true
	var res Result
	// Under the VM's 6.1 kernel a perf flooded by its own feedback
	// (writing perf.data allocates, which records more) was seen never
	// to answer "disable". SIGINT ends recording all the same; the window
	// then closes at the signal, which the truth bracket still covers.
	if err := s.command("disable", disableAckTimeout); err != nil {
		res.DisableUnacked = true
	}
	res.Window = time.Since(s.enabled)
	if err := syscall.Kill(s.pid, syscall.SIGINT); err != nil {
		return res, fmt.Errorf("perfrecord: SIGINT perf (pid %d): %w", s.pid, err)
	}
	select {
	case <-s.done:
	case <-time.After(exitTimeout):
		syscall.Kill(s.pid, syscall.SIGKILL)
		<-s.done
		return res, fmt.Errorf("perfrecord: perf did not exit within %v of SIGINT; killed it%s", exitTimeout, s.stderrNote())
	}
	if s.state == nil {
		return res, fmt.Errorf("perfrecord: perf: %v", s.waitErr)
	}
	res.RecordCPUTime = s.state.UserTime() + s.state.SystemTime()
	res.StartupCPUTime = s.startCPU
	// perf exits 0 after SIGINT when it handled the signal; a status
	// from the signal itself is fine too.
	if ws, ok := s.state.Sys().(syscall.WaitStatus); ok && !(ws.Exited() && ws.ExitStatus() == 0) &&
		!(ws.Signaled() && ws.Signal() == syscall.SIGINT) {
		return res, fmt.Errorf("perfrecord: perf record failed (%v)%s", s.state, s.stderrNote())
	}
	fi, err := os.Stat(s.output)
	if err != nil {
		return res, fmt.Errorf("perfrecord: %w", err)
	}
	res.DataBytes = fi.Size()
	res.PerCPUBufferBytes = s.pages * os.Getpagesize()
	res.CPUs = s.cpus
	res.BufferBytes = res.PerCPUBufferBytes * s.cpus

	counts, err := countPerfData(s.output)
	if err != nil {
		return res, fmt.Errorf("perfrecord: %s: %w", s.output, err)
	}
	return res, s.attribute(&res, counts)
}

// attribute puts perf.data's counts into res per kind: samples, and lost
// samples where perf gave them per event, else the ring buffers' total.
func (s *Session) attribute(res *Result, counts dataCounts) error {
	res.Captured = map[event.Kind]uint64{}
	res.LostByKind = map[event.Kind]uint64{}
	var kindsLost uint64
	for _, k := range s.kinds {
		id, err := truth.TracepointID(k)
		if err != nil {
			return err
		}
		key := eventKey{perfTypeTracepoint, id}
		res.Captured[k] = counts.samples[key]
		res.LostByKind[k] = counts.lostSamples[key]
		kindsLost += counts.lostSamples[key]
		delete(counts.samples, key)
		delete(counts.lostSamples, key)
	}
	for key, n := range counts.samples {
		if n > 0 {
			return fmt.Errorf("perfrecord: %s holds %d samples of an event (type %d, config %#x) that is none of the kinds recorded", s.output, n, key.typ, key.config)
		}
	}
	// What else lost samples is perf's sideband event (type software,
	// config dummy: COMM, MMAP, FORK records), not slab events.
	for _, n := range counts.lostSamples {
		res.LostOther += n
	}
	switch {
	case counts.haveLostSamples && counts.lostRecords <= kindsLost+res.LostOther:
		res.Lost = kindsLost
	case !counts.haveLostSamples && counts.lostRecords == 0:
		// No loss at all: the zero counts per kind are exact.
	default:
		// perf or the kernel predates PERF_FORMAT_LOST, or the ring
		// buffers lost more than perf's per-event counts say (perf
		// skips an event whose count it fails to read, saying so only
		// in its debug output): only the totals are known, sideband
		// records included.
		res.Lost = max(counts.lostRecords, kindsLost+res.LostOther)
		res.LostByKind = nil
	}
	return nil
}

// Close kills perf if it still runs, waits for it and removes the
// temporary perf.data. It is idempotent.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		select {
		case <-s.done:
		default:
			if s.pid > 0 {
				syscall.Kill(s.pid, syscall.SIGKILL)
			}
			<-s.done
		}
		s.ctl.Close()
		s.ack.Close()
		s.removeTemp()
	})
	return nil
}

func (s *Session) removeTemp() {
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// Output returns the perf.data path (temporary ones vanish on Close).
func (s *Session) Output() string { return s.output }
