/* SPDX-License-Identifier: GPL-2.0 */
/*
 * slabrelay's stack table (stack_depth > 0): see stacks.c.
 */
#ifndef SLABRELAY_STACKS_H
#define SLABRELAY_STACKS_H

#include <linux/types.h>
#include <linux/seq_file.h>

/* Deepest stack_depth: what a BPF stack map allows (PERF_MAX_STACK_DEPTH). */
#define SLABRELAY_MAX_STACK_DEPTH	127

/* What became of one allocation's stack; counted per CPU and kind. */
enum slabrelay_stack_result {
	SLABRELAY_STACK_TAKEN,		/* stored; the record carries its id */
	SLABRELAY_STACK_FULL,		/* stack_entries distinct stacks stored */
	SLABRELAY_STACK_COLLISION,	/* another stack holds its bucket */
	SLABRELAY_STACK_FAILED,		/* the kernel walked no frame */
	SLABRELAY_STACK_RESULTS
};

int slabrelay_stacks_init(unsigned int depth, unsigned int entries);
void slabrelay_stacks_exit(void);
enum slabrelay_stack_result slabrelay_stack_take(u32 *id);
int slabrelay_stacks_show(struct seq_file *m, void *v);

#endif /* SLABRELAY_STACKS_H */
