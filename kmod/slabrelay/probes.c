// SPDX-License-Identifier: GPL-2.0
/*
 * slabrelay: the probes that write one record per tracepoint hit. The
 * module's overview: main.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/irqflags.h>
#include <linux/perf_event.h>
#include <linux/relay.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>

#include "internal.h"

unsigned int slabrelay_probes;	/* 1 << kind of registered probes */
unsigned int slabrelay_pre_probes;	/* and of their pre probes */
/* Hits on a CPU with no hit of the kind in progress are handled while set. */
bool slabrelay_armed;

/*
 * slabrelay_fill writes a record's fields. In interrupt context current is
 * whoever was interrupted, and a kernel thread has no user-space process:
 * both get pid 0, so a pid is always the user-space task that allocated.
 */
static void slabrelay_fill(struct slab_event *ev, u16 kind, u16 evflags, u64 seq, u64 stamp,
			   unsigned long call_site, const void *ptr, u64 bytes_req,
			   u64 bytes_alloc, gfp_t gfp, u32 stack)
{
	ev->ts_ns = ktime_get_ns();
	ev->seq = seq;
	ev->call_site = call_site;
	ev->ptr = (unsigned long)ptr;
	ev->bytes_req = bytes_req;
	ev->bytes_alloc = bytes_alloc;
	ev->gfp_flags = (__force u32)gfp;
	ev->stack_id = stack;
	ev->truth = stamp;
	if (in_task() && !(current->flags & PF_KTHREAD)) {
		ev->tgid = task_tgid_nr(current);
		ev->pid = task_pid_nr(current);
	} else {
		ev->tgid = 0;
		ev->pid = 0;
	}
	ev->cpu = smp_processor_id();
	ev->kind = kind;
	ev->flags = evflags;
}

/* slabrelay_count counts the record just written in its sub-buffer's header. */
static void slabrelay_count(struct rchan_buf *buf, u16 kind)
{
	smp_wmb();	/* the record before its count */
	subbuf_hdr(buf->data)->nrec++;
	subbuf_hdr(buf->data)->kind_nrec[kind]++;
}

/*
 * slabrelay_write_bare is the transport's floor (part=1): a record with
 * only what the reader checks, its CPU and kind, and the header's counts;
 * part=2 fills it. It writes on every hit and counts nothing.
 */
static void slabrelay_write_bare(u16 kind, unsigned long call_site, const void *ptr,
				 u64 bytes_req, u64 bytes_alloc, gfp_t gfp)
{
	struct rchan_buf *buf = *this_cpu_ptr(slabrelay_chan->buf);
	struct slab_event *ev = buf ? relay_reserve(slabrelay_chan, sizeof(*ev)) : NULL;

	if (!ev)
		return;
	if (slabrelay_part == SLABRELAY_PART_FILL) {
		slabrelay_fill(ev, kind, 0, 0, 0, call_site, ptr, bytes_req, bytes_alloc, gfp, 0);
	} else {
		memset(ev, 0, sizeof(*ev));
		ev->cpu = smp_processor_id();
		ev->kind = kind;
	}
	slabrelay_count(buf, kind);
}

/* One hit of one tracepoint on this CPU. */
static void slabrelay_emit(u16 kind, unsigned long call_site, const void *ptr,
			   u64 bytes_req, u64 bytes_alloc, gfp_t gfp)
{
	struct slabrelay_cpu *pc;
	struct slab_kind_stats *ks;
	struct perf_event *tev;
	struct slab_event *ev;
	struct rchan_buf *buf;
	unsigned long flags;
	u64 seq, stamp = 0, t0;
	u32 stack = 0;
	u16 evflags = 0;

	if (slabrelay_empty && !slabrelay_probe_time)
		return;
	local_irq_save(flags);
	t0 = slabrelay_probe_time ? local_clock() : 0;
	pc = this_cpu_ptr(&slabrelay_pcpu);
	if (slabrelay_part != SLABRELAY_PART_CAPTURE) {
		slabrelay_write_bare(kind, call_site, ptr, bytes_req, bytes_alloc, gfp);
		goto out;
	}
	if (slabrelay_empty || !slabrelay_pop(&pc->win[kind], kind))
		goto out;
	ks = &pc->kinds[kind];
	tev = pc->truth[kind];
	if (slabrelay_truth_on(kind)) {
		if (tev && READ_ONCE(tev->state) == PERF_EVENT_STATE_ACTIVE) {
			stamp = local64_read(&tev->count);
			if (!ks->attempts)
				pc->win[kind].first_emit = stamp;
			ks->truth_last = stamp;
			evflags |= SLAB_EVENT_F_TRUTH;
		} else {
			ks->truth_errors++;
		}
	}
	seq = ks->attempts++;
	if (slabrelay_stack_depth &&
	    (kind == SLAB_EVENT_KMALLOC || kind == SLAB_EVENT_KMEM_CACHE_ALLOC)) {
		enum slabrelay_stack_result r = slabrelay_stack_take(&stack);

		pc->stacks[kind][r]++;
		if (r == SLABRELAY_STACK_TAKEN)
			evflags |= SLAB_EVENT_F_STACK;
	}

	/* a CPU that came online after load has no buffer */
	buf = *this_cpu_ptr(slabrelay_chan->buf);
	ev = buf ? relay_reserve(slabrelay_chan, sizeof(*ev)) : NULL;
	if (!ev) {
		ks->drops++;
		goto out;
	}
	slabrelay_fill(ev, kind, evflags, seq, stamp, call_site, ptr, bytes_req, bytes_alloc,
		       gfp, stack);
	slabrelay_count(buf, kind);
out:
	if (slabrelay_probe_time) {
		pc->probe_ns += local_clock() - t0;
		pc->probe_runs++;
	}
	local_irq_restore(flags);
}

