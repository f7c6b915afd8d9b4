package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/kleak"
	"github.com/slabbench/slabbench/proctree"
)

// tracker is the table top fills from cfg's records: every process's
// allocations, --pid's, or those of the program's process tree, which
// cfg then starts in that tree. done frees the tree.
func (t topRun) tracker(cfg *capture.Config) (tr *kleak.Tracker, done func(), err error) {
	kcfg := kleak.Config{MaxTracked: t.maxTracked, TGID: t.opts.pid}
	done = func() {}
	if len(cfg.Command) > 0 {
		tree, err := proctree.Open(0)
		if err != nil {
			return nil, nil, err
		}
		done = func() { reportTree(tree) }
		kcfg.Include = tree.Contains
		cfg.StartCommand = t.commandStarter(tree)
	}
	tr = kleak.New(kcfg)
	cfg.OnRecord = tr.Observe
	return tr, done, nil
}

// commandStarter starts top's program in tree; under the interactive
// view its output would tear the screen, so it goes nowhere.
func (t topRun) commandStarter(tree *proctree.Tree) func(*exec.Cmd) error {
	interactive := t.interactive()
	return func(cmd *exec.Cmd) error {
		if interactive {
			cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
		}
		return tree.Start(cmd)
	}
}

// reportTree says how many of the program's processes top could not
// follow, if any, and frees the tree.
func reportTree(tree *proctree.Tree) {
	if n := tree.Full(); n > 0 {
		fmt.Fprintf(os.Stderr, "top: %d processes the program started were not followed (the tree holds %d): their allocations are not in the view\n",
			n, proctree.DefaultMaxProcesses)
	}
	tree.Close()
}
