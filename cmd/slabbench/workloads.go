package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/workloads"
)

func init() {
	register("workloads", "list the workloads and measure their slab events per op", runWorkloads)
}

func runWorkloads(args []string) error {
	fs := flag.NewFlagSet("workloads", flag.ContinueOnError)
	ops := fs.Int64("ops", 20000, "ops per measurement round (single thread)")
	measure := fs.Bool("measure", true, "measure events per op with the truth counter (needs root)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *ops < 1 {
		return fmt.Errorf("--ops %d: want >= 1 ops per round", *ops)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: workloads takes flags only", fs.Arg(0))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	fmt.Printf("%-12s %9s %9s %17s %16s %7s  %s\n", "workload", "kmalloc", "kfree", "kmem_cache_alloc", "kmem_cache_free", "total", "one op")
	for _, name := range workloads.Names() {
		desc, err := workloads.Describe(name)
		if err != nil {
			return err
		}
		if !*measure {
			fmt.Printf("%-12s %s\n", name, desc)
			continue
		}
		perOp, err := workloads.MeasureEventsPerOp(ctx, workloads.Config{Name: name, Threads: 1, Ops: *ops})
		if err != nil {
			return err
		}
		total := 0.0
		for _, k := range event.AllKinds {
			total += perOp[k]
		}
		fmt.Printf("%-12s %9.2f %9.2f %17.2f %16.2f %7.2f  %s\n", name, perOp[event.KindKmalloc], perOp[event.KindKfree],
			perOp[event.KindKmemCacheAlloc], perOp[event.KindKmemCacheFree], total, desc)
	}
	return nil
}
