package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
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
