package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/slabbench/slabbench/report"
)

func init() {
	register("report", "turn benchmark results files into a Markdown sizing report (and loss plots)", runReport)
}

func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("o", "", "write the Markdown to this file (default: stdout), e.g. results/REPORT.md")
	plots := fs.Bool("plots", false, "also draw lost-% against per-CPU memory for each results file, as <file without .txt>.loss.png beside it")
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
	// make bench writes benchstat tables beside the results, and a glob
	// such as results/native-*.txt matches both: skip the tables.
	var files []string
	for _, f := range fs.Args() {
		if strings.HasSuffix(f, ".benchstat.txt") {
			fmt.Fprintf(os.Stderr, "slabbench report: skipping %s (a benchstat table, not results)\n", f)
			continue
		}
		files = append(files, f)
	}
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
	opt := report.Options{PlotLinks: map[*report.Section]string{}}
	if *plots {
		paths := report.PlotPaths(sections)
		for _, s := range sections {
			path := paths[s]
			err := report.WritePlot(s, path)
			switch {
			case errors.Is(err, report.ErrNoPlotData):
				fmt.Fprintf(os.Stderr, "slabbench report: no plot for %s, %s: %v\n", s.Environment, s.Kernel, err)
				continue
			case err != nil:
				return fmt.Errorf("plot %s: %w (check that its directory exists and is writable)", path, err)
			}
			fmt.Fprintf(os.Stderr, "wrote %s\n", path)
			opt.PlotLinks[s] = linkFrom(*out, path)
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
