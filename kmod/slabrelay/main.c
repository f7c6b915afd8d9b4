// SPDX-License-Identifier: GPL-2.0
/*
 * slabrelay - slab allocation events into per-CPU relay buffers.
 *
 * Probes on the kmem tracepoints (kmalloc, kfree, kmem_cache_alloc,
 * kmem_cache_free) write one struct slab_event per hit into a relay
 * channel with one buffer per CPU, /sys/kernel/debug/slabrelay/cpuN, which
 * user space maps read-only. Sub-buffers start with a struct
 * slabrelay_subbuf_hdr (kmod/include/slabrelay.h).
 *
 * Accounting, per CPU and kind (struct slab_kind_stats plus overwritten):
 * every hit the probe handles takes the next sequence number (attempts);
 * a record relay refuses because the buffer is full is a drop
 * (no-overwrite mode); in overwrite mode a sub-buffer the reader has not
 * consumed is overwritten and its records, per kind, are added to
 * overwritten. With truth_ids set, a per-CPU counting perf event on the
 * same tracepoint stamps every hit, so the tracepoint hits between the
 * first and the last handled hit are known exactly (see slabrelay_pre for
 * why that takes a probe on each side of perf's).
 *
 * Files in /sys/kernel/debug/slabrelay:
 *   cpuN     relay buffer of CPU N (mmap it whole, read-only)
 *   control  write one command per write():
 *              "consumed <cpu> <seq>"  sub-buffers before sequence number
 *                                      <seq> are read (absolute, not a delta);
 *                                      EINVAL if seq > produced, ESTALE if
 *                                      overwrites consumed them already
 *              "flush"                 close every non-empty open sub-buffer
 *              "stop"                  unregister the probes, then flush
 *   stats    text, see slabrelay_stats_show()
 *   stacks   with stack_depth set: the allocations' stacks (stacks.c)
 *
 * Everything that writes a CPU's buffer runs on that CPU with interrupts
 * off: the probes, and the control commands through an IPI (a consumed
 * count only in overwrite mode, where the producer moves it too). So a
 * consumed count and an overwrite are ordered, and the lost-record count
 * is exact.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/version.h>
#include <linux/types.h>
#include <linux/slab.h>
#include <linux/percpu.h>
#include <linux/cpumask.h>
#include <linux/smp.h>
#include <linux/relay.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/timekeeping.h>
#include <linux/sched/clock.h>
#include <linux/perf_event.h>
#include <linux/tracepoint.h>
#include <trace/events/kmem.h>


#include "slab_event.h"
#include "slabrelay.h"
#include "stacks.h"

/* The Go reader decodes these layouts byte for byte. */
static_assert(sizeof(struct slab_event) == SLAB_EVENT_SIZE, "slab_event must be SLAB_EVENT_SIZE bytes");
static_assert(sizeof(struct slabrelay_subbuf_hdr) == SLABRELAY_HDR_SIZE,
	      "slabrelay_subbuf_hdr must be SLABRELAY_HDR_SIZE bytes");

/* Tracepoint names, indexed by enum slab_event_kind. */
static const char *const slabrelay_kind_names[SLAB_EVENT_KIND_MAX] = {
	[SLAB_EVENT_KMALLOC] = "kmalloc",
	[SLAB_EVENT_KFREE] = "kfree",
	[SLAB_EVENT_KMEM_CACHE_ALLOC] = "kmem_cache_alloc",
	[SLAB_EVENT_KMEM_CACHE_FREE] = "kmem_cache_free",
};

static unsigned int subbuf_size = 16384;
module_param(subbuf_size, uint, 0444);
MODULE_PARM_DESC(subbuf_size,
		 "Sub-buffer size in bytes, a multiple of 8, at least 144 (header + one record); subbuf_size * n_subbufs <= 64 MiB (default 16384)");

static unsigned int n_subbufs = 8;
module_param(n_subbufs, uint, 0444);
MODULE_PARM_DESC(n_subbufs, "Sub-buffers per CPU, 2..65536 (default 8)");

static bool overwrite;
module_param(overwrite, bool, 0444);
MODULE_PARM_DESC(overwrite,
		 "Flight recorder: overwrite the oldest unread sub-buffer instead of dropping new records (default 0)");