static void slabrelay_kmalloc(void *data, unsigned long call_site,
			      const void *ptr, size_t bytes_req,
			      size_t bytes_alloc, gfp_t gfp_flags, int node)
{
	slabrelay_emit(SLAB_EVENT_KMALLOC, call_site, ptr, bytes_req,
		       bytes_alloc, gfp_flags);
}

static void slabrelay_kfree(void *data, unsigned long call_site,
			    const void *ptr)
{
	slabrelay_emit(SLAB_EVENT_KFREE, call_site, ptr, 0, 0, 0);
}

static void slabrelay_cache_alloc(void *data, unsigned long call_site,
				  const void *ptr, struct kmem_cache *s,
				  gfp_t gfp_flags, int node)
{
	/*
	 * The tracepoint reports s->object_size and s->size, but struct
	 * kmem_cache is private to mm/ (<linux/slub_def.h> needs mm/slab.h
	 * in 6.1, and is gone since 6.8): a module only has
	 * kmem_cache_size(), the object size, so bytes_alloc is the object
	 * size too, without slab metadata.
	 */
	u64 size = kmem_cache_size(s);

	slabrelay_emit(SLAB_EVENT_KMEM_CACHE_ALLOC, call_site, ptr, size, size,
		       gfp_flags);
}

static void slabrelay_cache_free(void *data, unsigned long call_site,
				 const void *ptr, const struct kmem_cache *s)
{
	slabrelay_emit(SLAB_EVENT_KMEM_CACHE_FREE, call_site, ptr, 0, 0, 0);
}

static int slabrelay_register_probe(int kind)
{
	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		return register_trace_prio_kmalloc(slabrelay_kmalloc, NULL,
						   SLABRELAY_PRIO_EMIT);
	case SLAB_EVENT_KFREE:
		return register_trace_prio_kfree(slabrelay_kfree, NULL,
						 SLABRELAY_PRIO_EMIT);
	case SLAB_EVENT_KMEM_CACHE_ALLOC:
		return register_trace_prio_kmem_cache_alloc(slabrelay_cache_alloc,
							    NULL, SLABRELAY_PRIO_EMIT);
	case SLAB_EVENT_KMEM_CACHE_FREE:
		return register_trace_prio_kmem_cache_free(slabrelay_cache_free,
							   NULL, SLABRELAY_PRIO_EMIT);
	}
	return -EINVAL;
}

static void slabrelay_unregister_probe(int kind)
{
	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		unregister_trace_kmalloc(slabrelay_kmalloc, NULL);
		break;
	case SLAB_EVENT_KFREE:
		unregister_trace_kfree(slabrelay_kfree, NULL);
		break;
	case SLAB_EVENT_KMEM_CACHE_ALLOC:
		unregister_trace_kmem_cache_alloc(slabrelay_cache_alloc, NULL);
		break;
	case SLAB_EVENT_KMEM_CACHE_FREE:
		unregister_trace_kmem_cache_free(slabrelay_cache_free, NULL);
		break;
	}
}

/*
 * Close the window, unregister every registered probe and wait until none
 * runs any more. Caller holds slabrelay_mutex (or is module init/exit).
 */
void slabrelay_unregister_probes(void)
{
	int k;

	if (!slabrelay_probes && !slabrelay_pre_probes)
		return;
	/* hits in progress when the window closes finish handled */
	WRITE_ONCE(slabrelay_armed, false);
	tracepoint_synchronize_unregister();
	for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
		if (slabrelay_pre_probes & (1u << k))
			slabrelay_unregister_pre(k);
		if (slabrelay_probes & (1u << k))
			slabrelay_unregister_probe(k);
	}
	slabrelay_probes = 0;
	slabrelay_pre_probes = 0;
	tracepoint_synchronize_unregister();
}

/*
 * Register the probes, wait until every CPU runs all of them, then open
 * the window: a hit handled from then on runs both its pre and emit probe.
 */
int slabrelay_register_probes(void)
{
	int k, err;

	for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
		if (!(slabrelay_events & (1u << k)))
			continue;
		err = slabrelay_register_probe(k);
		if (err)
			goto unregister;
		slabrelay_probes |= 1u << k;
		if (!slabrelay_truth_on(k))
			continue;
		err = slabrelay_register_pre(k);
		if (err)
			goto unregister;
		slabrelay_pre_probes |= 1u << k;
	}
	tracepoint_synchronize_unregister();
	WRITE_ONCE(slabrelay_armed, true);
	return 0;

unregister:
	pr_err("registering a probe on kmem:%s failed: %d\n",
	       slabrelay_kind_names[k], err);
	slabrelay_unregister_probes();
	return err;
}
