package bpftrace

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/truth"
)

// functionCandidates lists, per kind, the allocator functions a function
// probe attaches to, newest kernel first (6.10 renamed them *_noprof).
var functionCandidates = map[event.Kind][]string{
	event.KindKmalloc:        {"__kmalloc_noprof", "__kmalloc"},
	event.KindKfree:          {"kfree"},
	event.KindKmemCacheAlloc: {"kmem_cache_alloc_noprof", "kmem_cache_alloc"},
	event.KindKmemCacheFree:  {"kmem_cache_free"},
}

// kernelFunctions returns, per kind, the allocator function this kernel
// has, from one read of /proc/kallsyms.
func kernelFunctions(kinds []event.Kind) (map[event.Kind]string, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, fmt.Errorf("finding the allocator functions: %w", err)
	}
	defer f.Close()
	present := map[string]bool{}
	for _, k := range kinds {
		for _, c := range functionCandidates[k] {
			present[c] = false
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 {
			if _, ok := present[fields[2]]; ok {
				present[fields[2]] = true
			}
		}
	}
	funcs := map[event.Kind]string{}
	for _, k := range kinds {
		for _, c := range functionCandidates[k] {
			if present[c] {
				funcs[k] = c
				break
			}
		}
		if funcs[k] == "" {
			return nil, fmt.Errorf("no %s function in /proc/kallsyms (looked for %s): use --attach tracepoint or rawtp",
				k, strings.Join(functionCandidates[k], ", "))
		}
	}
	return funcs, nil
}

func (c *Capture) attach() error {
	if err := c.noteForeignPrograms(); err != nil {
		return err
	}
	var err error
	if c.idleAtAttach, err = c.readTruthIdle(); err != nil {
		return err
	}
	if c.cfg.Attach == AttachTracepoint {
		// cilium/ebpf finds tracepoints in tracefs but does not mount
		// it: a fresh machine may have none mounted.
		if _, err := truth.TracefsDir(); err != nil {
			return err
		}
	}
	for _, k := range c.cfg.Kinds {
		prog := c.progs[k]
		var l link.Link
		var err error
		switch c.cfg.Attach {
		case AttachTracepoint:
			l, err = link.Tracepoint("kmem", k.String(), prog, nil)
		case AttachRawTP:
			l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: k.String(), Program: prog})
		case AttachKprobe:
			if l, err = link.Kprobe(c.funcs[k], prog, nil); err != nil {
				return fmt.Errorf("attaching a kprobe for %s failed (%v): this kernel has no usable kprobes (CONFIG_KPROBES); use --attach tracepoint or rawtp here, or run in the VM: slabbench vm -- capture --attach kprobe ...", k, err)
			}
		case AttachFentry:
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		}
		if err != nil {
			return fmt.Errorf("attaching the %s program for %s: %w", c.cfg.Attach, k, err)
		}
		c.links = append(c.links, l)
	}
	// Entry programs last: a call stamped at entry then always returns
	// through a trampoline that runs its exit program, and an exit whose
	// call began before finds no stamp and is not counted.
	for _, k := range c.cfg.Kinds {
		if prog := c.entryProgs[k]; prog != nil {
			l, err := link.AttachTracing(link.TracingOptions{Program: prog})
			if err != nil {
				return fmt.Errorf("attaching the fentry program for %s: %w", k, err)
			}
			c.links = append(c.links, l)
		}
	}
	return nil
}

// noteForeignPrograms lists the programs on the kmem tracepoints other
// than ours (truth.Foreign), just before the window opens and just after
// it closes (the listing opens a perf event: a struct file allocated and
// freed inside the window would be the capture's own event): the truth
// counter does not count a hit one of them returns 0 for. Function probes
// are checked against kprobes of their own, which no other program
// shares.
func (c *Capture) noteForeignPrograms() error {
	if !c.cfg.Truth || c.cfg.Attach.IsFunctionProbe() {
		return nil
	}
	if c.foreign == nil {
		var own []uint32
		for _, p := range c.progs {
			info, err := p.Info()
			if err != nil {
				return fmt.Errorf("reading our program's id: %w", err)
			}
			if id, ok := info.ID(); ok {
				own = append(own, uint32(id))
			}
		}
		c.foreign = truth.NewForeign(own)
	}
	return c.foreign.Note(c.cfg.Kinds)
}
