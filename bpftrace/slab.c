//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * slab.c - eBPF capture of the kmem slab events for slabbench.
 *
 * One program per attach point and attach mode (tracepoint, raw_tp, kprobe,
 * fentry/fexit); every program hands its fields to emit(), the one
 * record-writing function, which stamps the per-CPU, per-kind sequence
 * number, reads the truth counter, and writes the record into the ring
 * buffer or the perf buffer, counting every refused write.
 */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <asm-generic/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "slab_event.h"
#include "slab_kernel.h"

char __license[] SEC("license") = "Dual BSD/GPL";

enum slab_transport {
	SLAB_TRANSPORT_RINGBUF = 0,
	SLAB_TRANSPORT_PERFBUF = 1,
};

/* Load-time configuration, set from Go before loading. */
const volatile __u32 transport = SLAB_TRANSPORT_RINGBUF;
/* Stamp records with the truth counter (costs a helper call per hit). */
const volatile __u32 truth_on = 1;
/*
 * Ring buffer wakeup policy: 0 lets the kernel wake the reader for every
 * record it needs to see (adaptive); W > 0 suppresses wakeups until at
 * least W bytes are pending, then forces one.
 */
const volatile __u64 wakeup_bytes = 0;
/*
 * With wakeup_bytes, how many bytes a CPU writes between two looks at the
 * pending bytes (a look per record cost a sixth of the capture): a wakeup
 * comes at most this many bytes per CPU after wakeup_bytes are pending.
 */
const volatile __u64 wakeup_query_bytes = 0;
/* A reader that looks on a timer (Config.PollInterval): never wake it. */
const volatile __u32 wakeup_never = 0;
/* Attached but returns at once: the floor any capture path pays. */
const volatile __u32 empty_probe = 0;
/*
 * The probe's cost part by part (BenchmarkProbeParts): the whole capture
 * (PART_CAPTURE), or only the transport's floor, writing a zeroed record
 * (PART_FLOOR), or that record filled (PART_FILL), or the capture without
 * its wakeup policy (PART_ACCOUNTED: accounting, sequence numbers and,
 * with truth_on, the truth stamp). Parts below the capture never wake
 * the reader; the floor and fill count nothing.
 */
enum slab_probe_part {
	PART_CAPTURE = 0,
	PART_FLOOR = 1,
	PART_FILL = 2,
	PART_ACCOUNTED = 3,
};
const volatile __u32 probe_part = PART_CAPTURE;
/*
 * Take each allocation's kernel stack into the stacks map (capture
 * --stacks); its depth and size are set from Go with the map's value size
 * and entries.
 */
const volatile __u32 stacks_on = 0;
/*
 * Set from Go when the capture stops. Detaching a program does not stop
 * its runs at once (the kernel may finish the detach later), so a run
 * that begins after this is set counts and writes nothing: the counters
 * read after it are final, and so is what the reader drains.
 */
volatile __u32 stopped;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* resized from Go */
} events_ringbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events_perfbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 16 * sizeof(__u64));
} stacks SEC(".maps");

/*
 * The accounting both producers keep (struct slab_kind_stats) and, for
 * the BPF programs only, evidence of hits the truth counter may not have
 * counted, so that a mismatch names what happened (user space adds the
 * time the counting event was idle: scheduled out or stopped):
 * truth_stamp_repeats: stamps equal to the hit before's on this CPU and
 *   kind (one of the two hits was not counted, or one nested in the
 *   other between its stamp and its count);
 * truth_stamps_fell: stamps below the hit before's (a counter that went
 *   back, or another counter read: the span of stamps then undercounts);
 * truth_leading_repeats, truth_trailing_repeats: the repeats at the
 *   window's start and end, where a hit nested between another's count
 *   and stamp moves the span's edge (stats.go adds them per attach mode).
 */
struct slab_bpf_kind_stats {
	struct slab_kind_stats s;
	__u64 truth_stamps;	/* stamps taken: the window opens at the first */
	__u64 truth_stamp_repeats;
	__u64 truth_stamps_fell;
	__u64 truth_leading_repeats;	/* repeats before the stamps first rose */
	__u64 truth_trailing_repeats;	/* repeats since they last rose */
	__u64 truth_rose;		/* a stamp has risen past the first */
	__u64 pending_full;	/* stamped calls with no room in pending_* */
	/* allocations with their stack taken (--stacks), and without, by cause */
	__u64 stacks_taken;
	__u64 stacks_full;		/* the stacks map had no room */
	__u64 stack_collisions;	/* another stack held its hash bucket */
	__u64 stacks_failed;		/* the kernel could not walk it */
};

