package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/slabbench/slabbench/report"
)

func init() {
	register("report", "turn benchmark results files into a Markdown sizing report (and loss plots)", runReport)
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("o", "", "write the Markdown to this file (default: stdout), e.g. results/REPORT.md")
	plots := fs.Bool("plots", false, "also draw, beside each results file, lost-% against per-CPU memory (<file without .txt>.loss.png), the open loops with the sizing model (.model.png) and the CPU per event (.cost.png)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: slabbench report [-o results/REPORT.md] [-plots] FILE...\n\n"+
			"FILE is a benchfmt results file written by make bench or go test -bench ./bench\n"+
			"(results/<environment>-<kernel>.txt).\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no results files: pass one or more, e.g. slabbench report results/native-$(uname -r).txt")
	}
	files := fs.Args()
	if len(files) == 0 {
		return errors.New("only benchstat tables given: pass the results files, e.g. results/native-$(uname -r).txt")
	}
	sections, err := report.ReadFiles(files...)
	if err != nil {
		return err
	}
	// Open the output first, so a bad -o fails before any plot is drawn.
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return fmt.Errorf("-o %s: %w (check that its directory exists and is writable)", *out, err)
		}
		defer f.Close()
		w = f
	}
	opt := report.Options{PlotLinks: map[*report.Section]string{}, ModelPlotLinks: map[*report.Section]string{},
		CostPlotLinks: map[*report.Section]string{}}
	if *plots {
		sm := report.FitModel(sections)
		paths := report.PlotPaths(sections)
		for _, s := range sections {
			loss := paths[s]
			for _, pl := range []struct {
				path  string
				links map[*report.Section]string
				write func() error
			}{
				{loss, opt.PlotLinks, func() error { return report.WritePlot(s, loss) }},
				{report.ModelPlotPath(loss), opt.ModelPlotLinks, func() error { return report.WriteModelPlot(s, sm, report.ModelPlotPath(loss)) }},
				{report.CostPlotPath(loss), opt.CostPlotLinks, func() error { return report.WriteCostPlot(s, report.CostPlotPath(loss)) }},
			} {
				err := pl.write()
				switch {
				case errors.Is(err, report.ErrNoPlotData), errors.Is(err, report.ErrNoModelPlot):
					fmt.Fprintf(os.Stderr, "slabbench report: no %s for %s, %s: %v\n", filepath.Base(pl.path), s.Environment, s.Kernel, err)
					continue
				case err != nil:
					return fmt.Errorf("plot %s: %w (check that its directory exists and is writable)", pl.path, err)
				}
				fmt.Fprintf(os.Stderr, "wrote %s\n", pl.path)
				pl.links[s] = linkFrom(*out, pl.path)
			}
		}
	}
	if err := report.WriteMarkdown(w, sections, opt); err != nil {
		return err
	}
	if *out != "" {
		if err := w.Close(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	}
	return nil
}

// linkFrom is the plot's path as the Markdown at out should link it:
// relative to out's directory, or as given when the Markdown goes to
// stdout.
func linkFrom(out, plot string) string {
	if out == "" {
		return filepath.ToSlash(plot)
	}
	absOut, err1 := filepath.Abs(filepath.Dir(out))
	absPlot, err2 := filepath.Abs(plot)
	if err1 != nil || err2 != nil {
		return filepath.ToSlash(plot)
	}
	rel, err := filepath.Rel(absOut, absPlot)
	if err != nil {
		return filepath.ToSlash(plot)
	}
	return filepath.ToSlash(rel)
}
