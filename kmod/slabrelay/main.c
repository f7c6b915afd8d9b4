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
 *
 * Files: main.c (this: parameters, debugfs files, init and exit), relay.c
 * (the relay channel's callbacks, consumed counts, flush), probes.c (the
 * probes that write the records), truth.c (the truth window), nest.c
 * (test hooks that nest hits), stacks.c (the stack table); internal.h has
 * what they share.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt


#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/types.h>
#include <linux/cpu.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>
#include <linux/mutex.h>
#include <linux/string.h>
#include <linux/tracepoint.h>

#include "internal.h"

/* The Go reader decodes these layouts byte for byte. */
static_assert(sizeof(struct slab_event) == SLAB_EVENT_SIZE, "slab_event must be SLAB_EVENT_SIZE bytes");
static_assert(sizeof(struct slabrelay_subbuf_hdr) == SLABRELAY_HDR_SIZE,
	      "slabrelay_subbuf_hdr must be SLABRELAY_HDR_SIZE bytes");

/* Tracepoint names, indexed by enum slab_event_kind. */
const char *const slabrelay_kind_names[SLAB_EVENT_KIND_MAX] = {
	[SLAB_EVENT_KMALLOC] = "kmalloc",
	[SLAB_EVENT_KFREE] = "kfree",
	[SLAB_EVENT_KMEM_CACHE_ALLOC] = "kmem_cache_alloc",
	[SLAB_EVENT_KMEM_CACHE_FREE] = "kmem_cache_free",
};

/*
 * Parameters: the variables carry the module's prefix (internal.h), the
 * parameters keep their short names.
 */
unsigned int slabrelay_subbuf_size = 16384;
module_param_named(subbuf_size, slabrelay_subbuf_size, uint, 0444);
MODULE_PARM_DESC(subbuf_size,
		 "Sub-buffer size in bytes, a multiple of 8, at least 144 (header + one record); subbuf_size * n_subbufs <= 64 MiB (default 16384)");

unsigned int slabrelay_n_subbufs = 8;
module_param_named(n_subbufs, slabrelay_n_subbufs, uint, 0444);
MODULE_PARM_DESC(n_subbufs, "Sub-buffers per CPU, 2..65536 (default 8)");

bool slabrelay_overwrite;
module_param_named(overwrite, slabrelay_overwrite, bool, 0444);
MODULE_PARM_DESC(overwrite,
		 "Flight recorder: overwrite the oldest unread sub-buffer instead of dropping new records (default 0)");

unsigned int slabrelay_events = 0x1e;
module_param_named(events, slabrelay_events, uint, 0444);
MODULE_PARM_DESC(events,
		 "Bit mask of event kinds, 1 << kind: kmalloc=0x2 kfree=0x4 kmem_cache_alloc=0x8 kmem_cache_free=0x10 (default 0x1e, all)");

unsigned int slabrelay_truth_ids[SLAB_EVENT_KIND_MAX - 1];
static int slabrelay_n_truth_ids;
module_param_array_named(truth_ids, slabrelay_truth_ids, uint,
			 &slabrelay_n_truth_ids, 0444);
MODULE_PARM_DESC(truth_ids,
		 "Perf tracepoint ids of kmem:kmalloc,kfree,kmem_cache_alloc,kmem_cache_free from tracefs; 0 or absent: no truth stamp for that kind");

bool slabrelay_empty;
module_param_named(empty, slabrelay_empty, bool, 0444);
MODULE_PARM_DESC(empty,
		 "Register the probes but return at once: the floor every capture pays; nothing is recorded or counted (default 0)");

unsigned int slabrelay_part;
module_param_named(part, slabrelay_part, uint, 0444);
MODULE_PARM_DESC(part,
		 "The probe's parts, priced one at a time: 0 the whole probe; 1 the transport's floor, a record reserved with only its CPU and kind (the reader checks them) and the sub-buffer's counts; 2 that record filled. 1 and 2 write on every hit and count nothing (default 0)");

bool slabrelay_probe_time;
module_param_named(probe_time, slabrelay_probe_time, bool, 0444);
MODULE_PARM_DESC(probe_time,
		 "Sum the time spent inside the probes per CPU (local_clock, sched_clock based as BPF's run-time statistics), shown in stats as probe_ns and probe_runs (default 0)");

bool slabrelay_nest_first;
module_param_named(nest_first, slabrelay_nest_first, bool, 0444);
MODULE_PARM_DESC(nest_first,
		 "Test: allocate and free once inside the first kmalloc and kfree hit of each CPU, between the truth counter's probe and the module's, so that a same-kind hit nests there (default 0)");

unsigned int slabrelay_start_delay_us;
module_param_named(start_delay_us, slabrelay_start_delay_us, uint, 0444);
MODULE_PARM_DESC(start_delay_us,
		 "Test: wait this many microseconds, 0..100, in each sub-buffer's start just after its seq is published, so that a reader waiting for it looks at a header being written (default 0)");

bool slabrelay_nest_calls;
module_param_named(nest_calls, slabrelay_nest_calls, bool, 0444);
MODULE_PARM_DESC(nest_calls,
		 "Test: inside every kmalloc and kmem_cache_alloc hit not itself nested, allocate and free once more through __kmalloc and kmem_cache_alloc, so that each call of those functions has a same-kind call inside it, as an interrupt's would be (default 0)");