/* Bytes this CPU has written since it last looked at the pending bytes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unqueried_bytes SEC(".maps");

/* Per-CPU, per-kind accounting, indexed by enum slab_event_kind. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLAB_EVENT_KIND_MAX);
	__type(key, __u32);
	__type(value, struct slab_bpf_kind_stats);
} kind_stats SEC(".maps");

/*
 * Truth counters: per-CPU perf counting events on the same tracepoints,
 * opened by user space, one array per kind, indexed by CPU.
 */
#define TRUTH_MAP(name)							\
	struct {							\
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);		\
		__uint(key_size, sizeof(__u32));			\
		__uint(value_size, sizeof(__u32));			\
	} name SEC(".maps")

TRUTH_MAP(truth_kmalloc);
TRUTH_MAP(truth_kfree);
TRUTH_MAP(truth_kmem_cache_alloc);
TRUTH_MAP(truth_kmem_cache_free);

/* Keeps struct slab_event in the BTF for bpf2go -type and the layout test. */
const struct slab_event *unused_slab_event __attribute__((unused));

/*
 * read_truth returns the truth counter's count on this CPU, or a negative
 * error. The count alone: bpf_perf_event_read_value's enabled and running
 * times cost a clock read more on every hit (user space reads them once,
 * at the window's edges, to see whether the counter ever stopped).
 */
static __always_inline __s64 read_truth(__u16 kind)
{
	/* kind is a constant in every caller, so this folds to one call. */
	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		return bpf_perf_event_read(&truth_kmalloc, BPF_F_CURRENT_CPU);
	case SLAB_EVENT_KFREE:
		return bpf_perf_event_read(&truth_kfree, BPF_F_CURRENT_CPU);
	case SLAB_EVENT_KMEM_CACHE_ALLOC:
		return bpf_perf_event_read(&truth_kmem_cache_alloc, BPF_F_CURRENT_CPU);
	default:
		return bpf_perf_event_read(&truth_kmem_cache_free, BPF_F_CURRENT_CPU);
	}
}

static __always_inline void fill(struct slab_event *ev, __u16 kind, __u16 flags, __u64 seq,
				 __u64 truth, __u64 call_site, __u64 ptr, __u64 bytes_req,
				 __u64 bytes_alloc, __u64 gfp_flags, __u32 stack)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	ev->ts_ns = bpf_ktime_get_ns();
	ev->seq = seq;
	ev->call_site = call_site;
	ev->ptr = ptr;
	ev->bytes_req = bytes_req;
	ev->bytes_alloc = bytes_alloc;
	ev->gfp_flags = gfp_flags;
	ev->stack_id = stack;
	ev->truth = truth;
	ev->tgid = pid_tgid >> 32;
	ev->pid = (__u32)pid_tgid;
	ev->cpu = bpf_get_smp_processor_id();
	ev->kind = kind;
	ev->flags = flags;
}

/*
 * running_stats returns this CPU's accounting of kind, or NULL when the
 * programs are to do nothing: empty, or the capture has stopped.
 */
static __always_inline struct slab_bpf_kind_stats *running_stats(__u16 kind)
{
	__u32 key = kind;

	if (empty_probe || stopped)
		return NULL;
	return bpf_map_lookup_elem(&kind_stats, &key);
}

/*
 * stamp_truth reads the truth counter for one hit and keeps the window's
 * span: the first and last stamp on this CPU and kind. At function entry,
 * a stamp equal to the one before is a call the counting kprobe skipped
 * (slab_event.h); elsewhere it is only evidence.
 */
static __always_inline __u64 stamp_truth(struct slab_bpf_kind_stats *bst, __u16 kind,
					 __u16 *flags, int at_entry)
{
	struct slab_kind_stats *st = &bst->s;
	__s64 val = read_truth(kind);
	__u64 truth;

	/* the helper's errors are -MAX_ERRNO..-1; a count never gets there */
	if (val < 0 && val >= -4095) {
		st->truth_errors++;
		return 0;
	}
	truth = val;
	*flags |= SLAB_EVENT_F_TRUTH;
	if (bst->truth_stamps == 0) {
		st->truth_first = truth;
	} else {
		if (truth == st->truth_last) {
			bst->truth_stamp_repeats++;
			bst->truth_trailing_repeats++;
			if (!bst->truth_rose)
				bst->truth_leading_repeats++;
			if (at_entry)
				st->truth_repeats++;
		} else {
			bst->truth_trailing_repeats = 0;
			bst->truth_rose = 1;
			if (truth < st->truth_last)
				bst->truth_stamps_fell++;
		}
	}
	bst->truth_stamps++;
	st->truth_last = truth;
	return truth;
}

