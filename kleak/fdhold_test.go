package kleak_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/kleak"
	"github.com/slabbench/slabbench/workloads"
	"golang.org/x/sys/unix"
	"os"
)

func TestExplore(t *testing.T) {
	syms, err := kleak.LoadSymbols(kleak.KallsymsPath)
	if err != nil {
		t.Fatal(err)
	}
	tr := kleak.New(kleak.Config{TGID: uint32(os.Getpid())})
	cfg := capture.Config{Path: capture.PathRingbuf, Attach: "tracepoint", Kinds: event.AllKinds, Truth: true,
		SubbufSize: 64 << 10, NumSubbufs: 16, OnRecord: tr.Observe, Workload: workloads.Config{Name: "fdhold", Ops: 1000, Hold: time.Second}}
	s, err := capture.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		workloads.Run(context.Background(), s.Workload())
		close(done)
	}()
	time.Sleep(500 * time.Millisecond)
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	snap := tr.Snapshot(uint64(ts.Nano()), 0)
	sort.Slice(snap.Sites, func(i, j int) bool { return snap.Sites[i].Outstanding > snap.Sites[j].Outstanding })
	for _, st := range snap.Sites[:min(8, len(snap.Sites))] {
		t.Logf("%s %+v", syms.Resolve(st.Address), st)
	}
	t.Logf("%+v", snap.Accounting)
	<-done
	res, _ := s.Finish(workloads.Result{})
	t.Logf("%v", res.Verified)
}
