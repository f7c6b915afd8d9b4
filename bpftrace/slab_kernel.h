/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The few kernel types the slab BPF programs touch, instead of a full
 * vmlinux.h. preserve_access_index makes every field access a CO-RE
 * relocation, so one object loads on kernels whose layouts differ (Debian's
 * 6.1 has no "name" in kmem_cache_alloc's record; 6.18 has).
 */
#ifndef SLAB_KERNEL_H
#define SLAB_KERNEL_H

typedef __u32 gfp_t;

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmalloc {
	struct trace_entry ent;
	unsigned long call_site;
	const void *ptr;
	unsigned long bytes_req;
	unsigned long bytes_alloc;
	unsigned long gfp_flags;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_alloc {
	struct trace_entry ent;
	unsigned long call_site;
	const void *ptr;
	unsigned long bytes_req;
	unsigned long bytes_alloc;
	unsigned long gfp_flags;
} __attribute__((preserve_access_index));

struct trace_event_raw_kfree {
	struct trace_entry ent;
	unsigned long call_site;
	const void *ptr;
} __attribute__((preserve_access_index));

struct trace_event_raw_kmem_cache_free {
	struct trace_entry ent;
	unsigned long call_site;
	const void *ptr;
} __attribute__((preserve_access_index));

struct kmem_cache {
	unsigned int object_size;
	unsigned int size;
} __attribute__((preserve_access_index));

#endif /* SLAB_KERNEL_H */
