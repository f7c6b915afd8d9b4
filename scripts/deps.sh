#!/usr/bin/env bash
# Installs what slabbench's build, tests and benchmarks need on a fresh
# Debian 12 machine: Debian packages (only those missing) and Go modules.
# Needs root for apt-get.
set -euo pipefail

packages=(
	# the VM that runs the relay module, kprobes and fentry
	qemu-system-x86 linux-image-amd64 linux-headers-amd64 busybox-static cpio
	# building the kernel module against those headers
	make gcc
	# driving `slabbench top` in a terminal, as a person would (its test)
	tmux
	# regenerating the BPF objects (go generate) and perf-record references
	clang llvm libbpf-dev linux-perf
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: missing Debian packages ${missing[*]}: run as root (sudo make ...)" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go mod download
