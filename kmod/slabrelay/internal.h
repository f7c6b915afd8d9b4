/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What slabrelay's files share: main.c (parameters, debugfs files, init
 * and exit), relay.c (the relay channel), probes.c (the records), truth.c
 * (the truth window), nest.c (test hooks) and stacks.c (stack table).
 */
#ifndef SLABRELAY_INTERNAL_H
#define SLABRELAY_INTERNAL_H

#include <linux/percpu.h>
#include <linux/perf_event.h>
#include <linux/relay.h>
#include <linux/types.h>

#include "slab_event.h"
#include "slabrelay.h"
#include "stacks.h"

/* Module parameters (main.c has their descriptions). */
extern unsigned int slabrelay_subbuf_size;
extern unsigned int slabrelay_n_subbufs;
extern bool slabrelay_overwrite;
extern unsigned int slabrelay_events;
extern unsigned int slabrelay_truth_ids[SLAB_EVENT_KIND_MAX - 1];
extern bool slabrelay_empty;
extern bool slabrelay_probe_time;
extern unsigned int slabrelay_part;
extern bool slabrelay_nest_first;
extern bool slabrelay_nest_calls;
extern unsigned int slabrelay_start_delay_us;
extern unsigned int slabrelay_stack_depth;

#define SLABRELAY_KIND_BITS	0x1e

/* The parameter part: how much of the probe runs. */
enum slabrelay_part {
	SLABRELAY_PART_CAPTURE,
	SLABRELAY_PART_FLOOR,
	SLABRELAY_PART_FILL,
};
/* Probe order on a tracepoint: pre, perf's counting probe, nest, emit. */
#define SLABRELAY_PRIO_PRE	(TRACEPOINT_DEFAULT_PRIO + 1)
#define SLABRELAY_PRIO_NEST	(TRACEPOINT_DEFAULT_PRIO - 1)
#define SLABRELAY_PRIO_EMIT	(TRACEPOINT_DEFAULT_PRIO - 2)
/* Hits of one kind nest at most task, softirq, hardirq, NMI deep. */
#define SLABRELAY_MAX_DEPTH	32

/* Truth window state of one kind on one CPU (see slabrelay_pre). */
struct slabrelay_window {
	u32 depth;		/* hits between their pre and emit probes */
	u32 handled;		/* bit d: the hit at depth d is handled */
	bool started;		/* truth_first is set */
	bool nest_done;		/* nest_first has nested a hit here */
	u64 nested;		/* handled hits that ran inside another's span */
	u64 first_emit;		/* count the first emit read: a window start
				 * that ignores nesting, kept to show the
				 * difference */
};

/* Producer state of one CPU; written only on that CPU with irqs off. */
struct slabrelay_cpu {
	struct slab_kind_stats kinds[SLAB_EVENT_KIND_MAX];
	u64 overwritten[SLAB_EVENT_KIND_MAX];	/* records in overwritten sub-buffers */
	u64 overwritten_subbufs;
	u64 max_backlog;	/* most sub-buffers produced and not consumed */
	struct perf_event *truth[SLAB_EVENT_KIND_MAX];
	struct slabrelay_window win[SLAB_EVENT_KIND_MAX];
	u64 stacks[SLAB_EVENT_KIND_MAX][SLABRELAY_STACK_RESULTS]; /* stack_depth */
	u64 probe_ns;		/* probe_time: time inside pre and emit probes */
	u64 probe_runs;		/* probe_time: emit probe runs (hits) */
};

DECLARE_PER_CPU(struct slabrelay_cpu, slabrelay_pcpu);

/* Tracepoint names, indexed by enum slab_event_kind. */
extern const char *const slabrelay_kind_names[SLAB_EVENT_KIND_MAX];
extern struct rchan *slabrelay_chan;
extern unsigned int slabrelay_probes;	/* 1 << kind of registered probes */
extern unsigned int slabrelay_pre_probes;	/* and of their pre probes */
extern bool slabrelay_armed;

/* Inline: the emit probe calls them on every hit. */
static inline bool slabrelay_truth_on(u16 kind)
{
	return slabrelay_truth_ids[kind - 1] && !slabrelay_empty;
}

/* Pops the hit's pre state; returns whether the hit is handled. */
static inline bool slabrelay_pop(struct slabrelay_window *w, u16 kind)
{
	u32 d;

	if (!slabrelay_truth_on(kind))
		return READ_ONCE(slabrelay_armed);
	if (!w->depth)
		return false;	/* no pre for this hit: probes being registered */
	d = --w->depth;
	return d < SLABRELAY_MAX_DEPTH && (w->handled & BIT(d));
}

/* The header a relay sub-buffer starts with. */
static inline struct slabrelay_subbuf_hdr *subbuf_hdr(void *subbuf)
{
	return subbuf;
}

/* relay.c */
extern const struct rchan_callbacks slabrelay_relay_cb;

/* A "consumed" command: the sub-buffer sequence number, then its error. */
struct slabrelay_consume {
	u64 seq;
	int err;
};

int slabrelay_consume_cpu(unsigned int cpu, struct slabrelay_consume *c);
void slabrelay_flush(void);

/* probes.c */
int slabrelay_register_probes(void);
void slabrelay_unregister_probes(void);

/* truth.c */
int slabrelay_register_pre(int kind);
void slabrelay_unregister_pre(int kind);
int slabrelay_create_truth(void);
void slabrelay_release_truth(void);

/* nest.c */
void slabrelay_nest_kmalloc(void *data, unsigned long call_site,
			    const void *ptr, size_t bytes_req,
			    size_t bytes_alloc, gfp_t gfp_flags, int node);
void slabrelay_nest_kfree(void *data, unsigned long call_site,
			  const void *ptr);
int slabrelay_register_nest_calls(void);
void slabrelay_unregister_nest_calls(void);

#endif /* SLABRELAY_INTERNAL_H */
