package tail

import (
	"strings"
	"testing"
)

func TestKeepsTheLastBytes(t *testing.T) {
	b := &Buffer{Max: 8}
	for _, s := range []string{"abc", "defgh", "ijk\n"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "efghijk" {
		t.Fatalf("kept %q, want the last 8 bytes trimmed: %q", got, "efghijk")
	}
	b.Write([]byte(strings.Repeat("x", 100)))
	if got := b.String(); got != strings.Repeat("x", 8) {
		t.Fatalf("after a long write: %q", got)
	}
}
