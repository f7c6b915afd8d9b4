#!/usr/bin/env bash
# The main job (make bench): the benchmark matrix natively (eBPF,
# perf record, consumer benchmarks) and in the VM (everything, the relay
# module included), benchfmt results under results/, and benchstat
# comparison tables beside them.
#
# BENCH=full (default) | quick (minutes) | smoke (one op per row, for CI)
# | probes (the VM only: tracepoint, rawtp, kprobe and fentry rows side by
# side, under tcg-single, about 30 minutes; its own results file);
# BENCH_NATIVE=0 or BENCH_VM=0 skips that half (the report still reads
# every results file in the output directory).
# -count 6: benchstat needs 6 samples for a 95% confidence interval.
# Rows run for a minimum time (-benchtime) and must write 20 times their
# buffer (bench/plan: SteadyFactor); rows with large buffers (the plan's
# long group) get a longer minimum time, and so do the soak rows (open
# loops at buffers that hold the host's bursts of slab events whole), and
# so do the sizing model's held-out rows.
set -euo pipefail
cd "$(dirname "$0")/.."
level=${BENCH:-full}
case $level in
# vm_long: the VM's long rows (128 KiB per CPU closed, the open loops'
# largest sizes) are written 20 times in 1.2-1.5 s there. vm_heldout:
# the VM's held-out rows in 3 s runs: the guest has no bursts to meet
# (results/README.md), and make bench has a budget.
full) count=6 short=1s long=3s vm_long=2s soak=6s heldout=5s vm_heldout=3s vm_level=vm consumer_ops=200000 ;;
quick) count=6 short=500ms long=500ms vm_level=vm-quick consumer_ops=100000 ;;
smoke) count=1 short=1x long=1x vm_level=smoke consumer_ops=1 ;;
# Multi-threaded TCG oopsed the 6.1 guest twice with these rows
# (docs/vm.md); the capture rows only (no parts or consumer rows).
probes) count=6 short=1s long=1s vm_level=probes consumer_ops=0 BENCH_NATIVE=0
	export SLABBENCH_VM_ACCEL=tcg-single ;;
*) echo "BENCH=$level: use full, quick, smoke or probes" >&2; exit 2 ;;
esac
count=${BENCH_COUNT:-$count}
out=${BENCH_OUT:-results}
mkdir -p "$out" bin
CGO_ENABLED=0 go build -o bin/slabbench ./cmd/slabbench
CGO_ENABLED=0 go test -c -o bin/bench.test ./bench
# Every results file names the source it was measured with.
SLABBENCH_COMMIT=$(git describe --always --dirty 2>/dev/null || echo "unknown (not a git checkout)")
export SLABBENCH_COMMIT
# Progress goes to stderr, results to stdout (the files).
export SLABBENCH_PROGRESS=1

# A row skipped in a later ramp-up round (not steady, below target) still
# gets a result line from the testing package: 0 iterations, NaN ns/op,
# which benchstat cannot summarize (it grows without bound). Drop those
# lines; the skip reason stays in the file.
drop_skipped() { awk '!($1 ~ /^Benchmark/ && $2 == "0" && $3 == "NaN")'; }

# A row that lost a run to any rule (a run skipped below target or off
# schedule, or failed an accounting check) is run again whole, up to
# twice; one still short after that is taken out of the file (its result
# lines; its skip and failure lines stay, with a line saying so), never
# published with fewer runs than the others.
short_rows() { # results-file count: names with 1..count-1 result lines
	awk -v want="$2" '$1 ~ /^Benchmark/ && $2 ~ /^[0-9]+$/ && $2 > 0 {n[$1]++}
		END {for (k in n) if (n[k] < want) print k}' "$1" | sort
}

# The -test.bench pattern of one row: each /-part anchored and escaped,
# the -GOMAXPROCS suffix dropped.
row_pattern() { # name
	local name=${1%-[0-9]*} part out=""
	local IFS=/
	for part in $name; do
		part=$(printf '%s' "$part" | sed 's/[][\\.^$*+?(){}|]/\\&/g')
		out+="${out:+/}^${part}\$"
	done
	printf '%s' "$out"
}

without_results_of() { # name file: the file without that row's result lines
	awk -v name="$1" '!($1 == name && $2 ~ /^[0-9]+$/)' "$2"
}

# Later rounds of an interleaved group print the same configuration
# again: keep their rows, skip reasons and failures only.
without_config() { awk '!/^[a-z][A-Za-z0-9_.-]*: / && !/^Unit / && !/^(PASS|ok)/'; }

# bench_runs count benchtime runner... -test.bench PATTERN: one invocation
# of the benchmark binary, the lines of rows skipped in a later round
# dropped.
bench_runs() {
	local n=$1 benchtime=$2
	shift 2
	"$@" -test.run '^$' -test.v -test.timeout 0 -test.benchtime "$benchtime" -test.count "$n" | drop_skipped
}

