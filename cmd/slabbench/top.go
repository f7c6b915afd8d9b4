package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/kleak"
	"github.com/slabbench/slabbench/workloads"
)

func init() {
	register("top", "live view of the top slab allocation sites and what stays outstanding (finding leaks)", runTop)
}

// topOptions is how top shows what the tracker holds.
type topOptions struct {
	path, attach string
	interval     time.Duration
	sort         sortKey
	top          int
	minAge       time.Duration
	pid          uint32
	// stacks names the capture's stacks (nil without --stacks); byStack
	// shows a row per stack instead of per call site.
	stacks  *stackNames
	byStack bool
}

func runTop(args []string) error {
	// Ctrl-C is how top ends, also while it starts (reading kallsyms
	// takes seconds in the VM): it then ends with nothing loaded.
	interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, err := parseTop(args)
	if err != nil {
		return err
	}
	syms, err := kleak.LoadSymbols(kleak.KallsymsPath)
	if err != nil || interrupted.Err() != nil {
		return err
	}
	return t.run(interrupted, syms)
}

// topRun is one top invocation, as its flags say.
type topRun struct {
	opts       topOptions
	cfg        capture.Config
	duration   time.Duration
	maxTracked int
	json       bool
}

// parseTop parses and checks top's flags.
func parseTop(args []string) (topRun, error) {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	cf := addCaptureFlags(fs, "none")
	interval := fs.Duration("interval", time.Second, "refresh every interval")
	duration := fs.Duration("duration", 0, "stop after this long (0: until q or Ctrl-C)")
	sortFlag := fs.String("sort", string(sortOutstandingBytes), "order of the call sites: "+sortKeyList)
	topN := fs.Int("top", 20, "call sites to show (0: all)")
	minAge := fs.Duration("min-age", 0, "count an allocation as outstanding only once it is this old")
	pidFlag := fs.String("pid", "", "only allocations by this process id, or self (this process, where --workload runs); frees count from anyone")
	maxTracked := fs.Int("max-tracked", kleak.DefaultMaxTracked, "outstanding allocations followed at most; past it new ones are counted as untracked")
	asJSON := fs.Bool("json", false, "print one JSON object per interval")
	if err := parseFlags(fs, args); err != nil {
		return topRun{}, err
	}
	command, err := commandArgs(fs, args, "top")
	if err != nil {
		return topRun{}, err
	}
	t := topRun{opts: topOptions{path: *cf.path, attach: *cf.attach, interval: *interval, top: *topN, minAge: *minAge},
		duration: *duration, maxTracked: *maxTracked, json: *asJSON}
	switch {
	case len(command) > 0 && *pidFlag != "":
		return t, fmt.Errorf("--pid %s: -- CMD follows the program's own processes; give one or the other", *pidFlag)
	case *interval < 10*time.Millisecond || *interval > time.Hour:
		return t, fmt.Errorf("--interval %v: want 10ms..1h", *interval)
	case *duration < 0:
		return t, fmt.Errorf("--duration %v: want > 0, or 0 to run until q or Ctrl-C", *duration)
	case *topN < 0:
		return t, fmt.Errorf("--top %d: want >= 0 (0: all)", *topN)
	case *minAge < 0:
		return t, fmt.Errorf("--min-age %v: want >= 0", *minAge)
	case *maxTracked < 1 || *maxTracked > 1<<28:
		return t, fmt.Errorf("--max-tracked %d: want 1..%d", *maxTracked, 1<<28)
	}
	if t.opts.sort, err = parseSortKey(*sortFlag); err != nil {
		return t, err
	}
	if t.opts.pid, err = parsePid(*pidFlag); err != nil {
		return t, err
	}
	// A workload without --ops runs as long as top; with --duration 0
	// that is until q or Ctrl-C.
	wlDuration := *duration
	if wlDuration == 0 && *cf.workload != "none" && *cf.ops == 0 {
		wlDuration = 100 * 365 * 24 * time.Hour
	}
	if *cf.workload == "none" {
		wlDuration = max(*duration, time.Hour) // a capture without ops needs a length; top ends it
	}
	if t.cfg, err = cf.config(event.AllKinds, true, wlDuration); err != nil {
		return t, err
	}
	t.cfg.Command = command
	// A holding workload holds until the window ends unless --hold says
	// otherwise: what it released before the first refresh would show
	// nothing.
	if !flagGiven(fs, "hold") && workloads.Holds(t.cfg.Workload.Name) {
		t.cfg.Workload.Hold = 100 * 365 * 24 * time.Hour
	}
	return t, t.cfg.Validate()
}

