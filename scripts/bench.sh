#!/usr/bin/env bash
# The main job: captures on every path this machine can run natively, and
# the relay module (plus ringbuf for comparison) inside the VM, each at
# two buffer sizes, with the truth counter on. Prints one summary line per
# capture and writes the JSON of each under results/captures/.
set -euo pipefail
bin=${1:?usage: bench.sh path/to/slabbench}
out=results/captures
mkdir -p "$out"
workload=${BENCH_WORKLOAD:-openclose}
ops=${BENCH_OPS:-200000}
vm_ops=${BENCH_VM_OPS:-20000}
env=native
kernel=$(uname -r)

summary() {
	# path attach subbuf n json-file
	python3 - "$@" <<'PY'
import json, sys
path, attach, subbuf, n, f = sys.argv[1:]
r = json.load(open(f))
secs = r["duration_ns"] / 1e9
tot = r["captured"] + r["lost"]
print(f'{path:8} {attach:10} {subbuf:>7} x{n:<3} buffer {r["buffer_bytes"]:>9} B  '
      f'captured {r["captured"]:>9} lost {r["lost"]:>8} ({100*r["lost"]/max(tot,1):6.2f}%)  truth {r["truth"]:>9}  '
      f'{r["captured"]/secs:>10.0f} ev/s  verified={r["verified"]}')
PY
}

run() {
	local where=$1 path=$2 attach=$3 subbuf=$4 n=$5 ops=$6
	local name="$where-$path-$attach-$subbuf-x$n"
	local args=(capture --path "$path" --subbuf-size "$subbuf" --subbufs "$n" --workload "$workload" --ops "$ops" --threads 2 --json)
	[[ $path != relay ]] && args+=(--attach "$attach")
	if [[ $where == vm ]]; then
		"$bin" vm --out "$out" -- "${args[@]}" > "$out/$name.json"
	else
		"$bin" "${args[@]}" > "$out/$name.json"
	fi
	printf '%-6s ' "$where"
	summary "$path" "$attach" "$subbuf" "$n" "$out/$name.json"
}

echo "kernel: $kernel"
echo "environment: $env (VM rows: Debian kernel under qemu; compare VM rows only with each other)"
echo "workload: $workload, 2 threads, $ops ops native / $vm_ops ops in the VM"
for path in ringbuf perfbuf; do
	for attach in tracepoint rawtp; do
		for geometry in "4KiB 2" "64KiB 8"; do
			run native "$path" "$attach" ${geometry} "$ops"
		done
	done
done
for path in relay ringbuf; do
	for geometry in "4KiB 2" "64KiB 8"; do
		run vm "$path" tracepoint ${geometry} "$vm_ops"
	done
done