/*
 * take_stack stores an allocation's kernel stack in the stacks map and
 * returns its id, flagging the record, or counts why it could not.
 */
static __always_inline __u32 take_stack(void *ctx, struct slab_bpf_kind_stats *bst, __u16 kind,
					__u16 *flags)
{
	long id;

	if (!stacks_on || (kind != SLAB_EVENT_KMALLOC && kind != SLAB_EVENT_KMEM_CACHE_ALLOC))
		return 0;
	id = bpf_get_stackid(ctx, &stacks, 0);
	if (id >= 0) {
		bst->stacks_taken++;
		*flags |= SLAB_EVENT_F_STACK;
		return id;
	}
	if (id == -ENOMEM)
		bst->stacks_full++;
	else if (id == -EEXIST)
		bst->stack_collisions++;
	else
		bst->stacks_failed++;
	return 0;
}

/*
 * batched_wakeup is the ring buffer's batched wakeup decision: wake the
 * reader once wakeup_bytes are pending, looking only every
 * wakeup_query_bytes this CPU writes.
 */
static __always_inline __u64 batched_wakeup(__u64 size)
{
	__u32 zero = 0;
	__u64 *unqueried = bpf_map_lookup_elem(&unqueried_bytes, &zero);

	if (!unqueried)
		return BPF_RB_NO_WAKEUP;
	*unqueried += size;
	if (*unqueried < wakeup_query_bytes)
		return BPF_RB_NO_WAKEUP;
	*unqueried = 0;
	/* pending bytes include this record once submitted */
	if (bpf_ringbuf_query(&events_ringbuf, BPF_RB_AVAIL_DATA) + size >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/*
 * write_record takes the hit's sequence number and writes its record,
 * counting a refused write as a drop.
 */
static __always_inline void write_record(void *ctx, struct slab_bpf_kind_stats *bst, __u16 kind,
					 __u16 flags, __u64 truth, __u64 call_site, __u64 ptr,
					 __u64 bytes_req, __u64 bytes_alloc, __u64 gfp_flags)
{
	struct slab_kind_stats *st = &bst->s;
	__u32 stack = take_stack(ctx, bst, kind, &flags);
	__u64 seq = st->attempts;

	st->attempts = seq + 1;
	if (transport == SLAB_TRANSPORT_RINGBUF) {
		struct slab_event *ev;
		__u64 wake = 0;

		ev = bpf_ringbuf_reserve(&events_ringbuf, sizeof(*ev), 0);
		if (!ev) {
			st->drops++;
			return;
		}
		fill(ev, kind, flags, seq, truth, call_site, ptr, bytes_req, bytes_alloc, gfp_flags, stack);
		if (probe_part != PART_CAPTURE || wakeup_never) {
			wake = BPF_RB_NO_WAKEUP;
		} else if (wakeup_bytes) {
			wake = batched_wakeup(sizeof(*ev));
		}
		bpf_ringbuf_submit(ev, wake);
	} else {
		struct slab_event ev;

		fill(&ev, kind, flags, seq, truth, call_site, ptr, bytes_req, bytes_alloc, gfp_flags, stack);
		if (bpf_perf_event_output(ctx, &events_perfbuf, BPF_F_CURRENT_CPU, &ev, sizeof(ev)))
			st->drops++;
	}
}

/*
 * write_bare is the transport's floor (PART_FLOOR: a zeroed record) or the
 * floor with the record filled (PART_FILL): no accounting, no wakeup.
 */
static __always_inline void write_bare(void *ctx, __u16 kind, __u64 call_site, __u64 ptr,
				       __u64 bytes_req, __u64 bytes_alloc, __u64 gfp_flags)
{
	if (transport == SLAB_TRANSPORT_RINGBUF) {
		struct slab_event *ev = bpf_ringbuf_reserve(&events_ringbuf, sizeof(*ev), 0);

		if (!ev)
			return;
		if (probe_part == PART_FILL)
			fill(ev, kind, 0, 0, 0, call_site, ptr, bytes_req, bytes_alloc, gfp_flags, 0);
		else
			__builtin_memset(ev, 0, sizeof(*ev));
		bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	} else {
		struct slab_event ev = {};

		if (probe_part == PART_FILL)
			fill(&ev, kind, 0, 0, 0, call_site, ptr, bytes_req, bytes_alloc, gfp_flags, 0);
		bpf_perf_event_output(ctx, &events_perfbuf, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	}
}

/*
 * emit handles one hit: its truth stamp, then its record. The same program
 * never runs nested on one CPU (the kernel skips and counts such a hit as
 * a recursion miss), so the per-CPU counters of one kind need no atomics.
 */
static __always_inline void emit(void *ctx, __u16 kind, __u16 flags, __u64 call_site, __u64 ptr,
				 __u64 bytes_req, __u64 bytes_alloc, __u64 gfp_flags, int at_entry)
{
	struct slab_bpf_kind_stats *bst;
	__u64 truth = 0;

	/* Every run writes, even once stopped: records read == runs. */
	if (probe_part == PART_FLOOR || probe_part == PART_FILL) {
		write_bare(ctx, kind, call_site, ptr, bytes_req, bytes_alloc, gfp_flags);
		return;
	}
	bst = running_stats(kind);
	if (!bst)
		return;
	if (truth_on)
		truth = stamp_truth(bst, kind, &flags, at_entry);
	write_record(ctx, bst, kind, flags, truth, call_site, ptr, bytes_req, bytes_alloc,
		     gfp_flags);
}

/*
 * tracepoint programs: must return 1, because returning 0 also suppresses
 * the perf events on that hit, the truth counter among them.
 */
SEC("tracepoint/kmem/kmalloc")
int tp_kmalloc(struct trace_event_raw_kmalloc *ctx)
{
	emit(ctx, SLAB_EVENT_KMALLOC, 0, ctx->call_site, (__u64)ctx->ptr, ctx->bytes_req,
	     ctx->bytes_alloc, ctx->gfp_flags, 0);
	return 1;
}

SEC("tracepoint/kmem/kfree")
int tp_kfree(struct trace_event_raw_kfree *ctx)
{
	emit(ctx, SLAB_EVENT_KFREE, 0, ctx->call_site, (__u64)ctx->ptr, 0, 0, 0, 0);
	return 1;
}

SEC("tracepoint/kmem/kmem_cache_alloc")
int tp_kmem_cache_alloc(struct trace_event_raw_kmem_cache_alloc *ctx)
{
	emit(ctx, SLAB_EVENT_KMEM_CACHE_ALLOC, 0, ctx->call_site, (__u64)ctx->ptr, ctx->bytes_req,
	     ctx->bytes_alloc, ctx->gfp_flags, 0);
	return 1;
}

SEC("tracepoint/kmem/kmem_cache_free")
int tp_kmem_cache_free(struct trace_event_raw_kmem_cache_free *ctx)
{
	emit(ctx, SLAB_EVENT_KMEM_CACHE_FREE, 0, ctx->call_site, (__u64)ctx->ptr, 0, 0, 0, 0);
	return 1;
}

/*
 * raw tracepoints: the tracepoint's TP_PROTO arguments, unformatted.
 * kmalloc(call_site, ptr, bytes_req, bytes_alloc, gfp_flags, node)
 * kfree(call_site, ptr)
 * kmem_cache_alloc(call_site, ptr, struct kmem_cache *s, gfp_flags, node)
 * kmem_cache_free(call_site, ptr, const struct kmem_cache *s)
 * The same on Debian's 6.1 and on 6.18.
 */
SEC("raw_tp/kmalloc")
int rawtp_kmalloc(struct bpf_raw_tracepoint_args *ctx)
{
	emit(ctx, SLAB_EVENT_KMALLOC, 0, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3],
	     ctx->args[4], 0);
	return 0;
}

SEC("raw_tp/kfree")
int rawtp_kfree(struct bpf_raw_tracepoint_args *ctx)
{
	emit(ctx, SLAB_EVENT_KFREE, 0, ctx->args[0], ctx->args[1], 0, 0, 0, 0);
	return 0;
}

SEC("raw_tp/kmem_cache_alloc")
int rawtp_kmem_cache_alloc(struct bpf_raw_tracepoint_args *ctx)
{
	struct kmem_cache *s = (struct kmem_cache *)ctx->args[2];

	emit(ctx, SLAB_EVENT_KMEM_CACHE_ALLOC, 0, ctx->args[0], ctx->args[1],
	     BPF_CORE_READ(s, object_size), BPF_CORE_READ(s, size), ctx->args[3], 0);
	return 0;
}

SEC("raw_tp/kmem_cache_free")
int rawtp_kmem_cache_free(struct bpf_raw_tracepoint_args *ctx)
{
	emit(ctx, SLAB_EVENT_KMEM_CACHE_FREE, 0, ctx->args[0], ctx->args[1], 0, 0, 0, 0);
	return 0;
}

/*
 * Function probes see calls of the allocator's entry points, not
 * tracepoint hits (inlined and internal paths differ), so their truth
 * counter is a counting kprobe on the same function. The attach target is set
 * from Go, since the symbol names differ between kernels (__kmalloc on
 * 6.1, __kmalloc_noprof on 6.10 and later).
 */
static __always_inline __u64 kprobe_return_address(struct pt_regs *ctx)
{
	__u64 ret = 0;

	/* At function entry the return address is at the stack pointer. */
	bpf_probe_read_kernel(&ret, sizeof(ret), (void *)PT_REGS_SP(ctx));
	return ret;
}

SEC("kprobe/kmalloc")
int kprobe_kmalloc(struct pt_regs *ctx)
{
	/* void *__kmalloc(size_t size, gfp_t flags): ptr unknown at entry */
	emit(ctx, SLAB_EVENT_KMALLOC, SLAB_EVENT_F_FUNC, kprobe_return_address(ctx), 0,
	     PT_REGS_PARM1(ctx), 0, PT_REGS_PARM2(ctx), 1);
	return 0;
}

SEC("kprobe/kfree")
int kprobe_kfree(struct pt_regs *ctx)
{
	emit(ctx, SLAB_EVENT_KFREE, SLAB_EVENT_F_FUNC, kprobe_return_address(ctx),
	     PT_REGS_PARM1(ctx), 0, 0, 0, 1);
	return 0;
}

SEC("kprobe/kmem_cache_alloc")
int kprobe_kmem_cache_alloc(struct pt_regs *ctx)
{
	struct kmem_cache *s = (struct kmem_cache *)PT_REGS_PARM1(ctx);

	emit(ctx, SLAB_EVENT_KMEM_CACHE_ALLOC, SLAB_EVENT_F_FUNC, kprobe_return_address(ctx), 0,
	     BPF_CORE_READ(s, object_size), BPF_CORE_READ(s, size), PT_REGS_PARM2(ctx), 1);
	return 0;
}

SEC("kprobe/kmem_cache_free")
int kprobe_kmem_cache_free(struct pt_regs *ctx)
{
	emit(ctx, SLAB_EVENT_KMEM_CACHE_FREE, SLAB_EVENT_F_FUNC, kprobe_return_address(ctx),
	     PT_REGS_PARM2(ctx), 0, 0, 0, 1);
	return 0;
}

/*
 * fexit for allocations (arguments and the returned pointer), fentry for
 * frees. Arguments are read with bpf_get_func_arg rather than typed
 * BPF_PROG parameters: 6.1's verifier rejects direct access to a
 * "const void *" argument such as kfree's.
 */
static __always_inline __u64 func_arg(void *ctx, __u32 n)
{
	__u64 val = 0;

	bpf_get_func_arg(ctx, n, &val);
	return val;
}

static __always_inline __u64 func_ret(void *ctx)
{
	__u64 val = 0;

	bpf_get_func_ret(ctx, &val);
	return val;
}

/*
 * An allocation's truth stamp is taken at its entry, where the counting
 * kprobe counts it: stamped at exit, a call with a same-kind call nested
 * inside (an interrupt, a slab refill) would be stamped after the inner
 * one, and a window opened by the inner one's exit would leave the outer
 * call's count out while counting its record. So an fentry program stamps
 * each call and keeps the stamp per task until the fexit program writes
 * the record. A task's calls end in the reverse order they began (an
 * interrupt's call ends before the one it interrupted resumes), so each
 * task keeps a stack: depth 0 upwards, popped from the top.
 * A call whose exit program never runs (skipped for recursion, or after
 * the capture stopped) leaves its stamp behind and counts as missed.
 */
#define PENDING_DEPTH 8

struct pending_key {
	__u64 task;
	__u32 depth;
	__u32 pad;
};

struct pending_call {
	__u64 truth;
	__u16 flags;
};

#define PENDING_MAP(name)						\
	struct {							\
		__uint(type, BPF_MAP_TYPE_HASH);			\
		__uint(max_entries, 8192);				\
		__type(key, struct pending_key);			\
		__type(value, struct pending_call);			\
	} name SEC(".maps")

/* One per kind: a kmalloc inside a kmem_cache_alloc never meets its lock. */
PENDING_MAP(pending_kmalloc);
PENDING_MAP(pending_kmem_cache_alloc);

static __always_inline void *pending_map(__u16 kind)
{
	if (kind == SLAB_EVENT_KMALLOC)
		return &pending_kmalloc;
	return &pending_kmem_cache_alloc;
}

/* enter_call stamps one allocation at its entry and pushes the stamp. */
static __always_inline void enter_call(__u16 kind)
{
	struct pending_key key = { .task = bpf_get_current_task() };
	struct pending_call call = {};
	struct slab_bpf_kind_stats *bst = running_stats(kind);
	void *pending = pending_map(kind);

	if (!bst)
		return;
	call.truth = stamp_truth(bst, kind, &call.flags, 1);
	for (__u32 d = 0; d < PENDING_DEPTH; d++) {
		key.depth = d;
		if (bpf_map_lookup_elem(pending, &key))
			continue;
		if (bpf_map_update_elem(pending, &key, &call, BPF_NOEXIST) == 0)
			return;
		break;
	}
	bst->pending_full++;
}

/*
 * exit_call pops the stamp of the allocation now returning and writes its
 * record; a call with no stamp began before the window and is not counted.
 */
static __always_inline void exit_call(void *ctx, __u16 kind, __u64 ptr, __u64 bytes_req,
				      __u64 bytes_alloc, __u64 gfp_flags)
{
	struct pending_key key = { .task = bpf_get_current_task() };
	struct pending_call call = { .flags = SLAB_EVENT_F_FUNC };
	struct slab_bpf_kind_stats *bst = running_stats(kind);
	struct pending_call *top = NULL;
	void *pending = pending_map(kind);

	if (!bst)
		return;
	if (truth_on) {
		__u32 top_depth = 0;

		for (__u32 d = 0; d < PENDING_DEPTH; d++) {
			struct pending_call *c;

			key.depth = d;
			c = bpf_map_lookup_elem(pending, &key);
			if (!c)
				break;
			top = c;
			top_depth = d;
		}
		if (!top)
			return;
		call.truth = top->truth;
		call.flags |= top->flags;
		key.depth = top_depth;
		bpf_map_delete_elem(pending, &key);
	}
	write_record(ctx, bst, kind, call.flags, call.truth, 0, ptr, bytes_req, bytes_alloc,
		     gfp_flags);
}

SEC("fentry/__kmalloc")
int fentry_kmalloc(void *ctx)
{
	enter_call(SLAB_EVENT_KMALLOC);
	return 0;
}

SEC("fexit/__kmalloc")
int fexit_kmalloc(void *ctx)
{
	/* void *__kmalloc(size_t size, gfp_t flags) */
	exit_call(ctx, SLAB_EVENT_KMALLOC, func_ret(ctx), func_arg(ctx, 0), 0, func_arg(ctx, 1));
	return 0;
}

SEC("fentry/kfree")
int fentry_kfree(void *ctx)
{
	/* void kfree(const void *objp) */
	emit(ctx, SLAB_EVENT_KFREE, SLAB_EVENT_F_FUNC, 0, func_arg(ctx, 0), 0, 0, 0, 1);
	return 0;
}

SEC("fentry/kmem_cache_alloc")
int fentry_kmem_cache_alloc(void *ctx)
{
	enter_call(SLAB_EVENT_KMEM_CACHE_ALLOC);
	return 0;
}

SEC("fexit/kmem_cache_alloc")
int fexit_kmem_cache_alloc(void *ctx)
{
	/* void *kmem_cache_alloc(struct kmem_cache *s, gfp_t flags) */
	struct kmem_cache *s = (struct kmem_cache *)func_arg(ctx, 0);

	exit_call(ctx, SLAB_EVENT_KMEM_CACHE_ALLOC, func_ret(ctx), BPF_CORE_READ(s, object_size),
		  BPF_CORE_READ(s, size), func_arg(ctx, 1));
	return 0;
}

SEC("fentry/kmem_cache_free")
int fentry_kmem_cache_free(void *ctx)
{
	/* void kmem_cache_free(struct kmem_cache *s, void *x) */
	emit(ctx, SLAB_EVENT_KMEM_CACHE_FREE, SLAB_EVENT_F_FUNC, 0, func_arg(ctx, 1), 0, 0, 0, 1);
	return 0;
}