// viewer picks the output: JSON, the interactive view on a terminal, or
// plain frames.
func (t topRun) viewer(syms *kleak.Symbols) viewer {
	switch {
	case t.json:
		return &jsonViewer{w: os.Stdout, opts: t.opts, syms: syms}
	case t.interactive():
		return newInteractiveViewer(t.opts, syms)
	}
	return &plainViewer{w: os.Stdout, opts: t.opts, syms: syms}
}

// interactive says whether top shows the interactive view: on a
// terminal, unless --json.
func (t topRun) interactive() bool {
	return !t.json && term.IsTerminal(int(os.Stdout.Fd())) && term.IsTerminal(int(os.Stdin.Fd()))
}

// run captures, shows a frame per interval until the duration ends, q or
// Ctrl-C, then the final frame with the exact accounting.
func (t topRun) run(interrupted context.Context, syms *kleak.Symbols) error {
	cfg, opts := t.cfg, t.opts
	// The first use of the local time zone (the frames' clock) reads
	// /etc/localtime: do it now, not in the window, where that file would
	// count as this process's allocation (--pid self).
	time.Now().Zone()
	tr, done, err := t.tracker(&cfg)
	if err != nil {
		return err
	}
	defer done()
	sess, err := capture.Start(cfg)
	if err != nil {
		return err
	}
	defer sess.Close()

	var stacks *stackNames
	if cfg.StackDepth > 0 {
		stacks = newStackNames(sess.StackFrames, syms)
		t.opts.stacks = stacks
	}
	out := t.viewer(syms)
	now := time.Now()
	fr := &framer{sess: sess, tr: tr, minAge: opts.minAge, started: now, prev: now}
	take := fr.take
	// The window begins once the view is up, and the workload with it:
	// what the capture and the view allocate for themselves is not
	// followed. A program's exit ends the view.
	wctx, stopWorkload := context.WithCancel(interrupted)
	defer stopWorkload()
	vctx, endView := context.WithCancel(interrupted)
	defer endView()
	workloadDone := make(chan workloadEnd, 1)
	begin := func() {
		fr.begin()
		// --duration is the window's: start-up (loading the module under
		// a slow VM takes seconds) must not eat into it.
		if t.duration > 0 {
			time.AfterFunc(t.duration, endView)
		}
		if cfg.Workload.Name == "none" && len(cfg.Command) == 0 {
			workloadDone <- workloadEnd{}
			return
		}
		go func() {
			res, err := sess.Drive(wctx)
			workloadDone <- workloadEnd{res, err}
			if len(cfg.Command) > 0 {
				endView()
			}
		}()
	}
	viewErr := out.run(vctx, begin, func() frame { return take(false) })

	// Stop the workload (an fdhold releases what it holds), close the
	// window, drain it and take the exact accounting.
	stopWorkload()
	wl := <-workloadDone
	if stacks != nil {
		stacks.prefetch(tr.StackIDs()) // the stack map closes with the capture
	}
	res, err := sess.Finish(wl.res)
	if err != nil {
		return errors.Join(viewErr, err)
	}
	finalizeTracker(tr, res, fr.missesAtBegin)
	last := take(true)
	last.res = &res
	if err := out.final(last); err != nil {
		return errors.Join(viewErr, err)
	}
	return topError(viewErr, wl, res, cfg.Workload.Name)
}

// framer takes top's frames: the tracker's snapshot, with the kernel's
// skipped probe runs since the window began.
type framer struct {
	sess          *capture.Session
	tr            *kleak.Tracker
	minAge        time.Duration
	started, prev time.Time
	missesAtBegin [event.NumKinds]uint64 // the kernel counts over the programs' life
}

// begin opens the window: from now on allocations are followed.
func (fr *framer) begin() {
	fr.missesAtBegin, _, _ = fr.sess.RecursionMisses()
	fr.started = time.Now()
	fr.prev = fr.started
	fr.tr.Begin(monotonicNow())
}

