package capture

import (
	"cmp"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/event"
)

// KindResult is the accounting of one kind. Lost = Dropped + Missed.
type KindResult struct {
	Captured uint64 `json:"captured"`
	Lost     uint64 `json:"lost"`
	Truth    uint64 `json:"truth"`
	Attempts uint64 `json:"attempts"`
	// Dropped: the probe ran and the buffer was full (or, in relay's
	// overwrite mode, its sub-buffer was overwritten unread).
	Dropped uint64 `json:"dropped"`
	// Missed: the kernel did not run the probe for the hit (BPF
	// recursion protection), counted by the truth counter or, for a
	// tracepoint program, by the kernel's own count (Hidden).
	Missed uint64 `json:"missed"`
	// Hidden: the part of Missed and Truth the truth counter could not
	// see (event.Stats.Hidden).
	Hidden uint64 `json:"hidden,omitempty"`
	// ForeignHidden: the part of Truth the counter did not count because
	// another program on the tracepoint returned 0 for those hits
	// (event.Counts.ForeignHidden; Result.ForeignPrograms names them).
	ForeignHidden uint64 `json:"foreign_hidden,omitempty"`
	SeqGaps       uint64 `json:"seq_gaps"`
	// Uncounted: the part of Truth that function entry probes saw and the
	// counting kprobe skipped (repeated stamps).
	Uncounted uint64 `json:"uncounted,omitempty"`
	// EdgeNested: the part of Truth counted just outside the stamps'
	// span at the window's edge (event.Counts.EdgeNested).
	EdgeNested uint64 `json:"edge_nested,omitempty"`
}

// StackResult is what capture --stacks took: every allocation the probes
// handled is in exactly one of Taken (its record carries a stack id),
// MapFull, Collisions or Failed (event.Counts.StacksTaken and after).
type StackResult struct {
	Depth      int    `json:"depth"`
	Entries    int    `json:"entries"`
	Taken      uint64 `json:"taken"`
	MapFull    uint64 `json:"map_full"`
	Collisions uint64 `json:"collisions"`
	Failed     uint64 `json:"failed"`
}

// String says what --stacks took, in one line: the CLI's capture output
// and top's final table both print it.
func (s StackResult) String() string {
	return fmt.Sprintf("stacks (up to %d frames, %d in the map): %d allocations with one; without: %d map full (--stack-entries), %d hash collisions, %d the kernel could not walk",
		s.Depth, s.Entries, s.Taken, s.MapFull, s.Collisions, s.Failed)
}

// LowerBoundWhy explains loss_lower_bound, for the CLI.
const LowerBoundWhy = "this kernel (before 6.7) keeps no count of the hits it skips a tracepoint program for, and skips the truth counter with them: " +
	"the loss of each kind is a lower bound; --attach rawtp or --path relay count every hit"

// HiddenMissesWhy explains probe_misses above missed, for the CLI.
const HiddenMissesWhy = "on tracepoint attach the kernel skips the truth counter along with a program it skips, " +
	"so the counter does not see every such hit (frees in softirq, RCU callbacks, land inside a running program); " +
	"--attach rawtp or --path relay count them"

// ForeignProgram is a BPF program of another tool on a kmem tracepoint.
type ForeignProgram struct {
	Kind string `json:"kind"`
	ID   uint32 `json:"id"`
	Name string `json:"name,omitempty"` // "" once the program is gone
}

func foreignProgram(k event.Kind, id uint32) ForeignProgram {
	p := ForeignProgram{Kind: k.String(), ID: id}
	if prog, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := prog.Info(); err == nil {
			p.Name = info.Name
		}
		prog.Close()
	}
	return p
}

// ForeignWhy explains foreign_programs, for the CLI.
const ForeignWhy = "a tracepoint program that returns 0 for a hit makes the kernel skip that hit's perf events, the truth counter among them: " +
	"foreign_hidden counts the hits the probe handled beyond the counter's (each left a repeated stamp), " +
	"and a hit neither saw is in no count, so the loss is a lower bound; capture with no other tracing tool on kmem for an exact check"

