// Package proctree follows a program's process tree: it starts the
// program and, from a raw tracepoint on process creation, adds every
// process forked by one already in the tree, so that a view can keep the
// events of the program and its children, whatever their lifetimes.
//
// The program's own fork is caught from the thread that starts it (the
// tree's spawner), so a child it forks before it could be added by hand
// is in the tree too. A process that could not join (the tree's map is
// full) is counted (Full), never silently dropped.
package proctree

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Tree is a followed process tree.
type Tree struct {
	objs proctreeObjects
	l    link.Link

	mu sync.Mutex
	// in caches lookups: members stay members; a non-member's answer
	// holds until the tree grows (joinedAt), since a process joins the
	// tree when it is forked, before any event of its own.
	in       map[uint32]bool
	joinedAt uint64
}

// DefaultMaxProcesses is how many processes a tree holds by default.
const DefaultMaxProcesses = 65536

// Open loads and attaches the tree's program, for a tree of at most
// maxProcesses processes (0: DefaultMaxProcesses); the tree is empty
// until Start.
func Open(maxProcesses int) (*Tree, error) {
	if maxProcesses == 0 {
		maxProcesses = DefaultMaxProcesses
	}
	spec, err := loadProctree()
	if err != nil {
		return nil, fmt.Errorf("process tree: %w", err)
	}
	spec.Maps["tree"].MaxEntries = uint32(maxProcesses)
	t := &Tree{in: map[uint32]bool{}}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return nil, fmt.Errorf("process tree: loading its BPF program: %w", err)
	}
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_fork", Program: t.objs.FollowFork})
	if err != nil {
		t.objs.Close()
		return nil, fmt.Errorf("process tree: attaching to sched_process_fork: %w", err)
	}
	t.l = l
	return t, nil
}

// Start starts cmd as the tree's root: it is forked from a thread the
// tree's program watches for the one fork, so the program and everything
// it starts are in the tree from their first instruction.
func (t *Tree) Start(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := t.objs.SpawnerTid.Set(uint32(unix.Gettid())); err != nil {
		return fmt.Errorf("process tree: %w", err)
	}
	err := cmd.Start()
	if clearErr := t.objs.SpawnerTid.Set(uint32(0)); clearErr != nil && err == nil {
		err = fmt.Errorf("process tree: %w", clearErr)
	}
	return err
}

// Contains says whether the process tgid is in the tree.
func (t *Tree) Contains(tgid uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	var joined uint64
	if err := t.objs.Joined.Get(&joined); err == nil && joined != t.joinedAt {
		t.joinedAt = joined
		for k, in := range t.in {
			if !in {
				delete(t.in, k)
			}
		}
	}
	if in, ok := t.in[tgid]; ok {
		return in
	}
	var v uint8
	err := t.objs.Tree.Lookup(tgid, &v)
	in := err == nil
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return false // not cached: asked again next time
	}
	t.in[tgid] = in
	return in
}

// Full returns how many processes forked from the tree found no room in
// it: their events are not followed.
func (t *Tree) Full() uint64 {
	var n uint64
	_ = t.objs.TreeFull.Get(&n)
	return n
}

// Close detaches the program and frees the tree. Idempotent.
func (t *Tree) Close() error {
	var errs []error
	if t.l != nil {
		errs = append(errs, t.l.Close())
		t.l = nil
		errs = append(errs, t.objs.Close())
	}
	return errors.Join(errs...)
}
