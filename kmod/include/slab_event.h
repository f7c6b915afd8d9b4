/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * slab_event.h - the one event record of slabbench.
 *
 * Written by the slabrelay kernel module (relay path) and by the BPF
 * programs in bpftrace/ (eBPF path); mirrored by Go's event.Record, and a
 * test compares this layout (read from the BPF object's BTF) with the Go
 * struct. Every field is naturally aligned and the size is a multiple of
 * 8, so the layout has no hidden padding on any 64-bit ABI.
 *
 * Include <linux/types.h> (kernel) or a header defining __u16/__u32/__u64
 * (BPF) first.
 */
#ifndef SLAB_EVENT_H
#define SLAB_EVENT_H

/* Event kinds: one per kmem tracepoint. 0 is never written. */
enum slab_event_kind {
	SLAB_EVENT_KMALLOC = 1,
	SLAB_EVENT_KFREE = 2,
	SLAB_EVENT_KMEM_CACHE_ALLOC = 3,
	SLAB_EVENT_KMEM_CACHE_FREE = 4,
	SLAB_EVENT_KIND_MAX = 5,	/* arrays indexed by kind have this size */
};

/* slab_event.flags */
enum slab_event_flag {
	/* truth holds the in-band truth counter stamp of this hit */
	SLAB_EVENT_F_TRUTH = 1 << 0,
	/* a function probe (kprobe/fentry) wrote it, not a tracepoint */
	SLAB_EVENT_F_FUNC = 1 << 1,
	/* stack_id names the allocation's kernel stack (eBPF: in the stack map) */
	SLAB_EVENT_F_STACK = 1 << 2,
};

struct slab_event {
	__u64 ts_ns;		/* ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 seq;		/* per-CPU, per-kind sequence; every attempt takes one */
	__u64 call_site;	/* caller address as the tracepoint reports it */
	__u64 ptr;		/* object address */
	__u64 bytes_req;	/* 0 for frees */
	__u64 bytes_alloc;	/* 0 for frees */
	__u32 gfp_flags;	/* 0 for frees */
	__u32 stack_id;		/* with SLAB_EVENT_F_STACK, else 0 */
	__u64 truth;		/* truth counter of this kind on this CPU */
	__u32 tgid;		/* user-space PID (0 in kernel threads) */
	__u32 pid;		/* user-space TID */
	__u32 cpu;		/* CPU that wrote the record */
	__u16 kind;		/* enum slab_event_kind */
	__u16 flags;		/* enum slab_event_flag */
};

#define SLAB_EVENT_SIZE 80

/*
 * Per-CPU, per-kind counters kept by both producers, read by user space
 * after the capture window closes.
 *
 * attempts: hits the probe handled (records it tried to write); also the
 *   next sequence number of this CPU and kind.
 * drops:    records the transport refused (buffer full).
 * truth_first, truth_last: the truth counter stamps of the first and last
 *   handled hits; the tracepoint hits in that span are
 *   truth_last - truth_first + 1, and must equal attempts.
 * truth_errors: hits whose truth counter could not be read.
 * truth_repeats: function entry probes (eBPF kprobe, fentry) only: hits
 *   stamped with the same count as the hit before them, which is a call
 *   the counting kprobe skipped because it came while a kprobe handler ran
 *   on the CPU (an interrupt inside one); they are added to the span.
 */
struct slab_kind_stats {
	__u64 attempts;
	__u64 drops;
	__u64 truth_first;
	__u64 truth_last;
	__u64 truth_errors;
	__u64 truth_repeats;
};

#endif /* SLAB_EVENT_H */
