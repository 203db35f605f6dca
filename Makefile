# Every target works on a fresh machine with Go installed; what a target
# needs beyond Go (golangci-lint, PostgreSQL) it installs itself.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go

# Modules of the repository: the root module and the examples with
# dependencies of their own.
MODULES := . examples/webhook examples/postgres examples/connect examples/jetstream

GOLANGCI_LINT_VERSION := v2.15.0
GOBIN := $(shell $(GO) env GOPATH)/bin
GOLANGCI_LINT := $(GOBIN)/golangci-lint

FUZZTIME ?= 10s
BENCHCOUNT ?= 6

.PHONY: test cc vet test-root test-webhook test-postgres test-connect test-jetstream protoc generate-connect lint fuzz bench bench-postgres bench-jetstream check tools

## test: vet and run every test of every module under the race detector;
## the PostgreSQL and Connect examples run against a throwaway server (or
## DATABASE_URL), the JetStream example against a throwaway server and cluster
test: cc vet test-root test-webhook test-postgres test-connect test-jetstream

vet:
	@for m in $(MODULES); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...); done

test-root:
	$(GO) test -race ./...

test-webhook:
	cd examples/webhook && $(GO) test -race ./...

test-postgres:
	./scripts/with-postgres.sh bash -c 'cd examples/postgres && $(GO) test -race ./...'

# The Connect example's tests regenerate its code to check it is current
# (protoc), and run its server on PostgreSQL too.
test-connect: protoc
	./scripts/with-postgres.sh bash -c 'cd examples/connect && $(GO) test -race ./...'

## generate-connect: regenerate the Connect example's code from its .proto
generate-connect: protoc
	examples/connect/generate.sh

# protoc installs the compiler examples/connect/generate.sh pins: Debian's
# protobuf-compiler, with the well-known types of libprotobuf-dev.
protoc:
	@if ! command -v protoc >/dev/null || [[ ! -f /usr/include/google/protobuf/timestamp.proto ]]; then \
		echo "installing protobuf-compiler and libprotobuf-dev"; \
		sudo=; [[ $$EUID -eq 0 ]] || sudo="sudo -n"; \
		$$sudo apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev || \
			{ $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev; }; \
	fi

# Its tests wait on servers more than on the CPU: run more of them at once.
# The JetStream tests stop and restart PostgreSQL (TestFaultStopPostgres),
# so they always get a throwaway server of their own, DATABASE_URL or not.
test-jetstream:
	env -u DATABASE_URL ./scripts/with-postgres.sh ./scripts/with-nats.sh bash -c 'cd examples/jetstream && $(GO) test -race -parallel 8 ./...'

## lint: gofmt, goimports and golangci-lint over every module
lint: tools
	@for m in $(MODULES); do echo "golangci-lint ($$m)"; (cd $$m && $(GOLANGCI_LINT) run --allow-serial-runners --config $(CURDIR)/.golangci.yml ./...); done

# cc makes sure the race detector can build: it needs cgo and a C compiler.
cc:
	@if [[ "$$($(GO) env CGO_ENABLED)" != 1 ]] || ! command -v "$$($(GO) env CC)" >/dev/null; then \
		echo "go test -race needs a C compiler; installing gcc"; \
		sudo=; [[ $$EUID -eq 0 ]] || sudo="sudo -n"; \
		$$sudo apt-get install -y --no-install-recommends gcc libc6-dev || \
			{ $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends gcc libc6-dev; }; \
	fi

tools:
	@if ! [[ -x $(GOLANGCI_LINT) ]] || ! $(GOLANGCI_LINT) version 2>/dev/null | grep -q "version $(GOLANGCI_LINT_VERSION:v%=%) "; then \
		echo "installing golangci-lint $(GOLANGCI_LINT_VERSION)"; \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION); \
	fi

## fuzz: every fuzz target for FUZZTIME (default 10s) each
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## bench: the package's benchmarks, BENCHCOUNT runs each, for benchstat
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./audit/

## bench-postgres: the PostgreSQL example's benchmarks against a throwaway server
bench-postgres:
	./scripts/with-postgres.sh bash -c 'cd examples/postgres && $(GO) test -run "^$$" -bench . -benchmem -timeout 60m ./...'

## bench-jetstream: the JetStream example's benchmarks against a throwaway server and cluster
bench-jetstream:
	./scripts/with-postgres.sh ./scripts/with-nats.sh bash -c 'cd examples/jetstream && $(GO) test -run "^$$" -bench . -benchtime 20000x -timeout 60m ./...'

## check: everything CI runs
check: test lint fuzz
