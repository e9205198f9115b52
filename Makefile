# swiftkata: common entry points. `make test` is the README's test command and what CI runs.
SHELL := /bin/bash
SWIFT ?= swift
FUZZ_SCRATCH ?= .build-fuzz
FUZZ_FLAGS := -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld
FUZZ_SECONDS ?= 60
FUZZ_CORPUS ?= $(FUZZ_SCRATCH)/corpus

.PHONY: run install uninstall build test unit-test cri-test guest fuzz-smoke fuzz bench bench-ttrpc bench-boot bench-hypervisor go-peer generate lint format soak
GUEST_ENV = SWIFTKATA_KERNEL=$$(tail -n1 .build/guest-kernel.path) SWIFTKATA_IMAGE=$$(tail -n1 .build/guest-image.path) \
    SWIFTKATA_HOSTILE_IMAGE=$$(tail -n1 .build/hostile-image.path)

## The README's first command: install everything, then run a container in a VM.
run: install
	packaging/run-demo.sh

## Packages, release binaries, guest kernel + image, configuration, containerd registration, daemons.
install:
	packaging/install.sh

## Removes exactly what install added (packages too with UNINSTALL_FLAGS=--purge-packages).
uninstall:
	packaging/uninstall.sh $(UNINSTALL_FLAGS)

build:
	$(SWIFT) build

go-peer:
	Tests/Interop/build-peer.sh .build/interop

## Guest kernel (cached by its inputs under /var/cache/swiftkata) and guest image (initrd with the agent);
## also the hostile-guest tests' image (a test-only agent that attacks the host; never installed).
guest:
	@mkdir -p .build
	guest-kernel-config/build.sh > .build/guest-kernel.path
	guest-agent/build-image.sh > .build/guest-image.path
	SWIFTKATA_AGENT_PRODUCT=swiftkata-hostile-agent guest-agent/build-image.sh > .build/hostile-image.path

## The whole suite: C spawner tests (root, on the host), unit, interop and guest tests (real kernel +
## agent under QEMU), then a short libFuzzer run.
test: lint go-peer guest
	$(MAKE) -C guest-agent/tests-c test
	$(SWIFT) build
	$(SWIFT) build --build-tests
	$(GUEST_ENV) $(SWIFT) test
	$(SWIFT) run ttrpc-fuzz Tests/Fuzz/TTRPCFuzz/corpus
	$(MAKE) fuzz-smoke
	$(MAKE) cri-test

## Habits, checked first: the Swift sources match .swift-format, and the README's module graph
## matches Package.swift with every dependency pointing down.
lint:
	scripts/format.sh --check
	scripts/check-module-graph.py

## Formats the Swift sources with .swift-format (generated code excluded).
format:
	scripts/format.sh

unit-test:
	$(SWIFT) test --skip GuestTests

## Kubernetes path: a private containerd with the CRI plugin drives pods through the CRI gRPC API
## (Tests/CRI). CRI_RUNTIME_HANDLER=runc checks the suite itself; default kata-runtime (swiftkata).
cri-test: guest
	$(SWIFT) build --product containerd-shim-swiftkata-v2
	$(SWIFT) build --product swiftkata-vm
	$(SWIFT) build --product swiftkata-anchor
	$(SWIFT) build --product swiftkata-ctl
	$(SWIFT) build --product swiftkata-check
	$(GUEST_ENV) /usr/bin/python3 -B -m unittest discover -v -s Tests/CRI

## Soak (Tests/CRI/test_soak.py; CI runs a short form with the CRI suite): 500 sequential
## `ctr run --rm`, 20 pods at once through CRI, 20 rounds of exec/stdin/TTY/kill while pods start;
## the host's census must be the same before and after each.
soak: guest
	$(SWIFT) build --product containerd-shim-swiftkata-v2
	$(SWIFT) build --product swiftkata-vm
	$(SWIFT) build --product swiftkata-anchor
	$(GUEST_ENV) SOAK_SEQUENTIAL=500 SOAK_CONCURRENT=20 SOAK_MIX=20 /usr/bin/python3 -B -m unittest discover -v -s Tests/CRI -p test_soak.py

## Short libFuzzer run of the ttrpc frame decoder + request dispatch (CI).
fuzz-smoke:
	$(SWIFT) build --scratch-path $(FUZZ_SCRATCH) --product ttrpc-fuzz $(FUZZ_FLAGS)
	mkdir -p $(FUZZ_CORPUS) && cp -n Tests/Fuzz/TTRPCFuzz/corpus/* $(FUZZ_CORPUS)/
	$(FUZZ_SCRATCH)/debug/ttrpc-fuzz $(FUZZ_CORPUS) -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 \
	    -artifact_prefix=$(FUZZ_SCRATCH)/ 2>&1 | grep -E '^(#[0-9]+ +DONE|Done|==|SUMMARY|INFO: seed)' || true
	@test -z "$$(ls $(FUZZ_SCRATCH)/crash-* $(FUZZ_SCRATCH)/timeout-* $(FUZZ_SCRATCH)/leak-* 2>/dev/null)" \
	    || { echo "fuzzer found a failing input:"; ls $(FUZZ_SCRATCH)/crash-* $(FUZZ_SCRATCH)/timeout-* $(FUZZ_SCRATCH)/leak-* 2>/dev/null; exit 1; }

## Long fuzz run: make fuzz FUZZ_SECONDS=600
fuzz: fuzz-smoke

## The container path: ctr run/exec/stdout with runc vs swiftkata vs a bare QEMU boot; memory per pod.
bench: guest
	scripts/build-host-release.sh containerd-shim-swiftkata-v2 swiftkata-vm swiftkata-anchor
	Benchmarks/shim-bench.py "$$(dirname "$$(tail -n1 .build/guest-kernel.path)")/vmlinux" "$$(tail -n1 .build/guest-image.path)" --runs 7

## Swift ttrpc vs containerd's Go ttrpc, side by side.
bench-ttrpc: go-peer
	$(SWIFT) build -c release --product ttrpc-bench
	.build/release/ttrpc-bench --go-peer .build/interop/ttrpc-peer

## Boot to agent-ready vs a bare busybox boot of the same kernel, side by side.
bench-boot: guest
	guest-agent/bench-boot.py "$$(dirname "$$(tail -n1 .build/guest-kernel.path)")/vmlinux" "$$(tail -n1 .build/guest-image.path)" --runs 9

## Domain-create -> agent ready through libvirtd vs a bare QEMU boot (needs libvirtd running).
bench-hypervisor: guest
	$(SWIFT) build -c release --product hypervisor-bench
	.build/release/hypervisor-bench "$$(dirname "$$(tail -n1 .build/guest-kernel.path)")/vmlinux" "$$(tail -n1 .build/guest-image.path)" 7

## Regenerates Sources/*/Generated (needs protoc; builds protoc-gen-swift once, minutes). Never in CI.
generate:
	scripts/generate-protos.sh