unsigned int slabrelay_stack_depth;
module_param_named(stack_depth, slabrelay_stack_depth, uint, 0444);
MODULE_PARM_DESC(stack_depth,
		 "Frames of each allocation's kernel stack to store, 0..127; 0: no stacks (default 0)");

static unsigned int slabrelay_stack_entries = 16384;
module_param_named(stack_entries, slabrelay_stack_entries, uint, 0444);
MODULE_PARM_DESC(stack_entries,
		 "Distinct stacks stored at most, 1..1048576; allocations past it are counted without one (default 16384)");

#define SLABRELAY_MAX_STACK_ENTRIES	(1u << 20)

DEFINE_PER_CPU(struct slabrelay_cpu, slabrelay_pcpu);

struct rchan *slabrelay_chan;
static struct dentry *slabrelay_dir;
static struct dentry *slabrelay_control;
static struct dentry *slabrelay_stats;
static struct dentry *slabrelay_stacks;
/* Serializes control commands. */
static DEFINE_MUTEX(slabrelay_mutex);

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
		   slabrelay_subbuf_size, slabrelay_n_subbufs,
		   slabrelay_overwrite ? 1 : 0, slabrelay_events,
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

static int __init slabrelay_check_params(void)
{
	int i;

	if (slabrelay_subbuf_size < SLABRELAY_MIN_SUBBUF_SIZE || slabrelay_subbuf_size % 8 ||
	    slabrelay_subbuf_size > SLABRELAY_MAX_CPU_BYTES / SLABRELAY_MIN_SUBBUFS) {
		pr_err("subbuf_size=%u: want a multiple of 8 in %u..%u bytes (header + one record .. 64 MiB / 2)\n",
		       slabrelay_subbuf_size, SLABRELAY_MIN_SUBBUF_SIZE,
		       SLABRELAY_MAX_CPU_BYTES / SLABRELAY_MIN_SUBBUFS);
		return -EINVAL;
	}
	if (slabrelay_n_subbufs < SLABRELAY_MIN_SUBBUFS ||
	    slabrelay_n_subbufs > SLABRELAY_MAX_SUBBUFS) {
		pr_err("n_subbufs=%u: want %u..%u\n", slabrelay_n_subbufs,
		       SLABRELAY_MIN_SUBBUFS, SLABRELAY_MAX_SUBBUFS);
		return -EINVAL;
	}
	if ((u64)slabrelay_subbuf_size * slabrelay_n_subbufs > SLABRELAY_MAX_CPU_BYTES) {
		pr_err("subbuf_size=%u * n_subbufs=%u = %llu bytes per CPU: want at most %u (64 MiB)\n",
		       slabrelay_subbuf_size, slabrelay_n_subbufs,
		       (u64)slabrelay_subbuf_size * slabrelay_n_subbufs,
		       SLABRELAY_MAX_CPU_BYTES);
		return -EINVAL;
	}
	if (!slabrelay_events || (slabrelay_events & ~SLABRELAY_KIND_BITS)) {
		pr_err("events=%#x: want a non-empty mask of 0x2 kmalloc, 0x4 kfree, 0x8 kmem_cache_alloc, 0x10 kmem_cache_free (all: 0x1e)\n",
		       slabrelay_events);
		return -EINVAL;
	}
	if (slabrelay_start_delay_us > 100) {
		pr_err("start_delay_us=%u: want 0..100\n", slabrelay_start_delay_us);
		return -EINVAL;
	}
	if (slabrelay_part > SLABRELAY_PART_FILL) {
		pr_err("part=%u: want 0 (the whole probe), 1 (the floor) or 2 (the record filled)\n",
		       slabrelay_part);
		return -EINVAL;
	}
	if (slabrelay_part && slabrelay_empty) {
		pr_err("part=%u with empty=1: the empty probe writes nothing; pass one of them\n",
		       slabrelay_part);
		return -EINVAL;
	}
	if (slabrelay_stack_depth > SLABRELAY_MAX_STACK_DEPTH) {
		pr_err("stack_depth=%u: want 0..%u\n", slabrelay_stack_depth,
		       SLABRELAY_MAX_STACK_DEPTH);
		return -EINVAL;
	}
	if (!slabrelay_stack_entries || slabrelay_stack_entries > SLABRELAY_MAX_STACK_ENTRIES) {
		pr_err("stack_entries=%u: want 1..%u\n", slabrelay_stack_entries,
		       SLABRELAY_MAX_STACK_ENTRIES);
		return -EINVAL;
	}
	for (i = 0; i < slabrelay_n_truth_ids; i++) {
		if (slabrelay_truth_ids[i] && !(slabrelay_events & (1u << (i + 1)))) {
			pr_err("truth_ids[%d]=%u: kind %d is not in events=%#x; pass 0 for it\n",
			       i, slabrelay_truth_ids[i], i + 1, slabrelay_events);
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

	slabrelay_chan = relay_open("cpu", slabrelay_dir, slabrelay_subbuf_size,
				    slabrelay_n_subbufs, &slabrelay_relay_cb, NULL);
	if (!slabrelay_chan) {
		pr_err("relay_open(subbuf_size=%u, n_subbufs=%u) failed\n",
		       slabrelay_subbuf_size, slabrelay_n_subbufs);
		err = -ENOMEM;
		goto remove_dir;
	}

	if (slabrelay_stack_depth) {
		err = slabrelay_stacks_init(slabrelay_stack_depth, slabrelay_stack_entries);
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
	if (slabrelay_stack_depth) {
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