static unsigned int events = 0x1e;
module_param(events, uint, 0444);
MODULE_PARM_DESC(events,
		 "Bit mask of event kinds, 1 << kind: kmalloc=0x2 kfree=0x4 kmem_cache_alloc=0x8 kmem_cache_free=0x10 (default 0x1e, all)");

static unsigned int truth_ids[SLAB_EVENT_KIND_MAX - 1];
static int n_truth_ids;
module_param_array(truth_ids, uint, &n_truth_ids, 0444);
MODULE_PARM_DESC(truth_ids,
		 "Perf tracepoint ids of kmem:kmalloc,kfree,kmem_cache_alloc,kmem_cache_free from tracefs; 0 or absent: no truth stamp for that kind");

static bool empty;
module_param(empty, bool, 0444);
MODULE_PARM_DESC(empty,
		 "Register the probes but return at once: the floor every capture pays; nothing is recorded or counted (default 0)");

static bool probe_time;
module_param(probe_time, bool, 0444);
MODULE_PARM_DESC(probe_time,
		 "Sum the time spent inside the probes per CPU (local_clock, sched_clock based as BPF's run-time statistics), shown in stats as probe_ns and probe_runs (default 0)");

static bool nest_first;
module_param(nest_first, bool, 0444);
MODULE_PARM_DESC(nest_first,
		 "Test: allocate and free once inside the first kmalloc and kfree hit of each CPU, between the truth counter's probe and the module's, so that a same-kind hit nests there (default 0)");

static bool nest_calls;
module_param(nest_calls, bool, 0444);
MODULE_PARM_DESC(nest_calls,
		 "Test: inside every kmalloc and kmem_cache_alloc hit not itself nested, allocate and free once more through __kmalloc and kmem_cache_alloc, so that each call of those functions has a same-kind call inside it, as an interrupt's would be (default 0)");

static unsigned int stack_depth;
module_param(stack_depth, uint, 0444);
MODULE_PARM_DESC(stack_depth,
		 "Frames of each allocation's kernel stack to store, 0..127; 0: no stacks (default 0)");

static unsigned int stack_entries = 16384;
module_param(stack_entries, uint, 0444);
MODULE_PARM_DESC(stack_entries,
		 "Distinct stacks stored at most, 1..1048576; allocations past it are counted without one (default 16384)");

#define SLABRELAY_MAX_STACK_ENTRIES	(1u << 20)

#define SLABRELAY_KIND_BITS	0x1e
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

static DEFINE_PER_CPU(struct slabrelay_cpu, slabrelay_pcpu);

static struct rchan *slabrelay_chan;
static struct dentry *slabrelay_dir;
static struct dentry *slabrelay_control;
static struct dentry *slabrelay_stats;
static struct dentry *slabrelay_stacks;
/* Serializes control commands; guards slabrelay_probes. */
static DEFINE_MUTEX(slabrelay_mutex);
static unsigned int slabrelay_probes;	/* 1 << kind of registered probes */
static unsigned int slabrelay_pre_probes;	/* and of their pre probes */
/* Hits on a CPU with no hit of the kind in progress are handled while set. */
static bool slabrelay_armed;

static inline struct slabrelay_subbuf_hdr *subbuf_hdr(void *subbuf)
{
	return subbuf;
}

/*
 * Called by relay with the buffer's CPU interrupts off (probe, IPI), or at
 * buffer creation before any probe exists: use buf->cpu, never the current
 * CPU.
 */