// Result is what one capture measured. Its JSON form is the contract of
// `slabbench capture --json`.
type Result struct {
	Path     Path   `json:"path"`
	Attach   string `json:"attach"`
	Workload string `json:"workload"`
	// Command is the program run as the workload (Config.Command), and
	// CommandExit its exit status (-1: killed when the window ended).
	Command     string `json:"command,omitempty"`
	CommandExit int    `json:"command_exit,omitempty"`
	Threads     int    `json:"threads"`
	Ops         int64  `json:"ops"`
	DurationNs  int64  `json:"duration_ns"`
	CPUs        int    `json:"cpus"`
	BufferBytes int    `json:"buffer_bytes"`
	SubbufSize  int    `json:"subbuf_size"`
	NumSubbufs  int    `json:"subbufs"`
	WakeupBytes int    `json:"wakeup_bytes"`
	// PollNs is how often a reader that is never woken looked (--poll).
	PollNs   int64  `json:"poll_ns,omitempty"`
	Captured uint64 `json:"captured"`
	Lost     uint64 `json:"lost"`             // Dropped + Missed
	Dropped  uint64 `json:"dropped"`          // buffer full: a bigger buffer or faster reader helps
	Missed   uint64 `json:"missed"`           // probe not run: no buffer helps
	Hidden   uint64 `json:"hidden,omitempty"` // in Missed and Truth; see KindResult.Hidden
	// LossLowerBound says Missed, Lost and Truth may leave hits out: the
	// kernel keeps no count of the hits it skips a tracepoint program for
	// (before 6.7), or another tool's programs were on the tracepoints
	// (ForeignPrograms).
	LossLowerBound bool `json:"loss_lower_bound,omitempty"`
	// ForeignPrograms are the BPF programs of other tools the kernel had
	// attached to the kmem tracepoints during the window; ForeignHidden
	// is the part of Truth they hid from the counter.
	ForeignPrograms []ForeignProgram      `json:"foreign_programs,omitempty"`
	ForeignHidden   uint64                `json:"foreign_hidden,omitempty"`
	Truth           uint64                `json:"truth"`
	TruthChecked    bool                  `json:"truth_checked"`
	Kinds           map[string]KindResult `json:"kinds"`
	ProbeMisses     uint64                `json:"probe_misses"`
	SeqGaps         uint64                `json:"seq_gaps"`
	Uncounted       uint64                `json:"uncounted,omitempty"`   // in Truth; see KindResult.Uncounted
	MaxBacklog      int                   `json:"max_backlog,omitempty"` // relay: sub-buffers
	// MaxBacklogBytes is the most written-but-unread bytes the buffer of
	// one CPU held (relay: max backlog x sub-buffer size; ring buffer: its
	// producer - consumer position, perf buffer: data_head - data_tail,
	// when a record was read; 0 where the reader cannot see it:
	// cilium/ebpf's perf reader).
	MaxBacklogBytes uint64 `json:"max_backlog_bytes,omitempty"`
	ConsumerCPUNs   int64  `json:"consumer_cpu_ns"`
	// ConsumerCPU is the CPU the consumer was pinned to, -1 if none.
	ConsumerCPU   int    `json:"consumer_cpu"`
	CapturedBytes uint64 `json:"captured_bytes"`
	// WrittenBytes is what the captured records took in the buffer, their
	// transport's header and alignment included (Path.RecordBytes).
	WrittenBytes uint64 `json:"written_bytes"`
	// Wakeups counts the consumer's polls that returned with data ready
	// (0 where the reader does not say: cilium/ebpf's readers).
	Wakeups uint64 `json:"wakeups,omitempty"`
	// Lag is the delivery lag of the captured records: the time from a
	// record's ts_ns to when the consumer read it.
	Lag Lag `json:"lag"`
	// AchievedOpsPerSec is the rate the workload reached; LatePercent, in
	// open loop, the share of its ops that started more than one interval
	// behind their schedule.
	// ProbeRuns and ProbeNs are how often the probes ran and the time
	// spent inside them, measured in the kernel (Config.ProbeTime).
	ProbeRuns         uint64  `json:"probe_runs,omitempty"`
	ProbeNs           uint64  `json:"probe_ns,omitempty"`
	AchievedOpsPerSec float64 `json:"achieved_ops_per_sec,omitempty"`
	TargetOpsPerSec   float64 `json:"target_ops_per_sec,omitempty"`
	LatePercent       float64 `json:"late_percent,omitempty"`
	// Reference says what Truth is compared with: "tracepoint hits" (the
	// kernel's counting perf events), or "own attempts" for function
	// probes, which see calls, not tracepoint hits.
	Reference string `json:"reference"`
	// Stacks is what --stacks took (nil without it).
	Stacks *StackResult `json:"stacks,omitempty"`
	// Verified is true when every accounting rule held (event.Stats.Verify).
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verify_error,omitempty"`

	Stats event.Stats `json:"-"`
}

