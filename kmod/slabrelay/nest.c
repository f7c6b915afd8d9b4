// SPDX-License-Identifier: GPL-2.0
/*
 * slabrelay: test hooks that nest a same-kind hit inside a hit (module
 * parameters nest_first and nest_calls). The module's overview: main.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>

#include "internal.h"

/*
 * nest_first: on the first handled hit of the kind on this CPU, between
 * perf's probe and slabrelay_emit, make one kmalloc and one kfree hit, as
 * an interrupt there would. Interrupts stay on, as on a real hit.
 */
static void slabrelay_nest(u16 kind)
{
	struct slabrelay_window *w = this_cpu_ptr(&slabrelay_pcpu.win[kind]);

	if (w->depth != 1 || !(w->handled & 1) || w->nest_done ||
	    this_cpu_read(slabrelay_pcpu.kinds[kind].attempts))
		return;
	w->nest_done = true;
	kfree(kmalloc(8, GFP_ATOMIC | __GFP_NOWARN));
}

void slabrelay_nest_kmalloc(void *data, unsigned long call_site,
				   const void *ptr, size_t bytes_req,
				   size_t bytes_alloc, gfp_t gfp_flags,
				   int node)
{
	slabrelay_nest(SLAB_EVENT_KMALLOC);
}

void slabrelay_nest_kfree(void *data, unsigned long call_site,
				 const void *ptr)
{
	slabrelay_nest(SLAB_EVENT_KFREE);
}

/*
 * nest_calls: a size the compiler cannot see, so that kmalloc() calls
 * __kmalloc (the function that function probes attach to), and a cache of
 * the module's own for kmem_cache_alloc.
 */
static size_t slabrelay_nest_size = 24;
static struct kmem_cache *slabrelay_nest_cache;
static DEFINE_PER_CPU(bool, slabrelay_nesting);

static void slabrelay_nest_call_kmalloc(void *data, unsigned long call_site,
					const void *ptr, size_t bytes_req,
					size_t bytes_alloc, gfp_t gfp_flags,
					int node)
{
	bool *nesting = this_cpu_ptr(&slabrelay_nesting);

	if (*nesting)
		return;
	*nesting = true;
	kfree(kmalloc(READ_ONCE(slabrelay_nest_size), GFP_ATOMIC | __GFP_NOWARN));
	*nesting = false;
}

static void slabrelay_nest_call_cache_alloc(void *data, unsigned long call_site,
					    const void *ptr,
					    struct kmem_cache *s,
					    gfp_t gfp_flags, int node)
{
	bool *nesting = this_cpu_ptr(&slabrelay_nesting);
	void *obj;

	if (*nesting)
		return;
	*nesting = true;
	obj = kmem_cache_alloc(slabrelay_nest_cache, GFP_ATOMIC | __GFP_NOWARN);
	if (obj)
		kmem_cache_free(slabrelay_nest_cache, obj);
	*nesting = false;
}

int __init slabrelay_register_nest_calls(void)
{
	int err;

	if (!slabrelay_nest_calls)
		return 0;
	slabrelay_nest_cache = kmem_cache_create("slabrelay_nest", 64, 0, 0, NULL);
	if (!slabrelay_nest_cache)
		return -ENOMEM;
	err = register_trace_kmalloc(slabrelay_nest_call_kmalloc, NULL);
	if (err)
		goto destroy_cache;
	err = register_trace_kmem_cache_alloc(slabrelay_nest_call_cache_alloc, NULL);
	if (err)
		goto unregister_kmalloc;
	return 0;

unregister_kmalloc:
	unregister_trace_kmalloc(slabrelay_nest_call_kmalloc, NULL);
	tracepoint_synchronize_unregister();
destroy_cache:
	kmem_cache_destroy(slabrelay_nest_cache);
	pr_err("nest_calls: registering its probes failed: %d\n", err);
	return err;
}

void slabrelay_unregister_nest_calls(void)
{
	if (!slabrelay_nest_calls)
		return;
	unregister_trace_kmem_cache_alloc(slabrelay_nest_call_cache_alloc, NULL);
	unregister_trace_kmalloc(slabrelay_nest_call_kmalloc, NULL);
	tracepoint_synchronize_unregister();
	kmem_cache_destroy(slabrelay_nest_cache);
}
