package report

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/slabbench/slabbench/sizing"
)

// ErrNoModelPlot is returned for a section without open-loop rows of the
// fit workload, or without models.
var ErrNoModelPlot = errors.New("no open-loop rows with a sizing model")

// ModelPlotPath and CostPlotPath are where a section's model and cost
// plots go, beside its loss plot.
func ModelPlotPath(lossPlot string) string {
	return strings.TrimSuffix(lossPlot, ".loss.png") + ".model.png"
}

func CostPlotPath(lossPlot string) string {
	return strings.TrimSuffix(lossPlot, ".loss.png") + ".cost.png"
}

// writePNG writes draw's PNG to path, removing the file on an error.
func writePNG(path string, draw func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := draw(f); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// WriteModelPlot and WriteCostPlot write the section's plots as PNG files.
func WriteModelPlot(s *Section, sm SizingModel, path string) error {
	return writePNG(path, func(w io.Writer) error { return ModelPlotPNG(w, s, sm) })
}

func WriteCostPlot(s *Section, path string) error {
	return writePNG(path, func(w io.Writer) error { return CostPlotPNG(w, s) })
}

// ModelPlotPNG draws, one panel per open-loop rate of the fit workload
// (first placement, tracepoint), the share of runs that dropped against
// per-CPU memory per path and wakeup (a median lost-% hides the rare
// run that drops, which is what sizing is about), with the model's minimum at that rate as a dashed vertical
// line of the same colour.
func ModelPlotPNG(w io.Writer, s *Section, sm SizingModel) error {
	var rates []string
	for _, r := range s.Rates(FitWorkload) {
		if r != HeadlineRate && len(s.captureRows(FitWorkload, r)) > 0 {
			rates = append(rates, r)
		}
	}
	env := s.Environment + " " + s.Kernel
	models := sm.envModels(env, "shared")
	if len(rates) == 0 || len(models) == 0 {
		return fmt.Errorf("%s: %w", s.File, ErrNoModelPlot)
	}
	var row []*plot.Plot
	for i, rate := range rates {
		p, err := modelPanel(sm, models, rate, i == 0)
		if err != nil {
			return err
		}
		if p != nil {
			row = append(row, p)
		}
	}
	if len(row) == 0 {
		return fmt.Errorf("%s: %w", s.File, ErrNoModelPlot)
	}
	title := fmt.Sprintf("Runs that dropped against memory, open loops of %s, %s\nsolid: measured; dashed: the model's minimum for a row's runs (even odds of a drop in them)", FitWorkload, env)
	return drawPanels(w, row, title)
}

// modelPanel plots one rate's open loops of the fit workload, per model:
// the share of runs that dropped against memory, and the model's minimum
// for such a run dashed; nil if no model has rows there. The first panel
// carries the axis label and the legend.
func modelPanel(sm SizingModel, models []sizing.Model, rate string, first bool) (*plot.Plot, error) {
	p := plot.New()
	p.X.Scale = plot.LogScale{}
	p.Y.Min, p.Y.Max = 0, 100
	p.X.Label.Text = "per-CPU memory (log2)"
	if first {
		p.Y.Label.Text = "runs that dropped, %"
	}
	p.Add(plotter.NewGrid())
	lo, hi := math.MaxInt, 0
	var perCPU, seconds []float64
	for j, m := range models {
		var xys plotter.XYs
		for _, o := range sm.Observations {
			if o.Key == m.Key && o.Workload == FitWorkload && o.Rate == rate {
				xys = append(xys, plotter.XY{X: float64(o.PerCPUBytes), Y: 100 * o.DroppedShare()})
				lo, hi = min(lo, o.PerCPUBytes), max(hi, o.PerCPUBytes)
				perCPU = append(perCPU, o.PerCPURate)
				seconds = append(seconds, o.Seconds())
			}
		}
		if len(xys) == 0 {
			continue
		}
		slices.SortFunc(xys, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		l, sc, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		l.Color, l.Width = plotutil.Color(j), vg.Points(1.5)
		sc.Color, sc.Shape, sc.Radius = plotutil.Color(j), plotutil.Shape(j), vg.Points(3)
		p.Add(l, sc)
		if first {
			p.Legend.Add(variantName(m), l, sc)
		}
	}
	if hi == 0 {
		return nil, nil
	}
	r, d := sizing.Median(perCPU), sizing.Median(seconds)
	for j, m := range models {
		need := m.MinBytes(r, sizing.Subbufs, d, sizing.RowRisk)
		if math.IsInf(need, 0) || need <= 0 {
			continue
		}
		x := min(max(need, float64(lo)/1.2), float64(hi)*1.2)
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: 100}})
		if err != nil {
			return nil, err
		}
		l.Color, l.Width, l.Dashes = plotutil.Color(j), vg.Points(1), []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
	}
	p.Title.Text = fmt.Sprintf("%s ops/s: %s events/s per CPU", rate, num(r))
	p.X.Tick.Marker = log2Ticks(lo, hi)
	p.X.Min, p.X.Max = float64(lo)/1.3, float64(hi)*1.3
	p.Legend.Top = true
	return p, nil
}

// drawPanels writes the panels side by side under one title as a PNG.
func drawPanels(w io.Writer, row []*plot.Plot, title string) error {
	width := vg.Length(len(row)) * 4.2 * vg.Inch
	img := vgimg.New(width, 4.8*vg.Inch)
	dc := draw.New(img)
	top := plot.New()
	top.Title.Text = title
	top.HideAxes()
	top.Draw(dc)
	t := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Millimeter * 6, PadTop: vg.Millimeter * 13, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{row}, t, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// CostPlotPNG draws the CostRows' probe and consumer CPU per event as
// stacked bars, one per path and wakeup.
func CostPlotPNG(w io.Writer, s *Section) error {
	wls := s.Workloads()
	if len(wls) == 0 {
		return fmt.Errorf("%s: %w", s.File, ErrNoPlotData)
	}
	rows := s.CostRows(wls[0])
	var probe, consumer plotter.Values
	var names []string
	for _, r := range rows {
		pm, cm := r.Metric(UnitProbe), r.Metric(UnitConsumer)
		if pm == nil || cm == nil {
			continue
		}
		probe, consumer = append(probe, pm.Median), append(consumer, cm.Median)
		names = append(names, variantLabel(r)+"\n"+geomLabel(r))
	}
	if len(names) == 0 {
		return fmt.Errorf("%s: %w", s.File, ErrNoPlotData)
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("CPU per event, closed loop: %s, kernel %s (medians)", s.Environment, s.Kernel)
	p.Y.Label.Text = "ns per event"
	width := vg.Points(28)
	pb, err := plotter.NewBarChart(probe, width)
	if err != nil {
		return err
	}
	cb, err := plotter.NewBarChart(consumer, width)
	if err != nil {
		return err
	}
	pb.Color, cb.Color = plotutil.Color(0), plotutil.Color(1)
	pb.LineStyle.Width, cb.LineStyle.Width = 0, 0
	cb.StackOn(pb)
	p.Add(plotter.NewGrid(), pb, cb)
	p.Legend.Add("probe-ns/event (in the kernel)", pb)
	p.Legend.Add("consumer-ns/event (the reader)", cb)
	p.Legend.Top, p.Legend.Left = true, true
	tallest := 0.0
	for i := range probe {
		tallest = max(tallest, probe[i]+consumer[i])
	}
	p.Y.Min, p.Y.Max = 0, tallest*1.2 // room for the legend
	p.NominalX(names...)
	wt, err := p.WriterTo(vg.Length(len(names))*1.3*vg.Inch+2.5*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}
