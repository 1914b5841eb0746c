GO ?= go
# Extra flags for go test, e.g. make test TESTFLAGS='-run Integration -count=1'.
TESTFLAGS ?=

.PHONY: build test test-deps vet lint demo

# The tour: archive, back up under load, lose data, restore to a moment, compare.
demo:
	bash scripts/demo.sh

# A static binary (no cgo): it runs on any Linux of its architecture, and it
# starts about a millisecond sooner than a dynamically linked one, which
# counts when PostgreSQL starts it once per WAL segment.
build:
	CGO_ENABLED=0 $(GO) build -o bin/tusk .

# Integration tests fail instead of skipping when PostgreSQL or MinIO is missing.
test: export TUSK_TEST_REQUIRE = 1
test: test-deps vet
	$(GO) test -race -timeout 30m $(TESTFLAGS) ./...

test-deps:
	bash scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

lint: vet
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	@if command -v golangci-lint >/dev/null; then golangci-lint run ./...; \
	else echo "golangci-lint not installed; ran go vet and gofmt only"; fi

# Benchmarks (internal/bench): WAL archiving and replay against pgBackRest and
# cp on ~1.2 GB of real WAL (BenchmarkWALPush, BenchmarkWALReplay), base
# backups and restores of pgbench clusters at scales 100 and 400
# (BenchmarkBackup: tusk local and remote mode against pg_basebackup and
# pgBackRest; TUSK_BENCH_SCALES=100,400 sets the scales, and scale 400 needs
# about 22 GB of free disk at its peak; TUSK_BENCH_WALG=/path/to/wal-g adds
# wal-g, which is never downloaded or built here), PostgreSQL 17
# incremental backups and chain restores (BenchmarkIncremental), and what
# client-side encryption costs (BenchmarkEncryption); they rewrite
# their sections of BENCHMARKS.md, and the output is kept in bin/bench.txt.
# The WAL corpus is built once (a few minutes) and cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bench.
.PHONY: bench
bench: export TUSK_TEST_REQUIRE = 1
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench:
	bash scripts/install-test-deps.sh
	bash internal/bench/install-deps.sh
	@mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 150m ./internal/bench/ | tee bin/bench.txt
