package plan

import "testing"

// TestHeldOutRowsRunInTheirOwnGroup: the declared held-out rows run in the
// heldout group alone (its own -benchtime), with the declared wakeups, and
// the groups together run every row once.
func TestHeldOutRowsRunInTheirOwnGroup(t *testing.T) {
	for _, level := range []string{"full", "vm"} {
		p, err := For(level)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.HeldOut) == 0 {
			t.Fatalf("%s: no held-out rows declared", level)
		}
		sum := 0
		for _, g := range []string{"short", "long", "soak", "heldout"} {
			q, err := p.Narrow("", g)
			if err != nil {
				t.Fatal(err)
			}
			sum += q.CaptureRows()
			for rate := range p.HeldOut {
				if g != "heldout" && q.RateHasRows(rate) {
					t.Errorf("%s: group %s has rows at the held-out rate %v", level, g, rate)
				}
			}
		}
		if all := p.CaptureRows(); sum != all {
			t.Errorf("%s: the groups run %d rows, the whole plan %d", level, sum, all)
		}
		h, _ := p.Narrow("", "heldout")
		want := 0
		for rate, geoms := range p.HeldOut {
			want++ // path=none
			relay := 0
			if p.Runs("relay") {
				relay = 1
			}
			want += len(geoms) * (relay + 2*len(p.WakeupsAt(rate)))
		}
		if got := h.CaptureRows(); got != want {
			t.Errorf("%s: %d held-out rows, want %d (no attach or placement beyond the first, wakeups %v)", level, got, want, p.HeldOutWakeups)
		}
		if p.HeldOutLine() == "" {
			t.Errorf("%s: no held-out line for the results' configuration", level)
		}
	}
}
