package main

import (
	"strings"
	"testing"
	"time"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/kleak"
)

// TestFooterWrapsToTheWidth: in a narrow terminal the table's lines are
// cut, but the footer's sentences wrap, so none loses its end.
func TestFooterWrapsToTheWidth(t *testing.T) {
	now := time.Now()
	f := frame{snap: kleak.Snapshot{Sites: []kleak.Site{{Address: 0xffffffff81000000, Outstanding: 3}}, MaxTracked: 1000},
		at: now, started: now.Add(-2 * time.Second), interval: time.Second}
	f.snap.Accounting.ReusedWithoutFree = 497
	f.snap.Accounting.Reordered = 12345
	const width = 80
	text := renderFrame(f, topOptions{path: "ringbuf", attach: "tracepoint", interval: time.Second, sort: sortOutstandingBytes}, &kleak.Symbols{}, width)
	for _, l := range strings.Split(text, "\n") {
		if n := len([]rune(l)); n > width {
			t.Errorf("a line of %d columns in a %d-column view: %q", n, width, l)
		}
	}
	joined := strings.Join(strings.Fields(text), " ")
	if want := "pointers reused with no free seen: 497; read out of time order (placed by their stamps): 12345"; !strings.Contains(joined, want) {
		t.Errorf("the footer lost its end (%q):\n%s", want, text)
	}
}

// TestFinalFrameNamesLostStacks: with --stacks, the final table merges a
// call site's stacks into one row and says how many allocations have no
// stack, and why.
func TestFinalFrameNamesLostStacks(t *testing.T) {
	now := time.Now()
	f := frame{snap: kleak.Snapshot{Sites: []kleak.Site{
		{Address: 0xffffffff81000000, Stack: 1, HasStack: true, Outstanding: 3},
		{Address: 0xffffffff81000000, Stack: 2, HasStack: true, Outstanding: 4},
	}, MaxTracked: 1000}, at: now, started: now.Add(-2 * time.Second), interval: time.Second, final: true,
		res: &capture.Result{Verified: true, Stacks: &capture.StackResult{Depth: 16, Entries: 3, Taken: 10, MapFull: 5, Collisions: 7}}}
	text := renderFrame(f, topOptions{path: "ringbuf", attach: "tracepoint", interval: time.Second, sort: sortOutstandingBytes}, &kleak.Symbols{}, 0)
	if !strings.Contains(text, "stacks (up to 16 frames, 3 in the map): 10 allocations with one; without: 5 map full (--stack-entries), 7 hash collisions") {
		t.Errorf("no line for the stacks not taken:\n%s", text)
	}
	if rows := strings.Count(text, "0xffffffff81000000"); rows != 1 || !strings.Contains(text, " 7 ") {
		t.Errorf("the call site's two stacks should make one row of 7 outstanding (%d rows):\n%s", rows, text)
	}
}

// TestRowsByStack: grouped by stack (g), each stack is a row with its
// first callers beneath it, past the allocator's own frames and the call
// site the row names.
func TestRowsByStack(t *testing.T) {
	now := time.Now()
	frames := map[uint32][]uint64{1: {0xa0, 0x20, 0x30}, 2: {0x10, 0x40}}
	opts := topOptions{path: "ringbuf", attach: "tracepoint", interval: time.Second, sort: sortOutstanding, byStack: true,
		stacks: newStackNames(func(id uint32) ([]uint64, error) { return frames[id], nil }, &kleak.Symbols{})}
	f := frame{snap: kleak.Snapshot{Sites: []kleak.Site{
		{Address: 0xa0, Stack: 1, HasStack: true, Outstanding: 3},
		{Address: 0xa0, Stack: 2, HasStack: true, Outstanding: 4},
	}, MaxTracked: 1000}, at: now, started: now.Add(-time.Second), interval: time.Second}
	text := renderFrame(f, opts, &kleak.Symbols{}, 0)
	first, second := strings.Index(text, "<- 0x40"), strings.Index(text, "<- 0x20")
	if !strings.Contains(text, "rows by stack") || first < 0 || second < 0 || first > second || !strings.Contains(text, "<- 0x30") || strings.Contains(text, "<- 0xa0") {
		t.Errorf("want the 4-outstanding stack (0x10 <- 0x40) first, then the other with both callers past its call site 0xa0:\n%s", text)
	}
}

// TestViewFitsTheTerminal: rows by stack take 1 to 1+stackFrames lines
// each; the view drops rows until header, table, footer and keys fit the
// terminal's height, whatever the stacks' depths (a deep stack first and
// shallow ones after once pushed the header off a 24-line terminal).
func TestViewFitsTheTerminal(t *testing.T) {
	now := time.Now()
	deep := []uint64{0xa0, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26}
	frames := map[uint32][]uint64{1: deep, 2: deep, 3: deep}
	var sites []kleak.Site
	for i := range 20 {
		id := uint32(i + 1) // stacks 1-3 deep, the rest no callers
		sites = append(sites, kleak.Site{Address: 0xa0 + uint64(i), Stack: id, HasStack: true, Outstanding: uint64(100 - i)})
	}
	opts := topOptions{path: "ringbuf", attach: "tracepoint", interval: time.Second, sort: sortOutstanding, byStack: true, top: 20,
		stacks: newStackNames(func(id uint32) ([]uint64, error) { return frames[id], nil }, &kleak.Symbols{})}
	f := frame{snap: kleak.Snapshot{Sites: sites, MaxTracked: 1000}, at: now, started: now.Add(-time.Second), interval: time.Second}
	for _, height := range []int{16, 24, 40} {
		m := topModel{v: newInteractiveViewer(opts, &kleak.Symbols{}), frame: &f, width: 150, height: height}
		view := m.View()
		if lines := strings.Count(view, "\n") + 1; lines > height {
			t.Errorf("height %d: the view has %d lines:\n%s", height, lines, view)
		}
		if !strings.HasPrefix(view, "slabbench top ") || !strings.Contains(view, "q: quit") || !strings.Contains(view, "rows by stack") {
			t.Errorf("height %d: the header or the keys are gone:\n%s", height, view)
		}
	}
}
