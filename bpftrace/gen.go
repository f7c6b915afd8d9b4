package bpftrace

//go:generate go tool bpf2go -type slab_kind_stats -type slab_bpf_kind_stats -cc clang -cflags "-O2 -g -Wall -Werror -I../kmod/include -I/usr/include/x86_64-linux-gnu -D__TARGET_ARCH_x86" -target bpfel slab slab.c
