# coord — see README.md.
GO       ?= go
BIN      := bin
PKGS     := ./...
# Packages where concurrency lives run under the race detector.
RACE_PKGS := ./coord/... ./client/... ./lease/... ./session/...

.PHONY: build test test-short race-pkgs proto verify lint fuzz bench clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The whole test suite (CI runs exactly this).
test: build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m -race $(RACE_PKGS)
	$(GO) test -count=1 -timeout 15m $(filter-out $(RACE_PKGS),$(shell $(GO) list ./... | sed 's|^coord/|./|;s|^coord$$|.|'))

test-short:
	$(GO) test -count=1 -short ./...

proto:
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" protoc -I proto \
		--go_out=proto/coordpb --go_opt=paths=source_relative \
		--go-grpc_out=proto/coordpb --go-grpc_opt=paths=source_relative \
		proto/coord.proto

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
