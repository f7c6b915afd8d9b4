package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/kleak"
)

// sortKey orders top's call sites.
type sortKey string

const (
	sortOutstandingBytes sortKey = "outstanding-bytes"
	sortOutstanding      sortKey = "outstanding"
	sortAllocs           sortKey = "allocs"
	sortBytes            sortKey = "bytes"
	sortAge              sortKey = "age"
)

var sortKeys = []sortKey{sortOutstandingBytes, sortOutstanding, sortAllocs, sortBytes, sortAge}

const sortKeyList = "outstanding-bytes, outstanding, allocs, bytes or age"

func parseSortKey(s string) (sortKey, error) {
	if slices.Contains(sortKeys, sortKey(s)) {
		return sortKey(s), nil
	}
	return "", fmt.Errorf("--sort %q: want %s", s, sortKeyList)
}

// next is the key after k, for the interactive view's s key.
func (k sortKey) next() sortKey {
	i := slices.Index(sortKeys, k)
	return sortKeys[(i+1)%len(sortKeys)]
}

// value is what k sorts by, largest first.
func (k sortKey) value(s kleak.Site) uint64 {
	switch k {
	case sortOutstanding:
		return s.Outstanding
	case sortAllocs:
		return s.Allocs
	case sortBytes:
		return s.Bytes
	case sortAge:
		return uint64(s.Oldest)
	}
	return s.OutstandingBytes
}

// topSites returns the first n sites (all for n == 0) by key, ties broken
// by address so that the order is stable between intervals.
func topSites(sites []kleak.Site, key sortKey, n int) []kleak.Site {
	sorted := slices.Clone(sites)
	slices.SortFunc(sorted, func(a, b kleak.Site) int {
		return cmp.Or(cmp.Compare(key.value(b), key.value(a)), cmp.Compare(a.Address, b.Address))
	})
	if n > 0 && len(sorted) > n {
		sorted = sorted[:n]
	}
	return sorted
}

// perSecond is n over secs, the length of the interval it was counted in.
func perSecond(n uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

// stackFrames is how many of a stack's callers the table shows under its
// row, grouped by stack (the --json rows have them all).
const stackFrames = 5

// tableRows are the rows of the table: one per call site, or, grouped by
// stack, one per stack.
func tableRows(f frame, opts topOptions) []kleak.Site {
	if opts.byStack {
		return stackRows(f.snap.Sites)
	}
	return kleak.BySite(f.snap.Sites)
}

// stackRows are the rows of a snapshot that have a stack.
func stackRows(sites []kleak.Site) []kleak.Site {
	var rows []kleak.Site
	for _, s := range sites {
		if s.HasStack {
			rows = append(rows, s)
		}
	}
	return rows
}

// callers are the first frames of a stack past the allocator's own and
// past the call site (the row names it already), at most stackFrames.
func callers(frames []string, site string) []string {
	for i, fr := range frames {
		if !strings.HasPrefix(fr, "kmem_cache_alloc") && !strings.HasPrefix(fr, "__kmalloc") && !strings.HasPrefix(fr, "kmalloc") {
			frames = frames[i:]
			break
		}
	}
	if len(frames) > 1 && frames[0] == site {
		frames = frames[1:]
	}
	return frames[:min(len(frames), stackFrames)]
}

// renderFrame is the text of one frame: a header, the call sites, the
// per-family lines and the accounting footer. width > 0 cuts the table's
// lines to it and wraps the footer's.
func renderFrame(f frame, opts topOptions, syms *kleak.Symbols, width int) string {
	var b strings.Builder
	secs := f.interval.Seconds()
	state := fmt.Sprintf("+%.0fs", f.at.Sub(f.started).Seconds())
	if f.final {
		state = "final, after the capture stopped"
	}
	who := "all processes"
	if opts.pid != 0 {
		who = fmt.Sprintf("pid %d", opts.pid)
	}
	rows := ""
	if opts.byStack {
		rows = "  rows by stack"
	}
	fmt.Fprintf(&b, "slabbench top  %s  path %s/%s  %s  every %v  %s  sort %s%s\n",
		f.at.Format("15:04:05"), opts.path, opts.attach, who, opts.interval, state, opts.sort, rows)
	age := ""
	if f.snap.MinAge > 0 {
		age = fmt.Sprintf(" (>= %v old)", f.snap.MinAge)
	}
	fmt.Fprintf(&b, "%-40s %-10s %9s %9s %10s %11s %11s %8s\n", "CALL SITE", "KIND", "ALLOCS/s", "FREES/s", "BYTES/s",
		"OUTSTANDING", "OUT-BYTES", "OLDEST")
	for _, s := range topSites(tableRows(f, opts), opts.sort, opts.top) {
		oldest := "-"
		if s.Outstanding > 0 {
			oldest = fmt.Sprintf("%.1fs", s.Oldest.Seconds())
		}
		site := syms.Resolve(s.Address)
		fmt.Fprintf(&b, "%-40s %-10s %9.0f %9.0f %10s %11d %11s %8s\n", cut(site, 40), s.Family,
			perSecond(s.Allocs, secs), perSecond(s.Frees, secs), bytesize.Approx(perSecond(s.Bytes, secs)),
			s.Outstanding, bytesize.Approx(float64(s.OutstandingBytes)), oldest)
		if opts.byStack {
			for _, fr := range callers(opts.stacks.get(s.Stack), site) {
				fmt.Fprintf(&b, "    <- %s\n", fr)
			}
		}
	}
	for _, fam := range f.snap.Families {
		fmt.Fprintf(&b, "%-40s %-10s %9.0f %9.0f %10s %11d %11s\n", "all "+fam.Family.String()+age, fam.Family,
			perSecond(fam.Allocs, secs), perSecond(fam.Frees, secs), bytesize.Approx(perSecond(fam.Bytes, secs)),
			fam.Outstanding, bytesize.Approx(float64(fam.OutstandingBytes)))
	}
	if width <= 0 {
		return b.String() + footer(f)
	}
	// The table's lines are cut to the width; the footer's sentences
	// wrap, since each is read whole.
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = cut(l, width)
	}
	return strings.Join(lines, "\n") + ansi.Wrap(footer(f), width, "")
}