// take is the frame of the interval that ends now; an interval's frame
// first publishes what the transport holds back.
func (fr *framer) take(final bool) frame {
	if !final {
		if published, err := fr.sess.Publish(); published && err == nil {
			time.Sleep(publishSettle)
		}
	}
	if m, ok, err := fr.sess.RecursionMisses(); ok && err == nil {
		fr.tr.SetProbeMisses(sinceBegin(m, fr.missesAtBegin))
	}
	f := frame{snap: fr.tr.Snapshot(monotonicNow(), fr.minAge), at: time.Now(), started: fr.started, final: final}
	f.interval, fr.prev = f.at.Sub(fr.prev), f.at
	return f
}

// topError is how top ended, once the final frame is out: the view's
// error, the workload's (other than being stopped), or a failed
// accounting check.
func topError(viewErr error, wl workloadEnd, res capture.Result, workload string) error {
	if viewErr != nil {
		return viewErr
	}
	if wl.err != nil && !errors.Is(wl.err, context.Canceled) && !errors.Is(wl.err, context.DeadlineExceeded) {
		return fmt.Errorf("workload %s: %w", workload, wl.err)
	}
	if !res.Verified {
		return fmt.Errorf("accounting check failed: %s", res.VerifyError)
	}
	return nil
}

// workloadEnd is how top's workload ended.
type workloadEnd struct {
	res workloads.Result
	err error
}

// finalizeTracker gives the tracker the capture's exact loss per kind and
// the kernel's skipped probe runs since the window began.
func finalizeTracker(tr *kleak.Tracker, res capture.Result, missesAtBegin [event.NumKinds]uint64) {
	var dropped, missed [event.NumKinds]uint64
	for _, k := range event.AllKinds {
		kr := res.Kinds[k.String()]
		dropped[k], missed[k] = kr.Dropped, kr.Missed
	}
	tr.Finalize(dropped, missed)
	tr.SetProbeMisses(sinceBegin(res.Stats.ProbeMisses, missesAtBegin))
}

// publishSettle is how long top lets the consumer read what Publish made
// readable (relay's open sub-buffers) before it takes a frame: reading a
// few sub-buffers takes well under a millisecond, waking up a few.
const publishSettle = 50 * time.Millisecond

// frame is one interval's snapshot and when it was taken.
type frame struct {
	snap     kleak.Snapshot
	at       time.Time
	interval time.Duration // since the previous frame: what the rates are over
	started  time.Time
	final    bool
	res      *capture.Result // the capture's result, in the final frame
}

// viewer shows frames: run calls begin once it is ready to show them,
// then takes one per interval until ctx ends (or the person quits); final
// shows the one taken after the capture stopped.
type viewer interface {
	run(ctx context.Context, begin func(), take func() frame) error
	final(f frame) error
}

// everyInterval calls show with a new frame every interval until ctx
// ends; the plain and JSON viewers use it.
func everyInterval(ctx context.Context, interval time.Duration, take func() frame, show func(frame) error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := show(take()); err != nil {
				return err
			}
		}
	}
}

// plainViewer prints one table per interval, for a pipe or a file.
type plainViewer struct {
	w    io.Writer
	opts topOptions
	syms *kleak.Symbols
}

func (v *plainViewer) run(ctx context.Context, begin func(), take func() frame) error {
	begin()
	return everyInterval(ctx, v.opts.interval, take, func(f frame) error {
		_, err := io.WriteString(v.w, renderFrame(f, v.opts, v.syms, 0)+"\n")
		return err
	})
}

func (v *plainViewer) final(f frame) error {
	_, err := io.WriteString(v.w, renderFrame(f, v.opts, v.syms, 0))
	return err
}

// sinceBegin is the kernel's recursion-miss counts m less those at the
// window's beginning.
func sinceBegin(m, atBegin [event.NumKinds]uint64) [event.NumKinds]uint64 {
	for k := range m {
		m[k] -= min(m[k], atBegin[k])
	}
	return m
}

func monotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// parsePid reads --pid: empty for every process, self, or a process id.
func parsePid(s string) (uint32, error) {
	switch s {
	case "":
		return 0, nil
	case "self":
		return uint32(os.Getpid()), nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("--pid %q: want a process id (1..4294967295) or self", s)
	}
	return uint32(n), nil
}