static int slabrelay_start(struct rchan_buf *buf, void *subbuf,
			   void *prev_subbuf, size_t prev_padding)
{
	struct slabrelay_cpu *pc = per_cpu_ptr(&slabrelay_pcpu, buf->cpu);
	struct slabrelay_subbuf_hdr *hdr = subbuf_hdr(subbuf);
	size_t backlog;
	int k;

	/*
	 * relay counted the previous sub-buffer as produced already; when
	 * relay refused the last start, prev_subbuf is that same sub-buffer
	 * again and commit gets the same value again.
	 */
	if (prev_subbuf)
		subbuf_hdr(prev_subbuf)->commit =
			buf->chan->subbuf_size - prev_padding;

	backlog = buf->subbufs_produced - buf->subbufs_consumed;
	if (backlog > pc->max_backlog)
		pc->max_backlog = backlog;

	if (relay_buf_full(buf)) {
		if (!overwrite)
			return 0;	/* the probe counts the refused record */
		/*
		 * The slot holds sub-buffer seq == subbufs_consumed, complete
		 * and unread: its records are lost. Mark it consumed so that
		 * relay's produced - consumed stays the backlog of the reader.
		 */
		for (k = 1; k < SLAB_EVENT_KIND_MAX; k++)
			pc->overwritten[k] += hdr->kind_nrec[k];
		pc->overwritten_subbufs++;
		relay_subbufs_consumed(buf->chan, buf->cpu, 1);
	}

	hdr->seq = buf->subbufs_produced;
	smp_wmb();	/* seq before anything else of the new sub-buffer */
	hdr->magic = SLABRELAY_SUBBUF_MAGIC;
	hdr->cpu = buf->cpu;
	hdr->commit = 0;
	hdr->nrec = 0;
	memset(hdr->kind_nrec, 0, sizeof(hdr->kind_nrec));
	hdr->prev_padding = prev_subbuf ? prev_padding : 0;
	hdr->ts_ns = ktime_get_ns();
	hdr->overwritten = pc->overwritten_subbufs;
	smp_wmb();	/* header before the records */
	subbuf_start_reserve(buf, sizeof(*hdr));
	return 1;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 17, 0)
/* v6.17 ("relayfs: abolish prev_padding") dropped the last argument. */
static int slabrelay_subbuf_start(struct rchan_buf *buf, void *subbuf,
				  void *prev_subbuf)
{
	size_t prev = (buf->subbufs_produced + buf->chan->n_subbufs - 1) %
		      buf->chan->n_subbufs;

	return slabrelay_start(buf, subbuf, prev_subbuf,
			       prev_subbuf ? buf->padding[prev] : 0);
}
#else
static int slabrelay_subbuf_start(struct rchan_buf *buf, void *subbuf,
				  void *prev_subbuf, size_t prev_padding)
{
	return slabrelay_start(buf, subbuf, prev_subbuf, prev_padding);
}
#endif

/*
 * _unsafe: debugfs_create_file() would wrap relay_file_operations in a
 * proxy without mmap (ENODEV). The fops live in the kernel, not in this
 * module, and an open file holds a reference on its rchan_buf, so files
 * and mappings outlive the module safely.
 */
static struct dentry *slabrelay_create_buf_file(const char *filename,
						struct dentry *parent,
						umode_t mode,
						struct rchan_buf *buf,
						int *is_global)
{
	struct dentry *d;

	d = debugfs_create_file_unsafe(filename, mode, parent, buf,
				       &relay_file_operations);
	/* relay checks for NULL, debugfs returns ERR_PTR */
	return IS_ERR(d) ? NULL : d;
}

static int slabrelay_remove_buf_file(struct dentry *dentry)
{
	debugfs_remove(dentry);
	return 0;
}

static const struct rchan_callbacks slabrelay_relay_cb = {
	.subbuf_start = slabrelay_subbuf_start,
	.create_buf_file = slabrelay_create_buf_file,
	.remove_buf_file = slabrelay_remove_buf_file,
};

static bool slabrelay_truth_on(u16 kind)
{
	return truth_ids[kind - 1] && !empty;
}

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
	t0 = probe_time ? local_clock() : 0;
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
	if (probe_time)
		pc->probe_ns += local_clock() - t0;
	local_irq_restore(flags);
}

