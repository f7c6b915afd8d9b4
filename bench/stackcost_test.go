package bench

import (
	"fmt"
	"testing"

	"github.com/slabbench/slabbench/bench/plan"
	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/workloads"
)

// onOff is a row key's value for a switch.
func onOff(v bool) string {
	if v {
		return "on"
	}
	return "off"
}

// BenchmarkStackCost prices capture --stacks: the same closed-loop
// capture with stacks=on (each allocation's kernel stack into the BPF
// stack map, or the relay module's table, in the VM) and stacks=off, with
// the probes' time measured in the kernel (probe-ns/event, over every
// hit: frees take no stack). It is not part of make bench;
// results/README.md gives its figures and the command.
func BenchmarkStackCost(b *testing.B) {
	testenv.RequireRoot(b)
	g := plan.Geometry{SubbufSize: 16 << 10, NumSubbufs: 4}
	geo := fmt.Sprintf("subbuf=%s/n=%d", bytesize.Format(g.SubbufSize), g.NumSubbufs)
	attach := matrix.Attaches[0]
	wl := matrix.Workloads[0]
	wcfg := workloads.Config{Name: wl, Threads: matrix.Placements[0].Producers}
	for _, path := range []capture.Path{capture.PathRingbuf, capture.PathPerfbuf, capture.PathRelay} {
		for _, stacks := range []bool{false, true} {
			name := fmt.Sprintf("workload=%s/path=%s/attach=%s/wakeup=every/%s/stacks=%s", wl, path, attach, geo, onOff(stacks))
			if path == capture.PathRelay {
				name = fmt.Sprintf("workload=%s/path=relay/%s/stacks=%s", wl, geo, onOff(stacks))
			}
			b.Run(name, func(b *testing.B) {
				cfg := capture.Config{Path: path, Attach: attach, Kinds: event.AllKinds, Truth: true, Workload: wcfg,
					SubbufSize: g.SubbufSize, NumSubbufs: g.NumSubbufs, ProbeTime: true}
				if path == capture.PathRelay {
					if err := relaytrace.Available(""); err != nil {
						b.Skip("relay: ", err)
					}
					cfg.Attach = ""
				}
				if stacks {
					cfg.StackDepth = bpftrace.DefaultStackDepth
				}
				benchCapture(b, cfg)
			})
		}
	}
}
