package capture

import (
	"fmt"
	"os"
	"strings"

	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/kleak"
)

// nameRepeats names the threads and call sites of the repeated truth
// stamps the reader saw, for a mismatch's message: each thread's comm
// while it still runs, each call site's function from kallsyms. Only a
// failed check pays for reading them.
func nameRepeats(st *event.Stats) {
	var syms *kleak.Symbols
	loaded := false
	comms := map[uint32]string{} // a thread may repeat on every CPU and kind
	for i := range st.PerCPU {
		for _, ev := range st.PerCPU[i].Repeats {
			if ev == nil {
				continue
			}
			if !loaded {
				syms, _ = kleak.LoadSymbols(kleak.KallsymsPath)
				loaded = true
			}
			// Tasks holds the samples' threads too: the first repeats
			// are counted before it is full.
			ev.Comms = map[uint32]string{}
			for pid := range ev.Tasks {
				c, ok := comms[pid]
				if !ok {
					c = threadComm(pid)
					comms[pid] = c
				}
				ev.Comms[pid] = c
			}
			if syms != nil {
				ev.Sites = map[uint64]string{}
				for _, r := range ev.Samples {
					ev.Sites[r.CallSite] = syms.Resolve(r.CallSite)
				}
			}
		}
	}
}

// threadComm is a thread's name, or "" once it has exited. Pid 0 is
// the idle task of whichever CPU, which /proc does not list.
func threadComm(pid uint32) string {
	if pid == 0 {
		return "idle"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