func (res *Result) fill(st event.Stats, cfg Config) {
	res.Stats = st
	res.Kinds = map[string]KindResult{}
	for _, k := range cfg.Kinds {
		kc := st.Kind(k)
		res.Kinds[k.String()] = KindResult{Captured: kc.Captured, Lost: kc.Lost, Truth: kc.Truth,
			Attempts: kc.Attempts, Dropped: kc.Lost - kc.Missed, Missed: kc.Missed, Hidden: kc.Hidden, ForeignHidden: kc.ForeignHidden, SeqGaps: kc.SeqGaps, Uncounted: kc.Uncounted, EdgeNested: kc.EdgeNested}
		res.Captured += kc.Captured
		res.Lost += kc.Lost
		res.Dropped += kc.Lost - kc.Missed
		res.Missed += kc.Missed
		res.Hidden += kc.Hidden
		res.ForeignHidden += kc.ForeignHidden
		for _, id := range st.ForeignPrograms[k] {
			res.ForeignPrograms = append(res.ForeignPrograms, foreignProgram(k, id))
		}
		res.Truth += kc.Truth
		res.SeqGaps += kc.SeqGaps
		res.Uncounted += kc.Uncounted
		res.ProbeMisses += st.ProbeMisses[k]
	}
	if st.StacksTaken {
		res.Stacks = &StackResult{Depth: cfg.StackDepth, Entries: cmp.Or(cfg.StackEntries, bpftrace.DefaultStackEntries)}
		for _, k := range cfg.Kinds {
			kc := st.Kind(k)
			res.Stacks.Taken += kc.StacksTaken
			res.Stacks.MapFull += kc.StacksFull
			res.Stacks.Collisions += kc.StackCollisions
			res.Stacks.Failed += kc.StacksFailed
		}
	}
	res.LossLowerBound = st.LossLowerBound()
	for _, cs := range st.PerCPU {
		res.MaxBacklog = max(res.MaxBacklog, cs.MaxBacklog)
	}
	if cfg.Path == PathRelay {
		res.MaxBacklogBytes = uint64(res.MaxBacklog) * uint64(cfg.SubbufSize)
	}
	switch {
	case cfg.Attach.IsFunctionProbe() && cfg.Path != PathRelay && cfg.Truth:
		res.Reference = "function calls (kernel counting kprobes on the same functions)"
	case cfg.Attach.IsFunctionProbe() && cfg.Path != PathRelay:
		res.Reference = "own attempts (function calls; truth counter off)"
	case cfg.Truth:
		res.Reference = "tracepoint hits (kernel counting perf events)"
	default:
		res.Reference = "own attempts (truth counter off)"
	}
	if err := st.Verify(); err != nil {
		nameRepeats(&st)
		res.VerifyError = st.Verify().Error()
		if cfg.Truth {
			res.VerifyError += " (a mismatch is a bug, or another BPF program on the kmem tracepoints, such as a second capture, suppressing perf counting)"
		}
	} else {
		res.Verified = true
	}
}
