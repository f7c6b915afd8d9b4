// SPDX-License-Identifier: GPL-2.0
/*
 * slabrelay: the truth window: the pre probes that open it and the
 * counting perf events that stamp it. The module's overview: main.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/irqflags.h>
#include <linux/perf_event.h>
#include <linux/sched/clock.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>

#include "internal.h"

/*
 * The truth window under nesting. On each hit the counting perf event's
 * probe runs between slabrelay_pre (ordered before it) and slabrelay_emit
 * (after it) with interrupts on, so a same-kind hit in an interrupt can run
 * whole in between. Stamping only in emit then loses one count when that
 * happens on the first hit of a window: the nested hit stamps first, and
 * the outer hit, counted before it, stamps the same value. So pre reads the
 * count before perf counts the hit: the first handled hit opens the window
 * at that count + 1, emit's stamps close it, and a hit nested in a handled
 * hit is handled too (one not handled is never counted inside the window).
 */
static void slabrelay_pre(u16 kind)
{
	struct slabrelay_window *w;
	struct slabrelay_cpu *pc;
	struct perf_event *tev;
	unsigned long flags;
	bool handled;
	u64 t0;
	u32 d;

	local_irq_save(flags);
	t0 = slabrelay_probe_time ? local_clock() : 0;
	pc = this_cpu_ptr(&slabrelay_pcpu);
	w = &pc->win[kind];
	d = w->depth++;
	if (d >= SLABRELAY_MAX_DEPTH)
		goto out;
	handled = d ? w->handled & BIT(d - 1) : READ_ONCE(slabrelay_armed);
	if (!handled) {
		w->handled &= ~BIT(d);
		goto out;
	}
	w->handled |= BIT(d);
	if (d)
		w->nested++;
	if (!w->started) {
		tev = pc->truth[kind];
		if (tev && READ_ONCE(tev->state) == PERF_EVENT_STATE_ACTIVE) {
			pc->kinds[kind].truth_first = local64_read(&tev->count) + 1;
			w->started = true;
		} else {
			pc->kinds[kind].truth_errors++;
		}
	}
out:
	if (slabrelay_probe_time)
		pc->probe_ns += local_clock() - t0;
	local_irq_restore(flags);
}

static void slabrelay_pre_kmalloc(void *data, unsigned long call_site,
				  const void *ptr, size_t bytes_req,
				  size_t bytes_alloc, gfp_t gfp_flags, int node)
{
	slabrelay_pre(SLAB_EVENT_KMALLOC);
}

static void slabrelay_pre_kfree(void *data, unsigned long call_site,
				const void *ptr)
{
	slabrelay_pre(SLAB_EVENT_KFREE);
}

static void slabrelay_pre_cache_alloc(void *data, unsigned long call_site,
				      const void *ptr, struct kmem_cache *s,
				      gfp_t gfp_flags, int node)
{
	slabrelay_pre(SLAB_EVENT_KMEM_CACHE_ALLOC);
}

static void slabrelay_pre_cache_free(void *data, unsigned long call_site,
				     const void *ptr,
				     const struct kmem_cache *s)
{
	slabrelay_pre(SLAB_EVENT_KMEM_CACHE_FREE);
}

/* The pre probe of kind and, with nest_first, its nest probe. */
int slabrelay_register_pre(int kind)
{
	int err = -EINVAL;

	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		err = register_trace_prio_kmalloc(slabrelay_pre_kmalloc, NULL,
						  SLABRELAY_PRIO_PRE);
		if (!err && slabrelay_nest_first) {
			err = register_trace_prio_kmalloc(slabrelay_nest_kmalloc,
							  NULL, SLABRELAY_PRIO_NEST);
			if (err)
				unregister_trace_kmalloc(slabrelay_pre_kmalloc, NULL);
		}
		break;
	case SLAB_EVENT_KFREE:
		err = register_trace_prio_kfree(slabrelay_pre_kfree, NULL,
						SLABRELAY_PRIO_PRE);
		if (!err && slabrelay_nest_first) {
			err = register_trace_prio_kfree(slabrelay_nest_kfree,
							NULL, SLABRELAY_PRIO_NEST);
			if (err)
				unregister_trace_kfree(slabrelay_pre_kfree, NULL);
		}
		break;
	case SLAB_EVENT_KMEM_CACHE_ALLOC:
		err = register_trace_prio_kmem_cache_alloc(slabrelay_pre_cache_alloc,
							   NULL, SLABRELAY_PRIO_PRE);
		break;
	case SLAB_EVENT_KMEM_CACHE_FREE:
		err = register_trace_prio_kmem_cache_free(slabrelay_pre_cache_free,
							  NULL, SLABRELAY_PRIO_PRE);
		break;
	}
	return err;
}

void slabrelay_unregister_pre(int kind)
{
	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		if (slabrelay_nest_first)
			unregister_trace_kmalloc(slabrelay_nest_kmalloc, NULL);
		unregister_trace_kmalloc(slabrelay_pre_kmalloc, NULL);
		break;
	case SLAB_EVENT_KFREE:
		if (slabrelay_nest_first)
			unregister_trace_kfree(slabrelay_nest_kfree, NULL);
		unregister_trace_kfree(slabrelay_pre_kfree, NULL);
		break;
	case SLAB_EVENT_KMEM_CACHE_ALLOC:
		unregister_trace_kmem_cache_alloc(slabrelay_pre_cache_alloc, NULL);
		break;
	case SLAB_EVENT_KMEM_CACHE_FREE:
		unregister_trace_kmem_cache_free(slabrelay_pre_cache_free, NULL);
		break;
	}
}

void slabrelay_release_truth(void)
{
	struct slabrelay_cpu *pc;
	int cpu, k;

	for_each_possible_cpu(cpu) {
		pc = per_cpu_ptr(&slabrelay_pcpu, cpu);
		for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
			if (pc->truth[k])
				perf_event_release_kernel(pc->truth[k]);
			pc->truth[k] = NULL;
		}
	}
}

/* Created before the probes are registered (their order is by priority). */
int slabrelay_create_truth(void)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_TRACEPOINT,
		.size = sizeof(attr),
		.pinned = 1,
	};
	struct perf_event *ev;
	int cpu, k;

	for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
		if (!(slabrelay_events & (1u << k)) || !slabrelay_truth_ids[k - 1])
			continue;
		attr.config = slabrelay_truth_ids[k - 1];
		for_each_online_cpu(cpu) {
			ev = perf_event_create_kernel_counter(&attr, cpu, NULL,
							      NULL, NULL);
			if (IS_ERR(ev)) {
				pr_err("truth_ids[%d]=%u: counting perf event on cpu %d failed: %ld (pass the id of kmem:%s from tracefs)\n",
				       k - 1, slabrelay_truth_ids[k - 1], cpu,
				       PTR_ERR(ev), slabrelay_kind_names[k]);
				slabrelay_release_truth();
				return PTR_ERR(ev) == -ENOENT ? -EINVAL :
				       PTR_ERR(ev);
			}
			per_cpu_ptr(&slabrelay_pcpu, cpu)->truth[k] = ev;
		}
	}
	return 0;
}
