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

// BenchmarkTruthCost prices the in-band truth stamp that every
// BenchmarkCapture row pays: the same closed-loop capture with truth=on
// (each hit reads the kernel's counting perf event) and truth=off (the
// probes' own attempt counts are the reference, so captured + lost ==
// attempts is checked instead of == truth). The perf-record row of
// BenchmarkCapture pays no stamp, so this is the difference to keep in
// mind when comparing it with the other paths. The geometry is the
// closed loop's first, small enough for every path to write it 20 times
// in a second.
func BenchmarkTruthCost(b *testing.B) {
	testenv.RequireRoot(b)
	g := plan.Geometry{SubbufSize: 16 << 10, NumSubbufs: 4}
	geo := fmt.Sprintf("subbuf=%s/n=%d", bytesize.Format(g.SubbufSize), g.NumSubbufs)
	for _, wl := range matrix.Workloads {
		b.Run("workload="+wl, func(b *testing.B) {
			wcfg := workloads.Config{Name: wl, Threads: matrix.Placements[0].Producers}
			b.Run("path=none", func(b *testing.B) { timeWorkload(b, wcfg) })
			// The eBPF rows attach as the level's capture rows do.
			attach := matrix.Attaches[0]
			rows := []struct {
				name string
				path capture.Path
			}{
				{"path=relay", capture.PathRelay},
				{"path=ringbuf/attach=" + string(attach) + "/wakeup=every", capture.PathRingbuf},
				{"path=perfbuf/attach=" + string(attach) + "/wakeup=every", capture.PathPerfbuf},
			}
			for _, row := range rows {
				for _, truth := range []bool{true, false} {
					name := fmt.Sprintf("%s/%s/truth=%s", row.name, geo, onOff(truth))
					b.Run(name, func(b *testing.B) {
						if row.path == capture.PathRelay {
							if err := relaytrace.Available(""); err != nil {
								b.Skip("relay: ", err)
							}
						}
						cfg := capture.Config{Path: row.path, Kinds: event.AllKinds, Truth: truth, Workload: wcfg,
							SubbufSize: g.SubbufSize, NumSubbufs: g.NumSubbufs}
						if row.path != capture.PathRelay {
							cfg.Attach = attach
						}
						benchCapture(b, cfg)
					})
				}
			}
		})
	}
}

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
