# coord — see README.md.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Packages where concurrency lives run under the race detector; the rest
# (pure simulators, end-to-end process tests) run without it.
RACE_RE  := ^coord/(coord|client|session|lease|fuse)(/|$$)
NORACE_RE := ^coord/(lease/sim|coord/tree/internal/radix)(/|$$)
RACE_PKGS = $(shell $(GO) list ./... | grep -E '$(RACE_RE)' | grep -vE '$(NORACE_RE)')
PLAIN_PKGS = $(shell $(GO) list ./... | grep -vE '$(RACE_RE)'; $(GO) list ./... | grep -E '$(NORACE_RE)')

.PHONY: build test test-short race-pkgs proto verify lint fuzz nemesis nemesis-locks overload bench clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The whole test suite (CI runs exactly this).
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m -race $(RACE_PKGS)
	$(GO) test -count=1 -timeout 15m $(PLAIN_PKGS)

test-short:
	$(GO) test -count=1 -short ./...

# One protoc run per .proto: proto/NAME.proto -> proto/NAMEpb/.
PROTOS := $(wildcard proto/*.proto)
proto:
	@for f in $(PROTOS); do n=$$(basename $$f .proto); mkdir -p proto/$${n}pb; \
	  echo "protoc $$f"; \
	  PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc -I proto \
		--go_out=proto/$${n}pb --go_opt=paths=source_relative \
		--go-grpc_out=proto/$${n}pb --go-grpc_opt=paths=source_relative $$f || exit 1; done

verify: proto
	gofmt -l . | grep -v '\.pb\.go$$' && exit 1 || true
	$(GO) mod tidy
	git diff --exit-code -- proto go.mod go.sum

lint:
	gofmt -l . | grep -v '\.pb\.go$$' ; $(GO) vet ./...

# Every fuzz target for FUZZTIME each (the seed corpora also run, as plain
# tests, in `make test`).
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./coord/tree:FuzzValidatePath ./coord/tree:FuzzApply ./coord/tree:FuzzReadSnapshot \
	./cmd/coordctl:FuzzParseTxnLine ./coord/replica:FuzzDecodeCommand \
	./coord/replica:FuzzCommandRoundTrip ./coord/replica:FuzzFSMRestore \
	./coord:FuzzCoordRequests ./coord:FuzzPeerRequests ./coord:FuzzParseCluster \
	./lease/internal/core:FuzzAcceptor ./coord/par:FuzzDecodeSidecar
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test $$pkg -run='^$$' -fuzz="^$$fn$$" -fuzztime=$(FUZZTIME) || exit 1; done

# Randomized fault schedules against real coordd processes (docs/RELIABILITY.md).
NEMESIS_SCHEDULES ?= 300
NEMESIS_SEED ?= 1
nemesis: build
	$(GO) run ./cmd/coordnemesis --coordd $(BIN)/coordd --seed $(NEMESIS_SEED) --schedules $(NEMESIS_SCHEDULES)

# The overload proof (docs/RELIABILITY.md, Overload): saturation by an
# open-loop ramp, then 2x for 30 s and 0.5x after, live sessions in a
# child process, protected and with --no-admission (must fail).
OVERLOAD_SEED ?= 1
overload: build
	$(BIN)/coordnemesis --coordd $(BIN)/coordd --overload --seed $(OVERLOAD_SEED) --timeline

# Fenced lock: NEMESIS_LOCK_SECTIONS critical sections under holder pauses,
# 0 lost updates; then unfenced must lose some.
NEMESIS_LOCK_SECTIONS ?= 10000
nemesis-locks:
	NEMESIS_LOCK_SECTIONS=$(NEMESIS_LOCK_SECTIONS) $(GO) test ./nemesis -run '^TestFencedLockSections$$' -count=1 -timeout 60m -v

# A short benchmark (under two minutes): the disk's fsync rate, then the
# anchor workloads on a 3-node loopback cluster coordbench starts itself.
# docs/BENCHMARKS.md has the long runs and how to read them.
BENCH_DURATION ?= 3s
bench: build
	$(BIN)/coordbench fsync --duration 2s
	$(BIN)/coordbench --start 3 --duration $(BENCH_DURATION) --warmup 500ms --clients 1 --workload set,watch
	$(BIN)/coordbench --start 3 --duration $(BENCH_DURATION) --warmup 500ms --clients 16 --workload set,get,get-local,session
	$(BIN)/coordbench --start 3 --duration $(BENCH_DURATION) --warmup 500ms --clients 128 --workload set,get,get-local
	$(BIN)/coordbench --start 3 --duration $(BENCH_DURATION) --warmup 500ms --clients 8 --workload lock

clean:
	rm -rf $(BIN)

# The PAR fault-injection matrix (docs/PAR.md): families A (every per-entry
# corruption pattern over 4 committed entries × 3 nodes, 4096 cases) and E
# (every term/vote copy pattern, 64 cases) and F (file-system faults:
# deleted, truncated, extended files, 216 cases) and G (crash states, 64
# cases), with PAR and with plain
# raft-boltdb. CI runs a fixed-seed 150-case sample in coord/par/parfault.
.PHONY: par-matrix
par-matrix:
	$(GO) run ./cmd/coordfault --family A,B,C,D,E,F,G,H,I,J,K --count 0 --modes par,plain
