// SPDX-License-Identifier: GPL-2.0
/*
 * slabrelay: the relay channel: its callbacks, and the reader's consumed
 * counts and flushes. The module's overview: main.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/relay.h>
#include <linux/smp.h>
#include <linux/cpu.h>
#include <linux/timekeeping.h>
#include <linux/version.h>

#include "internal.h"

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
		if (!slabrelay_overwrite)
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

	/*
	 * A reader waiting for this sub-buffer takes its seq, then a commit
	 * other than 0, as finished: commit must read 0 before the new seq
	 * is visible, or the reader takes the slot's previous commit and
	 * records for this sub-buffer's.
	 */
	hdr->commit = 0;
	smp_wmb();	/* commit 0 before the new seq */
	hdr->seq = buf->subbufs_produced;
	smp_wmb();	/* seq before anything else of the new sub-buffer */
	if (slabrelay_start_delay_us)	/* test: widen the window a reader meets */
		udelay(slabrelay_start_delay_us);
	hdr->magic = SLABRELAY_SUBBUF_MAGIC;
	hdr->cpu = buf->cpu;
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

const struct rchan_callbacks slabrelay_relay_cb = {
	.subbuf_start = slabrelay_subbuf_start,
	.create_buf_file = slabrelay_create_buf_file,
	.remove_buf_file = slabrelay_remove_buf_file,
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
int slabrelay_consume_cpu(unsigned int cpu, struct slabrelay_consume *c)
{
	struct rchan_buf *buf;
	int err;

	if (slabrelay_overwrite) {
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

void slabrelay_flush(void)
{
	int cpu;

	cpus_read_lock();
	for_each_online_cpu(cpu)
		smp_call_function_single(cpu, slabrelay_flush_on_cpu, NULL, 1);
	cpus_read_unlock();
}