# run_group benchtime runner... -test.bench PATTERN: the benchmark binary's
# rows, -count runs each, its short rows re-run, the result on stdout.
# INTERLEAVE=1 runs the whole group -count times with -count 1 instead,
# so that rows compared by difference or ratio (the probe's parts, the
# readers against their floor) meet the machine's drift alike, rather
# than one row's runs all minutes before another's.
run_group() {
	local benchtime=$1
	shift
	local tmp rerun name attempt missing round start=$SECONDS
	tmp=$(mktemp)
	rerun=$(mktemp)
	if [[ ${INTERLEAVE:-0} == 1 ]]; then
		BENCH_ROUNDS=$count bench_runs 1 "$benchtime" "$@" > "$tmp"
		for ((round = 2; round <= count; round++)); do
			bench_runs 1 "$benchtime" "$@" | without_config >> "$tmp"
		done
	else
		bench_runs "$count" "$benchtime" "$@" > "$tmp"
	fi
	for attempt in 1 2 3; do
		mapfile -t missing < <(short_rows "$tmp" "$count")
		((${#missing[@]})) || break
		for name in "${missing[@]}"; do
			if ((attempt == 3)); then
				echo "bench: $name: fewer than $count runs in 3 attempts; its results are left out of the file" >&2
				without_results_of "$name" "$tmp" > "$rerun" && mv "$rerun" "$tmp"
				printf -- '--- SKIP: %s\n    left out by scripts/bench.sh: fewer than %d runs in 3 attempts\n' "${name%-[0-9]*}" "$count" >> "$tmp"
				continue
			fi
			echo "bench: $name: fewer than $count runs; running it again whole (attempt $((attempt + 1)))" >&2
			without_results_of "$name" "$tmp" > "$rerun"
			local base=("$@")
			base[${#base[@]}-1]=$(row_pattern "$name")
			bench_runs "$count" "$benchtime" "${base[@]}" >> "$rerun"
			mv "$rerun" "$tmp"
		done
	done
	cat "$tmp"
	rm -f "$tmp" "$rerun"
	local what=${*: -1}
	what=${what#^}
	timing "${BENCH_GROUP:+$BENCH_GROUP rows of }${what%$}" "$start"
}

# timing label start: one line of the time a group took, on stderr and in
# the run's timing summary (printed at the end), so that the matrix can be
# sized to make bench's budget.
timings=()
timing() {
	local line
	line=$(printf '%s %s: %d min %02d s' "${level_now:-}" "$1" $(((SECONDS - $2) / 60)) $(((SECONDS - $2) % 60)))
	echo "bench: time: $line" >&2
	timings+=("$line")
}

run_matrix() { # level runner...
	local level=$1
	shift
	level_now=$level
	if [[ $level == probes ]]; then
		BENCH=$level run_group "$short" "$@" bin/bench.test -test.bench '^BenchmarkCapture$'
		return
	fi
	BENCH=$level BENCH_GROUP=short run_group "$short" "$@" bin/bench.test -test.bench '^BenchmarkCapture$'
	# The probe's parts (BenchmarkProbeParts): one producer at full and
	# vm; smoke, so that they cannot rot.
	if [[ $level == smoke || $level == full || $level == vm ]]; then
		BENCH=$level INTERLEAVE=1 run_group "$short" "$@" bin/bench.test -test.bench '^BenchmarkProbeParts$'
	fi
	BENCH=$level BENCH_GROUP=long run_group "$long" "$@" bin/bench.test -test.bench '^BenchmarkCapture$'
	# Only the full level has soak rows (bench/plan), natively.
	if [[ $level == full ]]; then
		BENCH=$level BENCH_GROUP=soak run_group "$soak" "$@" bin/bench.test -test.bench '^BenchmarkCapture$'
	fi
	# The sizing model's held-out rows (bench/plan: HeldOut): 5 s runs
	# natively, so that 6 of them meet the host's bursts several times.
	if [[ $level == full || $level == vm ]]; then
		BENCH=$level BENCH_GROUP=heldout run_group "$heldout" "$@" bin/bench.test -test.bench '^BenchmarkCapture$'
	fi
	BENCH=$level INTERLEAVE=1 run_group "${consumer_ops}x" "$@" bin/bench.test -test.bench '^BenchmarkConsumer$'
}

# One benchstat table; a failure is written into the tables file and fails
# the run at the end (after the other tables and the report). benchstat
# exits 0 after printing an error, so anything on its stderr is a failure.
failed=()
benchstat_err=$(mktemp)
trap 'rm -f "$benchstat_err"' EXIT
table() { # results-file title benchstat-args...
	local f=$1 title=$2
	shift 2
	echo "## $title"
	if ! go tool benchstat "$@" "$f" 2>"$benchstat_err" || [[ -s $benchstat_err ]]; then
		cat "$benchstat_err"
		echo "benchstat FAILED for this table"
		failed+=("$f: benchstat failed for $title")
	fi
	echo
}

# A row run that failed (an accounting check) prints --- FAIL and reports
# nothing, while the benchmark binary may still end with PASS: count them
# into the failures, so that make bench exits non-zero and says so.
check_failed_rows() { # results-file
	local n
	n=$(grep -c '^--- FAIL' "$1" || true)
	if ((n > 0)); then
		failed+=("$1: $n row runs failed (--- FAIL lines in the file; they report nothing)")
	fi
}

tables() { # results-file
	local f=$1 t=${1%.txt}.benchstat
	{
		echo "# benchstat tables for $f (go tool benchstat; rows with ± show the 95% confidence interval over -count runs)"
		echo
		table "$f" "Paths at equal memory: closed loop, two producers, shared CPUs, tracepoint attachment, ring and perf buffers woken for every record" \
			-col /path -row /subbuf,/n -filter '.name:Capture /rate:max /producers:2 -/attach:rawtp -/attach:kprobe -/attach:fentry -/wakeup:batched'
		table "$f" "Placement: one or two producers, the consumer sharing their CPUs or pinned to its own (closed loop, tracepoint)" \
			-col /producers,/consumer -row /path,/wakeup,/subbuf,/n -filter '.name:Capture /rate:max -/attach:rawtp -/attach:kprobe -/attach:fentry'
		table "$f" "Loss versus rate and memory (open loops, tracepoint)" \
			-col /path,/wakeup -row /workload,/rate,/producers,/consumer,/subbuf,/n -filter '-/rate:max -/attach:rawtp -/attach:kprobe -/attach:fentry'
		table "$f" "Reader wakeup policy (ring and perf buffers): every record vs once a sub-buffer of bytes is pending" \
			-col /wakeup -row /path,/attach,/subbuf,/n -filter '.name:Capture (/path:ringbuf OR /path:perfbuf) /rate:max /producers:2'
		table "$f" "Attach mode (eBPF rows)" \
			-col /attach -row /path,/wakeup,/subbuf,/n -filter '(/path:ringbuf OR /path:perfbuf OR /path:empty-bpf) /rate:max /producers:2'
		if grep -q '^bench-level: probes$' "$f"; then
			table "$f" "Attach mode in an open loop (eBPF rows)" \
				-col /attach -row /rate,/path,/subbuf,/n -filter '(/path:ringbuf OR /path:perfbuf) -/rate:max'
		fi
		table "$f" "Truth stamping cost: the accounted probe with the in-band truth stamp on and off (BenchmarkProbeParts)" \
			-col /truth -row /path,/attach,/producers -filter '.name:ProbeParts /part:accounted'
		table "$f" "Consumers: one op is one record read from a full buffer" \
			-col /reader -filter '.name:Consumer'
	} > "$t"
	echo "wrote $t"
}

# `scripts/bench.sh tables`: the benchstat tables and the report again,
# from the results files already in $out (after a benchstat or report
# change), without measuring.
if [[ ${1:-} == tables ]]; then
	for f in "$out"/*.txt; do
		tables "$f"
	done
	BENCH_NATIVE=0 BENCH_VM=0
fi

if [[ ${BENCH_NATIVE:-1} == 1 ]]; then
	native=$out/native-$(uname -r).txt
	echo "== native matrix (BENCH=$level, rows of at least $short ($long for the long group), -count $count) -> $native" >&2
	run_matrix "$level" env > "$native"
	check_failed_rows "$native"
	tables "$native"
fi

if [[ ${BENCH_VM:-1} == 1 ]]; then
	# The VM levels plan relay rows: without the module every one of
	# them would be skipped, and the file would have no relay at all.
	if [[ $vm_level != probes && -z ${SLABBENCH_KMOD:-} && ! -f kmod/slabrelay/slabrelay.ko ]]; then
		echo "bench: kmod/slabrelay/slabrelay.ko is missing, and the VM matrix has relay rows: build it first (make kmod, or make bench), or set SLABBENCH_KMOD" >&2
		exit 2
	fi
	vmtmp=$out/.vm-run.txt
	long=${vm_long:-$long} heldout=${vm_heldout:-${heldout:-}}
	echo "== VM matrix (BENCH=$vm_level, rows of at least $short ($long for the long group), -count $count)" >&2
	run_matrix "$vm_level" bin/slabbench vm --timeout 120m --exec > "$vmtmp"
	env_name=$(sed -n 's/^environment: //p' "$vmtmp" | head -n 1)
	kernel=$(sed -n 's/^kernel: //p' "$vmtmp" | head -n 1)
	vmfile=$out/${env_name:-vm}-${kernel:-unknown}.txt
	mv "$vmtmp" "$vmfile"
	echo "wrote $vmfile" >&2
	check_failed_rows "$vmfile"
	tables "$vmfile"
fi

# The sizing report over every results file in $out (a BENCH_VM=0 run
# keeps the last VM results), with loss plots.
files=("$out"/*.txt)
bin/slabbench report -plots -o "$out/REPORT.md" "${files[@]}"

if ((${#timings[@]})); then
	printf 'bench: time: %s\n' "${timings[@]}" "whole run: $((SECONDS / 60)) min $((SECONDS % 60)) s" >&2
fi

if ((${#failed[@]})); then
	printf 'bench: %s\n' "${failed[@]}" >&2
	exit 1
fi