// footer is the accounting of the window so far: what was lost and what
// that means for the outstanding figures above it.
func footer(f frame) string {
	a := f.snap.Accounting
	var b strings.Builder
	source := "from sequence gaps so far"
	if a.Final {
		source = "exact, from the capture's counters"
	}
	fmt.Fprintf(&b, "window: captured %d, dropped %d (buffer full), missed %d (probe not run); %s\n",
		a.Captured, a.Dropped, a.Missed, source)
	if a.ProbeMisses > a.Missed {
		fmt.Fprintf(&b, "the kernel skipped the probe %d times for recursion (%d frees), more than missed: %s\n",
			a.ProbeMisses, a.ProbeMissedFrees, capture.HiddenMissesWhy)
	}
	fmt.Fprintf(&b, "outstanding may be overstated by up to %d lost frees and understated by up to %d (%d lost allocations, %d untracked; table %d of %d)\n",
		a.OverstatedBy(), a.UnderstatedBy(), a.UnderstatedBy()-a.Untracked, a.Untracked, f.snap.Tracked, f.snap.MaxTracked)
	fmt.Fprintf(&b, "frees of allocations not followed (made before the window, by other processes, or lost): %d; pointers reused with no free seen: %d; read out of time order (placed by their stamps): %d\n",
		a.UnmatchedFrees, a.ReusedWithoutFree, a.Reordered)
	if f.res != nil && f.res.Stacks != nil {
		fmt.Fprintf(&b, "%s (--json lists them per stack)\n", f.res.Stacks)
	}
	if f.res != nil && len(f.res.ForeignPrograms) > 0 {
		fmt.Fprintf(&b, "other tools' BPF programs on the tracepoints (%s) hid %d hits from the truth counter: the lost counts are lower bounds\n",
			foreignList(f.res.ForeignPrograms), f.res.ForeignHidden)
	}
	if f.res != nil {
		if f.res.Verified {
			fmt.Fprintf(&b, "check: captured + lost == %s on every CPU and kind\n", f.res.Reference)
		} else {
			fmt.Fprintf(&b, "check FAILED: %s\n", f.res.VerifyError)
		}
	}
	return b.String()
}

// cut shortens s to width runes.
func cut(s string, width int) string {
	r := []rune(s)
	if len(r) <= width {
		return s
	}
	return string(r[:width])
}

// topJSON is one line of `top --json`.
type topJSON struct {
	Time      string     `json:"time"`
	ElapsedS  float64    `json:"elapsed_s"`
	IntervalS float64    `json:"interval_s"`
	Final     bool       `json:"final"`
	Path      string     `json:"path"`
	Attach    string     `json:"attach"`
	Pid       uint32     `json:"pid,omitempty"`
	Sort      sortKey    `json:"sort"`
	MinAgeS   float64    `json:"min_age_s"`
	Sites     []siteJSON `json:"sites"`
	// Stacks (--stacks): the same counts per kernel stack, its frames
	// named, innermost first.
	Stacks     []siteJSON       `json:"stacks,omitempty"`
	Families   []familyJSON     `json:"families"`
	Accounting accountingJSON   `json:"accounting"`
	Verified   *bool            `json:"verified,omitempty"`
	VerifyErr  string           `json:"verify_error,omitempty"`
	Capture    *json.RawMessage `json:"capture,omitempty"`
}

