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

.PHONY: build test test-short race-pkgs proto verify lint fuzz bench clean

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

fuzz:
	$(GO) test ./coord/tree -run=^$$ -fuzz=FuzzParsePath -fuzztime=30s

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