/* Pops the hit's pre state; returns whether the hit is handled. */
static bool slabrelay_pop(struct slabrelay_window *w, u16 kind)
{
	u32 d;

	if (!slabrelay_truth_on(kind))
		return READ_ONCE(slabrelay_armed);
	if (!w->depth)
		return false;	/* no pre for this hit: probes being registered */
	d = --w->depth;
	return d < SLABRELAY_MAX_DEPTH && (w->handled & BIT(d));
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

	if (empty && !probe_time)
		return;
	local_irq_save(flags);
	t0 = probe_time ? local_clock() : 0;
	pc = this_cpu_ptr(&slabrelay_pcpu);
	if (empty || !slabrelay_pop(&pc->win[kind], kind))
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
	if (stack_depth && (kind == SLAB_EVENT_KMALLOC || kind == SLAB_EVENT_KMEM_CACHE_ALLOC)) {
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
	ev->ts_ns = ktime_get_ns();
	ev->seq = seq;
	ev->call_site = call_site;
	ev->ptr = (unsigned long)ptr;
	ev->bytes_req = bytes_req;
	ev->bytes_alloc = bytes_alloc;
	ev->gfp_flags = (__force u32)gfp;
	ev->stack_id = stack;
	ev->truth = stamp;
	/*
	 * In interrupt context current is whoever was interrupted, and a
	 * kernel thread has no user-space process: both get 0, so a pid is
	 * always the user-space task that allocated.
	 */
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
	smp_wmb();	/* the record before its count */
	subbuf_hdr(buf->data)->nrec++;
	subbuf_hdr(buf->data)->kind_nrec[kind]++;
out:
	if (probe_time) {
		pc->probe_ns += local_clock() - t0;
		pc->probe_runs++;
	}
	local_irq_restore(flags);
}

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

static void slabrelay_nest_kmalloc(void *data, unsigned long call_site,
				   const void *ptr, size_t bytes_req,
				   size_t bytes_alloc, gfp_t gfp_flags,
				   int node)
{
	slabrelay_nest(SLAB_EVENT_KMALLOC);
}

static void slabrelay_nest_kfree(void *data, unsigned long call_site,
				 const void *ptr)
{
	slabrelay_nest(SLAB_EVENT_KFREE);
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

/* The pre probe of kind and, with nest_first, its nest probe. */
static int slabrelay_register_pre(int kind)
{
	int err = -EINVAL;

	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		err = register_trace_prio_kmalloc(slabrelay_pre_kmalloc, NULL,
						  SLABRELAY_PRIO_PRE);
		if (!err && nest_first) {
			err = register_trace_prio_kmalloc(slabrelay_nest_kmalloc,
							  NULL, SLABRELAY_PRIO_NEST);
			if (err)
				unregister_trace_kmalloc(slabrelay_pre_kmalloc, NULL);
		}
		break;
	case SLAB_EVENT_KFREE:
		err = register_trace_prio_kfree(slabrelay_pre_kfree, NULL,
						SLABRELAY_PRIO_PRE);
		if (!err && nest_first) {
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

static void slabrelay_unregister_pre(int kind)
{
	switch (kind) {
	case SLAB_EVENT_KMALLOC:
		if (nest_first)
			unregister_trace_kmalloc(slabrelay_nest_kmalloc, NULL);
		unregister_trace_kmalloc(slabrelay_pre_kmalloc, NULL);
		break;
	case SLAB_EVENT_KFREE:
		if (nest_first)
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

/*
 * Close the window, unregister every registered probe and wait until none
 * runs any more. Caller holds slabrelay_mutex (or is module init/exit).
 */
static void slabrelay_unregister_probes(void)
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
static int slabrelay_register_probes(void)
{
	int k, err;

	for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
		if (!(events & (1u << k)))
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

static void slabrelay_release_truth(void)
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
static int slabrelay_create_truth(void)
{
	struct perf_event_attr attr = {
		.type = PERF_TYPE_TRACEPOINT,
		.size = sizeof(attr),
		.pinned = 1,
	};
	struct perf_event *ev;
	int cpu, k;

	for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
		if (!(events & (1u << k)) || !truth_ids[k - 1])
			continue;
		attr.config = truth_ids[k - 1];
		for_each_online_cpu(cpu) {
			ev = perf_event_create_kernel_counter(&attr, cpu, NULL,
							      NULL, NULL);
			if (IS_ERR(ev)) {
				pr_err("truth_ids[%d]=%u: counting perf event on cpu %d failed: %ld (pass the id of kmem:%s from tracefs)\n",
				       k - 1, truth_ids[k - 1], cpu,
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

struct slabrelay_consume {
	u64 seq;
	int err;
};

/*
 * Moves buf's consumed count to c->seq. Only an overwrite moves consumed
 * without the reader: if it is at seq already, the sub-buffers before seq
 * were overwritten and their records counted as lost. Tell the reader,
 * which then learns exactly which records it returned were also counted
 * as lost.
 */
static void slabrelay_consume(struct rchan_buf *buf,
			      struct slabrelay_consume *c)
{
	size_t consumed = READ_ONCE(buf->subbufs_consumed);

	if (c->seq > READ_ONCE(buf->subbufs_produced)) {
		c->err = -EINVAL;
		return;
	}
	if (c->seq <= consumed) {
		c->err = -ESTALE;
		return;
	}
	relay_subbufs_consumed(slabrelay_chan, buf->cpu, c->seq - consumed);
	c->err = 0;
}

/*
 * IPI on the buffer's CPU, for overwrite mode: interrupts are off and no
 * probe runs here, so an overwrite and this are ordered.
 */
static void slabrelay_consume_on_cpu(void *info)
{
	struct rchan_buf *buf = *this_cpu_ptr(slabrelay_chan->buf);

	if (!buf) {
		((struct slabrelay_consume *)info)->err = -ENODEV;
		return;
	}
	slabrelay_consume(buf, info);
}

/*
 * Without overwrite only the reader moves consumed (the producer reads it
 * in relay_buf_full), so no IPI is needed: under a VM an IPI costs as much
 * as reading hundreds of records. Caller holds slabrelay_mutex.
 */
static int slabrelay_consume_cpu(unsigned int cpu, struct slabrelay_consume *c)
{
	struct rchan_buf *buf;
	int err;

	if (overwrite) {
		c->err = -EINVAL;
		err = smp_call_function_single(cpu, slabrelay_consume_on_cpu,
					       c, 1);
		return err ? err : c->err;
	}
	buf = *per_cpu_ptr(slabrelay_chan->buf, cpu);
	if (!buf)
		return -ENODEV;
	slabrelay_consume(buf, c);
	return c->err;
}

/* IPI: close the open sub-buffer if it holds records. */
static void slabrelay_flush_on_cpu(void *info)
{
	struct rchan_buf *buf = *this_cpu_ptr(slabrelay_chan->buf);

	if (!buf || buf->offset <= sizeof(struct slabrelay_subbuf_hdr) ||
	    buf->offset > buf->chan->subbuf_size)
		return;	/* empty, or relay refused the last start */
	relay_switch_subbuf(buf, 0);
}

static void slabrelay_flush(void)
{
	int cpu;

	cpus_read_lock();
	for_each_online_cpu(cpu)
		smp_call_function_single(cpu, slabrelay_flush_on_cpu, NULL, 1);
	cpus_read_unlock();
}

static ssize_t slabrelay_control_write(struct file *file,
				       const char __user *ubuf, size_t len,
				       loff_t *ppos)
{
	struct slabrelay_consume c;
	char cmd[64];
	unsigned int cpu;
	int err;

	if (len == 0 || len >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, ubuf, len))
		return -EFAULT;
	cmd[len] = '\0';
	strim(cmd);

	mutex_lock(&slabrelay_mutex);
	if (sscanf(cmd, "consumed %u %llu", &cpu, &c.seq) == 2) {
		err = -EINVAL;
		cpus_read_lock();
		if (cpu < nr_cpu_ids && cpu_online(cpu))
			err = slabrelay_consume_cpu(cpu, &c);
		cpus_read_unlock();
	} else if (!strcmp(cmd, "flush")) {
		slabrelay_flush();
		err = 0;
	} else if (!strcmp(cmd, "stop")) {
		slabrelay_unregister_probes();
		slabrelay_flush();
		err = 0;
	} else {
		err = -EINVAL;
	}
	mutex_unlock(&slabrelay_mutex);
	return err ? err : len;
}

static const struct file_operations slabrelay_control_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = slabrelay_control_write,
	.llseek = noop_llseek,
};

/*
 * stats, one record per line, "key value" pairs separated by spaces:
 *   slabrelay 1 subbuf_size S n_subbufs N overwrite 0|1 events MASK probes MASK
 *   cpu C produced P consumed Q overwritten_subbufs O max_backlog B probe_ns T probe_runs R
 *   kind C K attempts A drops D truth_first F truth_last L truth_errors E overwritten W nested N first_emit S stacks_taken T stacks_full U stack_collisions V stacks_failed X
 * (nested: handled hits that ran inside another hit of the kind; first_emit:
 * the count the first emit probe read, the window start were nesting
 * ignored; stacks_*: with stack_depth, what became of each allocation's
 * stack, enum slabrelay_stack_result.)
 * A cpu line precedes the kind lines of that CPU (K = 1..4). Values read
 * while probes run are a snapshot; after "stop" they are final.
 */
static int slabrelay_stats_show(struct seq_file *m, void *v)
{
	struct slabrelay_cpu *pc;
	struct slab_kind_stats *ks;
	struct rchan_buf *buf;
	int cpu, k;

	seq_printf(m, "slabrelay 1 subbuf_size %u n_subbufs %u overwrite %d events %u probes %u\n",
		   subbuf_size, n_subbufs, overwrite ? 1 : 0, events,
		   READ_ONCE(slabrelay_probes));
	for_each_online_cpu(cpu) {
		buf = *per_cpu_ptr(slabrelay_chan->buf, cpu);
		if (!buf)
			continue;
		pc = per_cpu_ptr(&slabrelay_pcpu, cpu);
		seq_printf(m, "cpu %d produced %zu consumed %zu overwritten_subbufs %llu max_backlog %llu probe_ns %llu probe_runs %llu\n",
			   cpu, READ_ONCE(buf->subbufs_produced),
			   READ_ONCE(buf->subbufs_consumed),
			   READ_ONCE(pc->overwritten_subbufs),
			   READ_ONCE(pc->max_backlog),
			   READ_ONCE(pc->probe_ns),
			   READ_ONCE(pc->probe_runs));
		for (k = 1; k < SLAB_EVENT_KIND_MAX; k++) {
			ks = &pc->kinds[k];
			seq_printf(m, "kind %d %d attempts %llu drops %llu truth_first %llu truth_last %llu truth_errors %llu overwritten %llu nested %llu first_emit %llu stacks_taken %llu stacks_full %llu stack_collisions %llu stacks_failed %llu\n",
				   cpu, k, READ_ONCE(ks->attempts),
				   READ_ONCE(ks->drops),
				   READ_ONCE(ks->truth_first),
				   READ_ONCE(ks->truth_last),
				   READ_ONCE(ks->truth_errors),
				   READ_ONCE(pc->overwritten[k]),
				   READ_ONCE(pc->win[k].nested),
				   READ_ONCE(pc->win[k].first_emit),
				   READ_ONCE(pc->stacks[k][SLABRELAY_STACK_TAKEN]),
				   READ_ONCE(pc->stacks[k][SLABRELAY_STACK_FULL]),
				   READ_ONCE(pc->stacks[k][SLABRELAY_STACK_COLLISION]),
				   READ_ONCE(pc->stacks[k][SLABRELAY_STACK_FAILED]));
		}
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(slabrelay_stats);
DEFINE_SHOW_ATTRIBUTE(slabrelay_stacks);

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

static int __init slabrelay_register_nest_calls(void)
{
	int err;

	if (!nest_calls)
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

static void slabrelay_unregister_nest_calls(void)
{
	if (!nest_calls)
		return;
	unregister_trace_kmem_cache_alloc(slabrelay_nest_call_cache_alloc, NULL);
	unregister_trace_kmalloc(slabrelay_nest_call_kmalloc, NULL);
	tracepoint_synchronize_unregister();
	kmem_cache_destroy(slabrelay_nest_cache);
}

static int __init slabrelay_check_params(void)
{
	int i;

	if (subbuf_size < SLABRELAY_MIN_SUBBUF_SIZE || subbuf_size % 8 ||
	    subbuf_size > SLABRELAY_MAX_CPU_BYTES / SLABRELAY_MIN_SUBBUFS) {
		pr_err("subbuf_size=%u: want a multiple of 8 in %u..%u bytes (header + one record .. 64 MiB / 2)\n",
		       subbuf_size, SLABRELAY_MIN_SUBBUF_SIZE,
		       SLABRELAY_MAX_CPU_BYTES / SLABRELAY_MIN_SUBBUFS);
		return -EINVAL;
	}
	if (n_subbufs < SLABRELAY_MIN_SUBBUFS ||
	    n_subbufs > SLABRELAY_MAX_SUBBUFS) {
		pr_err("n_subbufs=%u: want %u..%u\n", n_subbufs,
		       SLABRELAY_MIN_SUBBUFS, SLABRELAY_MAX_SUBBUFS);
		return -EINVAL;
	}
	if ((u64)subbuf_size * n_subbufs > SLABRELAY_MAX_CPU_BYTES) {
		pr_err("subbuf_size=%u * n_subbufs=%u = %llu bytes per CPU: want at most %u (64 MiB)\n",
		       subbuf_size, n_subbufs, (u64)subbuf_size * n_subbufs,
		       SLABRELAY_MAX_CPU_BYTES);
		return -EINVAL;
	}
	if (!events || (events & ~SLABRELAY_KIND_BITS)) {
		pr_err("events=%#x: want a non-empty mask of 0x2 kmalloc, 0x4 kfree, 0x8 kmem_cache_alloc, 0x10 kmem_cache_free (all: 0x1e)\n",
		       events);
		return -EINVAL;
	}
	if (stack_depth > SLABRELAY_MAX_STACK_DEPTH) {
		pr_err("stack_depth=%u: want 0..%u\n", stack_depth,
		       SLABRELAY_MAX_STACK_DEPTH);
		return -EINVAL;
	}
	if (!stack_entries || stack_entries > SLABRELAY_MAX_STACK_ENTRIES) {
		pr_err("stack_entries=%u: want 1..%u\n", stack_entries,
		       SLABRELAY_MAX_STACK_ENTRIES);
		return -EINVAL;
	}
	for (i = 0; i < n_truth_ids; i++) {
		if (truth_ids[i] && !(events & (1u << (i + 1)))) {
			pr_err("truth_ids[%d]=%u: kind %d is not in events=%#x; pass 0 for it\n",
			       i, truth_ids[i], i + 1, events);
			return -EINVAL;
		}
	}
	return 0;
}

static int __init slabrelay_init(void)
{
	int err;

	err = slabrelay_check_params();
	if (err)
		return err;

	slabrelay_dir = debugfs_create_dir("slabrelay", NULL);
	if (IS_ERR(slabrelay_dir)) {
		err = PTR_ERR(slabrelay_dir);
		pr_err("creating debugfs directory slabrelay failed: %d\n", err);
		return err;
	}

	slabrelay_chan = relay_open("cpu", slabrelay_dir, subbuf_size,
				    n_subbufs, &slabrelay_relay_cb, NULL);
	if (!slabrelay_chan) {
		pr_err("relay_open(subbuf_size=%u, n_subbufs=%u) failed\n",
		       subbuf_size, n_subbufs);
		err = -ENOMEM;
		goto remove_dir;
	}

	if (stack_depth) {
		err = slabrelay_stacks_init(stack_depth, stack_entries);
		if (err)
			goto close_relay;
	}

	err = slabrelay_create_truth();
	if (err)
		goto free_stacks;

	err = slabrelay_register_probes();
	if (err)
		goto release_truth;

	err = slabrelay_register_nest_calls();
	if (err)
		goto unregister_probes;

	slabrelay_control = debugfs_create_file("control", 0200, slabrelay_dir,
						NULL, &slabrelay_control_fops);
	if (IS_ERR(slabrelay_control)) {
		err = PTR_ERR(slabrelay_control);
		pr_err("creating debugfs file control failed: %d\n", err);
		goto unregister_nest_calls;
	}
	slabrelay_stats = debugfs_create_file("stats", 0400, slabrelay_dir,
					      NULL, &slabrelay_stats_fops);
	if (IS_ERR(slabrelay_stats)) {
		err = PTR_ERR(slabrelay_stats);
		pr_err("creating debugfs file stats failed: %d\n", err);
		goto remove_control;
	}
	if (stack_depth) {
		slabrelay_stacks = debugfs_create_file("stacks", 0400, slabrelay_dir,
						       NULL, &slabrelay_stacks_fops);
		if (IS_ERR(slabrelay_stacks)) {
			err = PTR_ERR(slabrelay_stacks);
			pr_err("creating debugfs file stacks failed: %d\n", err);
			goto remove_stats;
		}
	}
	return 0;

remove_stats:
	debugfs_remove(slabrelay_stats);
remove_control:
	debugfs_remove(slabrelay_control);
unregister_nest_calls:
	slabrelay_unregister_nest_calls();
unregister_probes:
	slabrelay_unregister_probes();
release_truth:
	slabrelay_release_truth();
free_stacks:
	slabrelay_stacks_exit();
close_relay:
	relay_close(slabrelay_chan);
remove_dir:
	debugfs_remove_recursive(slabrelay_dir);
	return err;
}

static void __exit slabrelay_exit(void)
{
	/* debugfs_remove() waits for calls in flight on its file */
	debugfs_remove(slabrelay_stacks);
	debugfs_remove(slabrelay_stats);
	debugfs_remove(slabrelay_control);
	slabrelay_unregister_nest_calls();
	slabrelay_unregister_probes();
	slabrelay_release_truth();
	slabrelay_stacks_exit();
	/* open cpuN files and their mappings keep their buffers alive */
	relay_close(slabrelay_chan);
	debugfs_remove_recursive(slabrelay_dir);
}

module_init(slabrelay_init);
module_exit(slabrelay_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Slab allocation events into per-CPU relay buffers");
