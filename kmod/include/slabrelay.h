/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * slabrelay.h - layout of the slabrelay module's relay buffers.
 *
 * Each CPU has one relay buffer of n_subbufs sub-buffers of subbuf_size
 * bytes, published as /sys/kernel/debug/slabrelay/cpuN. Sub-buffer i of
 * the mapping starts at i * subbuf_size and holds sub-buffer sequence
 * numbers seq with seq % n_subbufs == i. Every sub-buffer begins with a
 * struct slabrelay_subbuf_hdr, followed by nrec struct slab_event records
 * packed back to back; the bytes after header + nrec records are padding.
 *
 * Write order (the module issues smp_wmb() between the steps):
 *   1. when a sub-buffer starts: the whole header, seq first, commit = 0;
 *   2. each record, then nrec and kind_nrec[kind] += 1;
 *   3. when the next sub-buffer starts: commit of this one.
 * A reader may use a sub-buffer once it sees seq == the number it expects
 * and commit != 0. In overwrite mode the module may start a new sub-buffer
 * in a slot the reader is still reading: seq changes before any record is
 * overwritten, so a record read while seq still holds the expected number
 * is intact.
 *
 * Go mirrors this file in relaytrace (SubbufHeader); a test compares the
 * offsets.
 */
#ifndef SLABRELAY_H
#define SLABRELAY_H

#include "slab_event.h"

#define SLABRELAY_SUBBUF_MAGIC	0x52424c53u	/* "SLBR" little endian */

struct slabrelay_subbuf_hdr {
	__u32 magic;		/* SLABRELAY_SUBBUF_MAGIC */
	__u32 cpu;		/* CPU of the buffer */
	__u64 seq;		/* sub-buffer sequence number on this CPU, from 0 */
	__u32 commit;		/* bytes used, header included; 0 while open */
	__u32 nrec;		/* records in this sub-buffer */
	__u32 kind_nrec[SLAB_EVENT_KIND_MAX];	/* records per kind */
	__u32 prev_padding;	/* padding relay reported for the previous one */
	__u64 ts_ns;		/* ktime_get_ns() when it started */
	__u64 overwritten;	/* sub-buffers overwritten on this CPU before it */
};

#define SLABRELAY_HDR_SIZE	64

/* Parameter limits (module parameters subbuf_size, n_subbufs). */
#define SLABRELAY_MIN_SUBBUF_SIZE	(SLABRELAY_HDR_SIZE + SLAB_EVENT_SIZE)
#define SLABRELAY_MIN_SUBBUFS		2
#define SLABRELAY_MAX_SUBBUFS		65536
/* subbuf_size * n_subbufs: the relay buffer of one CPU */
#define SLABRELAY_MAX_CPU_BYTES		(64u << 20)

#endif /* SLABRELAY_H */