type siteJSON struct {
	CallSite         string   `json:"call_site"`
	Address          string   `json:"address"`
	Family           string   `json:"family"`
	Allocs           uint64   `json:"allocs"`
	Frees            uint64   `json:"frees"`
	AllocsPerSec     float64  `json:"allocs_per_sec"`
	FreesPerSec      float64  `json:"frees_per_sec"`
	BytesPerSec      float64  `json:"bytes_per_sec"`
	Outstanding      uint64   `json:"outstanding"`
	OutstandingBytes uint64   `json:"outstanding_bytes"`
	OldestAgeS       float64  `json:"oldest_age_s"`
	Untracked        uint64   `json:"untracked_allocs"`
	Frames           []string `json:"frames,omitempty"`
}

type familyJSON struct {
	Family           string  `json:"family"`
	AllocsPerSec     float64 `json:"allocs_per_sec"`
	FreesPerSec      float64 `json:"frees_per_sec"`
	BytesPerSec      float64 `json:"bytes_per_sec"`
	Outstanding      uint64  `json:"outstanding"`
	OutstandingBytes uint64  `json:"outstanding_bytes"`
}

type accountingJSON struct {
	kleak.Accounting
	OverstatedBy  uint64 `json:"outstanding_overstated_by_up_to"`
	UnderstatedBy uint64 `json:"outstanding_understated_by_up_to"`
	Tracked       int    `json:"tracked"`
	MaxTracked    int    `json:"max_tracked"`
}

// jsonViewer prints one JSON object per interval, one per line.
type jsonViewer struct {
	w    io.Writer
	opts topOptions
	syms *kleak.Symbols
}

func (v *jsonViewer) run(ctx context.Context, begin func(), take func() frame) error {
	begin()
	return everyInterval(ctx, v.opts.interval, take, v.print)
}

func (v *jsonViewer) final(f frame) error { return v.print(f) }

func (v *jsonViewer) print(f frame) error {
	secs := f.interval.Seconds()
	out := topJSON{Time: f.at.Format(time.RFC3339Nano), ElapsedS: f.at.Sub(f.started).Seconds(), IntervalS: secs,
		Final: f.final, Path: v.opts.path, Attach: v.opts.attach, Pid: v.opts.pid, Sort: v.opts.sort,
		MinAgeS: v.opts.minAge.Seconds(), Sites: []siteJSON{},
		Accounting: accountingJSON{Accounting: f.snap.Accounting, OverstatedBy: f.snap.Accounting.OverstatedBy(),
			UnderstatedBy: f.snap.Accounting.UnderstatedBy(), Tracked: f.snap.Tracked, MaxTracked: f.snap.MaxTracked}}
	for _, s := range topSites(kleak.BySite(f.snap.Sites), v.opts.sort, v.opts.top) {
		out.Sites = append(out.Sites, v.siteJSON(s, secs))
	}
	if v.opts.stacks != nil {
		for _, s := range topSites(stackRows(f.snap.Sites), v.opts.sort, v.opts.top) {
			row := v.siteJSON(s, secs)
			row.Frames = v.opts.stacks.get(s.Stack)
			out.Stacks = append(out.Stacks, row)
		}
	}
	for _, fam := range f.snap.Families {
		out.Families = append(out.Families, familyJSON{Family: fam.Family.String(), AllocsPerSec: perSecond(fam.Allocs, secs),
			FreesPerSec: perSecond(fam.Frees, secs), BytesPerSec: perSecond(fam.Bytes, secs),
			Outstanding: fam.Outstanding, OutstandingBytes: fam.OutstandingBytes})
	}
	if f.res != nil {
		out.Verified = &f.res.Verified
		out.VerifyErr = f.res.VerifyError
		raw, err := json.Marshal(f.res)
		if err != nil {
			return err
		}
		msg := json.RawMessage(raw)
		out.Capture = &msg
	}
	return json.NewEncoder(v.w).Encode(out)
}

// siteJSON is one row of the table, its rates over secs.
func (v *jsonViewer) siteJSON(s kleak.Site, secs float64) siteJSON {
	return siteJSON{CallSite: v.syms.Resolve(s.Address), Address: fmt.Sprintf("%#x", s.Address),
		Family: s.Family.String(), Allocs: s.Allocs, Frees: s.Frees, AllocsPerSec: perSecond(s.Allocs, secs),
		FreesPerSec: perSecond(s.Frees, secs), BytesPerSec: perSecond(s.Bytes, secs), Outstanding: s.Outstanding,
		OutstandingBytes: s.OutstandingBytes, OldestAgeS: s.Oldest.Seconds(), Untracked: s.Untracked}
}
