// Command slabbench captures Linux slab allocation events through the relay
// module or eBPF, checks every capture against the kernel's own count, and
// runs the same in a qemu VM where the host cannot load modules.
//
// Subcommands register themselves in the commands table from their own
// files (capture.go, vm.go, ...).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

// command is one subcommand: run parses args (after the subcommand name)
// and returns the process exit code's cause.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// exitError carries a specific exit code (e.g. the VM guest's) out of a
// subcommand without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func usage() {
	fmt.Fprintf(os.Stderr, "usage: slabbench <command> [flags]\n\ncommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'slabbench <command> -h' for the flags of a command.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "slabbench: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	err := cmd.run(os.Args[2:])
	var exit exitError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	case errors.As(err, &exit):
		os.Exit(exit.code)
	default:
		fmt.Fprintf(os.Stderr, "slabbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
