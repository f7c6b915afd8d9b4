# slabbench: `make bench` (main job) and `make test` (the test suite).
# Both install what they need first (scripts/deps.sh: Debian packages and
# Go modules) and must run as root: BPF, perf counting events, and the VM.

GO      ?= go
# The kernel the VM boots and the module is built for: the newest Debian
# kernel installed under /boot (linux-image-amd64).
KVER    ?= $(shell ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -n 1)
BIN     := $(CURDIR)/bin/slabbench
KMOD    := $(CURDIR)/kmod/slabrelay
VMEXEC  := $(BIN) vm --exec

.PHONY: all deps build kmod generate check test test-native test-vm bench-smoke bench clean

all: build

deps:
	@scripts/deps.sh

# Static, so the same binary runs inside the VM.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/slabbench

kmod:
	@test -n "$(KVER)" || { echo "no kernel under /boot: apt-get install linux-image-amd64 linux-headers-amd64" >&2; exit 1; }
	$(MAKE) -C /lib/modules/$(KVER)/build M=$(KMOD) modules

# Regenerates the committed BPF objects (needs clang, llvm, libbpf-dev).
generate:
	$(GO) generate ./...

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out" >&2; exit 1; fi
	$(GO) vet ./...

test: deps check build kmod test-native test-vm bench-smoke

# One package at a time: two captures at once disturb each other's truth
# counters (see event.Stats).
test-native:
	$(GO) test -count=1 -p 1 ./...

# In the VM: what needs it (the relay module, kprobe, fentry).
test-vm:
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec '$(VMEXEC)' -v ./relaytrace
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec '$(VMEXEC)' -v -run 'FunctionProbes|EBPFTruthEquality/ringbuf/tracepoint/openclose' ./capture
	SLABBENCH_BIN=$(BIN) CGO_ENABLED=0 $(GO) test -count=1 -timeout 20m -exec '$(VMEXEC)' -v -run 'Interrupt' ./cmd/slabbench

# One op per benchmark row, natively and in the VM, so the benchmarks
# cannot rot; results go to a scratch directory.
bench-smoke:
	BENCH=smoke BENCH_OUT=$$(mktemp -d) scripts/bench.sh

bench: deps build kmod
	scripts/bench.sh

clean:
	rm -rf bin
	-$(MAKE) -C /lib/modules/$(KVER)/build M=$(KMOD) clean
