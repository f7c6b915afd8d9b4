//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * proctree.c - follows a program's process tree for slabbench: every
 * process forked by a process already in the tree, or by the one thread
 * that starts the tree's root, joins it.
 *
 * A raw tracepoint: it does not take the counter that tracepoint and
 * kprobe programs share (bpf_prog_active), so a slab event in an interrupt
 * while it runs is not skipped by the capture's tracepoint programs.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual BSD/GPL";

struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

/* The thread (its pid) that forks the tree's root; 0: none now. */
volatile __u32 spawner_tid;
/* Processes that joined the tree, and those that found no room in it. */
volatile __u64 joined;
volatile __u64 tree_full;

/* The tree: its processes by tgid. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} tree SEC(".maps");

SEC("raw_tp/sched_process_fork")
int BPF_PROG(follow_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_tid = BPF_CORE_READ(parent, pid);
	__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
	__u32 child_tgid = BPF_CORE_READ(child, tgid);
	__u8 in = 1;

	if (child_tgid == parent_tgid)
		return 0; /* a thread: its process is in the tree or not already */
	if (parent_tid != spawner_tid && !bpf_map_lookup_elem(&tree, &parent_tgid))
		return 0;
	if (bpf_map_update_elem(&tree, &child_tgid, &in, BPF_ANY))
		__sync_fetch_and_add(&tree_full, 1);
	else
		__sync_fetch_and_add(&joined, 1);
	return 0;
}
