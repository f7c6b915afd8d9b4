package main

import (
	"strings"
	"testing"
	"time"

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
