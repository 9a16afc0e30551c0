# coord — see README.md.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Packages where concurrency lives run under the race detector; the rest
# (pure simulators, end-to-end process tests) run without it.
RACE_RE  := ^coord/(coord|client|session|lease|fuse)(/|$$)
NORACE_RE := ^coord/lease/sim(/|$$)
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

bench:
	$(GO) test ./coord/ -run=^$$ -bench=. -benchtime=3s

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
	$(GO) run ./cmd/coordfault --family A,E,F,G --count 0 --modes par,plain
