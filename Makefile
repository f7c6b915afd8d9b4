# slabbench: `make bench` (main job) and `make test` (the test suite).
# Both install what they need first (scripts/deps.sh: Debian packages and
# Go modules) and must run as root: BPF, perf counting events, and the VM.

GO      ?= go
# The module is built for the kernel the VM boots (kmod/slabrelay/Makefile
# picks it; KVER=<release> builds for another one).
BIN     := $(CURDIR)/bin/slabbench
KMOD    := $(CURDIR)/kmod/slabrelay
VMEXEC  := $(BIN) vm --exec

.PHONY: all deps build bin kmod kmod-sid generate check test test-native test-vm test-sid bench-smoke bench soak compare-memleak clean

all: build

deps:
	@scripts/deps.sh

# The CLI and the module: what `slabbench vm -- capture --path relay` needs.
build: deps bin kmod

# Static, so the same binary runs inside the VM.
bin:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.buildCommit=$$(git describe --always --dirty 2>/dev/null || echo unknown)" -o $(BIN) ./cmd/slabbench

kmod:
	$(MAKE) -C $(KMOD)

# The module against Debian unstable's current kernel, built in a cached
# unstable root, and that kernel unpacked for the VM (scripts/sid-kernel.sh).
SLABBENCH_CACHE ?= /var/cache/slabbench
export SLABBENCH_CACHE
kmod-sid:
	@scripts/sid-kernel.sh

# Regenerates the committed BPF objects (needs clang, llvm, libbpf-dev).
generate:
	$(GO) generate ./...

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi
	$(GO) vet ./...

test: deps check build test-native test-vm test-sid bench-smoke

# One package at a time: two captures at once disturb each other's truth
# counters (see event.Stats).
test-native:
	$(GO) test -count=1 -p 1 ./...

# In the VM: what needs it (the relay module, kprobe, fentry).
test-vm:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec '$(VMEXEC)' -v -skip FunctionProbes ./relaytrace
	# tcg-single: under multi-threaded TCG the 6.1 guest now and then
	# oopses while fentry and kprobe programs attach and detach (a call
	# through a NULL pointer in softirq), as the probes bench level does.
	SLABBENCH_VM_ACCEL=tcg-single CGO_ENABLED=0 $(GO) test -p 1 -count=1 -timeout 20m -exec '$(VMEXEC)' -v -run 'FunctionProbes|EBPFTruthEquality/ringbuf/tracepoint/openclose|ForeignProgramIsNamed' ./capture ./relaytrace
	# tcg-single too: these tests attach and detach programs and load the
	# module within seconds of boot, and under multi-threaded TCG they
	# failed now and then in CI and never alone (docs/limits.md).
	SLABBENCH_VM_ACCEL=tcg-single SLABBENCH_BIN=$(BIN) CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec '$(VMEXEC)' -v -run 'Interrupt|TopHeldFiles/path=relay|TopStacks/relay|CaptureTakesStacks/relay' ./cmd/slabbench

# The relay suite on the current Debian kernel. tcg-single: under
# multi-threaded TCG that kernel oopses as Debian's 6.12 does (docs/limits.md).
test-sid: bin kmod-sid
	. $(SLABBENCH_CACHE)/sid.env && SLABBENCH_VM_KERNEL=$$VMLINUZ SLABBENCH_KMOD=$$KMOD SLABBENCH_VM_ACCEL=tcg-single \
		CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec '$(VMEXEC)' -v ./relaytrace

# One op per benchmark row, natively and in the VM, so the benchmarks
# cannot rot; results go to a scratch directory.
bench-smoke:
	BENCH=smoke BENCH_OUT=$$(mktemp -d) scripts/bench.sh

bench: build
	scripts/bench.sh

# The truth under load (not part of make test): short capture windows on
# every path and attach mode, workload and background load (loopback
# traffic, page-cache pressure, a fork/exit loop), natively and in the VM
# on Debian 12's kernel and unstable's; a table of windows and mismatches
# each. About 25 minutes.
SOAK_WINDOWS    ?= 42
SOAK_VM_WINDOWS ?= 4
soak: build kmod-sid
	$(BIN) soak --windows $(SOAK_WINDOWS)
	$(BIN) vm --timeout 60m -- soak --windows $(SOAK_VM_WINDOWS)
	. $(SLABBENCH_CACHE)/sid.env && SLABBENCH_KMOD=$$KMOD SLABBENCH_VM_ACCEL=tcg-single \
		$(BIN) vm --timeout 60m --kernel $$VMLINUZ -- soak --windows $(SOAK_VM_WINDOWS)

# bcc's memleak and slabbench top on the same known leaks, in the VM (not
# part of make test); the table: docs/leaks.md, "Beside memleak".
compare-memleak:
	@scripts/memleak-compare.sh

clean:
	rm -rf bin
	-$(MAKE) -C $(KMOD) clean
