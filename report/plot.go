package report

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/slabbench/slabbench/internal/bytesize"
)

// ErrNoPlotData is returned by PlotPNG for a section without closed-loop
// lost-% rows.
var ErrNoPlotData = errors.New("no closed-loop (rate=max) rows with lost-%")

// PlotPaths returns where each section's loss plot goes: its results
// file's path with the extension replaced by .loss.png, or by
// .<environment>-<kernel>.loss.png when the file holds several sections.
func PlotPaths(sections []*Section) map[*Section]string {
	perFile := map[string]int{}
	for _, s := range sections {
		perFile[s.File]++
	}
	out := map[*Section]string{}
	for _, s := range sections {
		base := strings.TrimSuffix(s.File, filepath.Ext(s.File))
		if perFile[s.File] > 1 {
			base += "." + sanitize(s.Environment+"-"+s.Kernel)
		}
		out[s] = base + ".loss.png"
	}
	return out
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// WritePlot writes the section's loss plot as a PNG file at path.
func WritePlot(s *Section, path string) error {
	return writePNG(path, func(w io.Writer) error { return PlotPNG(w, s) })
}

// PlotPNG draws lost-% (median over runs) against per-CPU buffer memory on
// a log2 axis, one line per path of LossSeries, as a PNG.
func PlotPNG(w io.Writer, s *Section) error {
	series := s.LossSeries()
	if len(series) == 0 {
		return fmt.Errorf("%s: %w", s.File, ErrNoPlotData)
	}
	workloads := s.Workloads()
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Events lost against buffer memory: %s, kernel %s, closed loop, attach %s", s.Environment, s.Kernel, s.Attach)
	p.X.Label.Text = "per-CPU buffer memory, subbuf × n (log2 scale)"
	p.Y.Label.Text = "lost-% (median over runs; best sub-buffer count per size)"
	p.X.Scale = plot.LogScale{}
	p.Legend.Top = true
	p.Legend.Padding = vg.Points(4)
	p.Title.Padding = vg.Points(8)
	p.Add(plotter.NewGrid())

	lo, hi := math.MaxInt, 0
	for i, ser := range series {
		xys := make(plotter.XYs, len(ser.Points))
		for j, pt := range ser.Points {
			xys[j] = plotter.XY{X: float64(pt.PerCPUBytes), Y: pt.Row.Metric(UnitLost).Median}
			lo, hi = min(lo, pt.PerCPUBytes), max(hi, pt.PerCPUBytes)
		}
		l, sc, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		l.Color, l.Width, l.Dashes = plotutil.Color(i), vg.Points(2), plotutil.Dashes(i)
		sc.Color, sc.Shape, sc.Radius = plotutil.Color(i), plotutil.Shape(i), vg.Points(4)
		p.Add(l, sc)
		name := ser.Variant.Path
		if ser.Variant.Wakeup != "" {
			name += " wakeup=" + ser.Variant.Wakeup
		}
		if len(workloads) > 1 {
			name = ser.Workload + ": " + name
		}
		p.Legend.Add(name, l, sc)
	}
	p.X.Tick.Marker = log2Ticks(lo, hi)
	p.X.Min, p.X.Max = float64(lo)/1.25, float64(hi)*1.25
	// lost-% is a share: the full 0–100 scale keeps files comparable.
	p.Y.Min, p.Y.Max = 0, 100
	var yt plot.ConstantTicks
	for v := 0; v <= 100; v += 10 {
		t := plot.Tick{Value: float64(v)}
		if v%20 == 0 {
			t.Label = fmt.Sprint(v)
		}
		yt = append(yt, t)
	}
	p.Y.Tick.Marker = yt
	wt, err := p.WriterTo(9*vg.Inch, 5.5*vg.Inch, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// log2Ticks marks every power of two from lo to hi, labelling at most
// about eight of them.
func log2Ticks(lo, hi int) plot.ConstantTicks {
	first := 1
	for first*2 <= lo {
		first *= 2
	}
	var pows []int
	for v := first; v <= hi; v *= 2 {
		pows = append(pows, v)
	}
	step := (len(pows) + 7) / 8
	var ticks plot.ConstantTicks
	for i, v := range pows {
		t := plot.Tick{Value: float64(v)}
		if i%step == 0 {
			t.Label = bytesize.Format(v)
		}
		ticks = append(ticks, t)
	}
	return ticks
}
