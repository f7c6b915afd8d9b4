package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// parseFlags parses args into fs so that a bad flag gives one error line
// naming the flag and what it accepts (the flag package would print the
// whole usage after its message); -h prints the usage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if fs.Usage != nil {
			fs.Usage()
		} else {
			fmt.Fprintf(out, "usage of slabbench %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	}
	if strings.Contains(err.Error(), "provided but not defined") {
		return fmt.Errorf("%w: slabbench %s -h lists the flags", err, fs.Name())
	}
	if want := accepts(fs, err); want != "" {
		return fmt.Errorf("%w: want %s", err, want)
	}
	return err
}

var flagInError = regexp.MustCompile(`(?:flag|for) -+([a-z][a-z0-9-]*)`)

// accepts says what the flag named in a parse error takes, from its type.
func accepts(fs *flag.FlagSet, err error) string {
	m := flagInError.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	f := fs.Lookup(m[1])
	if f == nil {
		return ""
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case bool:
		return "true or false"
	case time.Duration:
		return "a duration such as 500ms, 2s or 1m"
	case int, int64, uint, uint64:
		return "an integer"
	case float64:
		return "a number"
	}
	return ""
}

// commandArgs returns the program a command runs as its workload: the
// arguments after "--". Any other argument left after the flags is an
// error naming the command's usage.
func commandArgs(fs *flag.FlagSet, args []string, name string) ([]string, error) {
	if fs.NArg() == 0 {
		return nil, nil
	}
	if i := slices.Index(args, "--"); i >= 0 && slices.Equal(args[i+1:], fs.Args()) {
		return fs.Args(), nil
	}
	return nil, fmt.Errorf("unexpected argument %q: %s takes flags, then -- CMD ARGS to run a program as the workload (slabbench %s -h)", fs.Arg(0), name, name)
}

// flagGiven says whether the command line set flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
