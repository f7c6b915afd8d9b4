#!/bin/bash
# make compare-memleak: bcc's memleak and `slabbench top` side by side, in
# the VM (Debian 12's kernel, whose headers bcc needs), on two known leaks
# in the same windows (docs/leaks.md, "Beside memleak"):
#   files: a program holding 900 files (struct file from openat);
#   pipes: a program making 4,000 pipes and keeping 300, the rest freed by
#          RCU callbacks in softirq.
# Both tools watch the whole system: memleak every window, slabbench top
# one per path (relay by call site, ringbuf --stacks by stack). Then each tool alone, and none,
# times 20,000 pipes made and closed (the workload's slowdown).
# The raw outputs go to $OUT (default: a new directory under /tmp), the
# table to stdout (scripts/memleak-table.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != --guest ]; then
	if ! command -v memleak-bpfcc >/dev/null; then
		apt-get update && apt-get install -y bpfcc-tools
	fi
	make build
	OUT=${OUT:-$(mktemp -d /tmp/memleak-compare.XXXXXX)}
	mkdir -p "$OUT"
	bin/slabbench vm --timeout 40m --out "$OUT" --exec "$PWD/scripts/memleak-compare.sh" --guest
	echo "raw outputs: $OUT" >&2
	exec python3 scripts/memleak-table.py "$OUT"
fi

# In the guest: $SLABBENCH_OUT is the host directory we may write.
O=$SLABBENCH_OUT
HOLDER="python3 $PWD/scripts/leakholder.py"
TOP="$PWD/bin/slabbench top --json --top 0 --min-age 500ms"
# Every second, the 40 largest stacks (-o 500 ms by default); unbuffered,
# so that what it printed is kept when it is stopped.
MEMLEAK="env PYTHONUNBUFFERED=1 memleak-bpfcc -T 40 1"
HOLD=8
# 1 MiB per CPU: the default 128 KiB drops under memleak's load in the VM.
RELAY="--path relay --subbufs 64"

memleak_pid=
start_memleak() {
	$MEMLEAK >"$O/memleak-$1.txt" 2>&1 &
	memleak_pid=$!
	for _ in $(seq 300); do
		grep -q Attaching "$O/memleak-$1.txt" && break
		kill -0 "$memleak_pid" || { cat "$O/memleak-$1.txt" >&2; exit 1; }
		sleep 1
	done
	sleep 2
}
# A background job of a script ignores SIGINT: stop it with SIGTERM.
stop_memleak() {
	sleep 2
	kill -TERM "$memleak_pid"
	wait "$memleak_pid" || true
}

# window NAME TOP-ARGS...: slabbench top watches the whole system, as
# memleak does, while the holder ($HOLD_ARGS) holds its leak; the start
# and end of the holder's run are written beside top's output.
window() {
	local name=$1 top
	shift
	$TOP --duration $((HOLD + 40))s "$@" >"$O/$name.json" 2>"$O/$name.err" &
	top=$!
	for _ in $(seq 300); do
		[ -s "$O/$name.json" ] && break
		kill -0 "$top" 2>/dev/null || break
		sleep 1
	done
	date +%s.%N >"$O/$name.start"
	$HOLDER $HOLD_ARGS 2>"$O/$name.holder"
	date +%s.%N >"$O/$name.end"
	wait "$top" || echo "exit status $?" >>"$O/$name.err"
}

# leak NAME HOLDER-ARGS: memleak, and slabbench on each path, on one leak.
leak() {
	echo "leak: $1" >&2
	HOLD_ARGS=$2
	start_memleak "$1"
	window "$1-relay" $RELAY
	window "$1-ringbuf" --path ringbuf --attach rawtp --stacks
	stop_memleak
}

leak files "files 900 $HOLD"
leak pipes "pipes 4000 300 $HOLD"

echo "slowdown: 20000 pipes made and closed, 3 runs each" >&2
for _ in 1 2 3; do $HOLDER pipes 20000 0 0 "$O/slow-none.txt"; done
start_memleak slow
for _ in 1 2 3; do $HOLDER pipes 20000 0 0 "$O/slow-memleak.txt"; done
stop_memleak
for _ in 1 2 3; do
	$TOP $RELAY -- $HOLDER pipes 20000 0 0 "$O/slow-relay.txt" >/dev/null
	$TOP --path ringbuf --attach rawtp --stacks -- $HOLDER pipes 20000 0 0 "$O/slow-ringbuf.txt" >/dev/null
done
uname -r >"$O/kernel"
