// SPDX-License-Identifier: GPL-2.0
/*
 * slabrelay's stack table. With stack_depth set, each allocation's kernel
 * stack (stack_trace_save) is stored once in a hash table sized at load,
 * and its record carries the bucket's index as its stack id, as a BPF
 * stack map does for bpf_get_stackid: a bucket another stack holds is a
 * collision, and once stack_entries stacks are stored the table is full.
 * Both are counted by the caller, never merged into another stack.
 *
 * A bucket is claimed with a compare-and-exchange and published with a
 * release store, so probes on any CPU, in any context, and the reader of
 * debugfs "stacks" never see a half-written stack.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/jhash.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/percpu.h>
#include <linux/stacktrace.h>
#include <linux/string.h>
#include <linux/vmalloc.h>

#include "stacks.h"

enum { BUCKET_EMPTY, BUCKET_WRITING, BUCKET_READY };

struct slabrelay_stack {
	atomic_t state;
	u32 hash;
	u32 nr;			/* frames in ips */
	unsigned long ips[];	/* innermost first */
};

static unsigned int stack_depth;
static unsigned int max_entries;
static unsigned int n_buckets;	/* a power of two >= max_entries */
static size_t bucket_size;
static atomic_t used;		/* buckets claimed */
static void *table;

/* One stack being walked per CPU: the probe runs with interrupts off. */
static DEFINE_PER_CPU(unsigned long[SLABRELAY_MAX_STACK_DEPTH + 8], walk);

static struct slabrelay_stack *bucket(u32 i)
{
	return table + (size_t)i * bucket_size;
}

int slabrelay_stacks_init(unsigned int depth, unsigned int entries)
{
	stack_depth = depth;
	max_entries = entries;
	n_buckets = roundup_pow_of_two(entries);
	bucket_size = struct_size((struct slabrelay_stack *)NULL, ips, depth);
	table = vzalloc(array_size(n_buckets, bucket_size));
	if (!table) {
		pr_err("stack_entries=%u, stack_depth=%u: no memory for the stack table (%zu bytes)\n",
		       entries, depth, array_size(n_buckets, bucket_size));
		return -ENOMEM;
	}
	return 0;
}

void slabrelay_stacks_exit(void)
{
	vfree(table);
	table = NULL;
}

/*
 * walk_stack saves this hit's stack into the CPU's walk buffer, from the
 * first frame outside this module (the probe's own frames are the same on
 * every hit), and returns where it starts and how many frames it has.
 */
static unsigned long *walk_stack(unsigned int *nr)
{
	unsigned long *ips = *this_cpu_ptr(&walk);
	unsigned int n, skip = 0;

	n = stack_trace_save(ips, stack_depth + 8, 0);
	while (skip < n && within_module(ips[skip], THIS_MODULE))
		skip++;
	*nr = min(n - skip, stack_depth);
	return ips + skip;
}

/* Called from the emit probe, with interrupts off. */
enum slabrelay_stack_result slabrelay_stack_take(u32 *id)
{
	struct slabrelay_stack *b;
	unsigned long *ips;
	unsigned int nr;
	size_t len;
	u32 hash, i;

	ips = walk_stack(&nr);
	if (!nr)
		return SLABRELAY_STACK_FAILED;
	len = nr * sizeof(*ips);
	hash = jhash(ips, len, nr);
	i = hash & (n_buckets - 1);
	b = bucket(i);
	switch (atomic_read_acquire(&b->state)) {
	case BUCKET_READY:
		if (b->hash != hash || b->nr != nr || memcmp(b->ips, ips, len))
			return SLABRELAY_STACK_COLLISION;
		*id = i;
		return SLABRELAY_STACK_TAKEN;
	case BUCKET_WRITING:	/* another CPU is storing a stack there */
		return SLABRELAY_STACK_COLLISION;
	}
	if (atomic_cmpxchg(&b->state, BUCKET_EMPTY, BUCKET_WRITING) != BUCKET_EMPTY)
		return SLABRELAY_STACK_COLLISION;
	if (atomic_inc_return(&used) > max_entries) {
		atomic_dec(&used);
		atomic_set_release(&b->state, BUCKET_EMPTY);
		return SLABRELAY_STACK_FULL;
	}
	b->hash = hash;
	b->nr = nr;
	memcpy(b->ips, ips, len);
	atomic_set_release(&b->state, BUCKET_READY);
	*id = i;
	return SLABRELAY_STACK_TAKEN;
}

/*
 * debugfs "stacks": one line per stored stack,
 *   <id> <ip> <ip> ...
 * in hex, innermost frame first.
 */
int slabrelay_stacks_show(struct seq_file *m, void *v)
{
	struct slabrelay_stack *b;
	u32 i, f;

	for (i = 0; table && i < n_buckets; i++) {
		b = bucket(i);
		if (atomic_read_acquire(&b->state) != BUCKET_READY)
			continue;
		seq_printf(m, "%x", i);
		for (f = 0; f < b->nr; f++)
			seq_printf(m, " %lx", b->ips[f]);
		seq_putc(m, '\n');
		cond_resched();
	}
	return 0;
}
