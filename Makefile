# Entry points. SCRATCH lets parallel worktrees keep separate build folders.
SCRATCH ?= .build
SWIFT_FLAGS = --scratch-path $(SCRATCH)
BIN = $(SCRATCH)/debug/smsbatch
# libcurl4-openssl-dev: the HTTP client (CCurl) uses libcurl's multi interface.
# chromium: the test that renders report.html as a person sees it (headless).
DEBS = libcsv-dev libarchive-dev libxml2-dev libssl-dev libsqlite3-dev libpq-dev postgresql iproute2 pkg-config zlib1g-dev libcurl4-openssl-dev chromium
# A fixed clock keeps sample runs reproducible (every-reason.csv row 14 schedules 2027-01-15).
NOW ?= 2027-01-01T06:30:00Z
# The built-in sandbox delivers within seconds and forgets when the run ends: wait for it.
RUN_FLAGS ?= --now $(NOW) --wait-dlr 15s
SAMPLES = $(filter-out samples/README.md samples/optout.txt samples/%.yaml,$(wildcard samples/*.*))
GEN_ROWS ?= 700000
GEN_SEED ?= 1

.PHONY: deps build test test-fast test-sanitize run release clean gen bench bench-send bench-workers fuzz

deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "installing:" $$missing; \
		$$sudo apt-get update && $$sudo apt-get -o DPkg::Lock::Timeout=300 install -y $$missing; \
	fi

build:
	swift build $(SWIFT_FLAGS)

test: deps
	swift build --build-tests $(SWIFT_FLAGS)
	swift test --skip-build $(SWIFT_FLAGS)

# Everything but the process tests (the binary, standalone sandboxes, kills): under a minute.
test-fast: deps
	swift build --build-tests $(SWIFT_FLAGS)
	SMSBATCH_FAST=1 swift test --skip-build $(SWIFT_FLAGS)

# The suite under AddressSanitizer, then under ThreadSanitizer, each in its own scratch path.
# SANITIZE_TESTS=all runs the process tests too (the binary built with the sanitizer; slower).
SANITIZE_TESTS ?= fast
test-sanitize: deps
	swift build --build-tests --scratch-path .build-asan --sanitize=address
	LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/Sanitizers/lsan.supp $(if $(filter fast,$(SANITIZE_TESTS)),SMSBATCH_FAST=1) swift test --skip-build --scratch-path .build-asan --sanitize=address
	swift build --build-tests --scratch-path .build-tsan --sanitize=thread
	$(if $(filter fast,$(SANITIZE_TESTS)),SMSBATCH_FAST=1) swift test --skip-build --scratch-path .build-tsan --sanitize=thread

run: deps build
	@rm -rf out
	@for f in $(SAMPLES); do \
		name=$${f##*/}; name=$${name%%.*}; \
		echo "== $$f -> out/$$name/"; \
		cfg="-c samples/run.yaml"; [ -f samples/$$name.yaml ] && cfg="-c samples/$$name.yaml"; \
		$(BIN) run $(RUN_FLAGS) $$cfg --out out/$$name $$f || echo "   (exit $$?)"; \
	done

release:
	swift build -c release $(SWIFT_FLAGS)

# libFuzzer on the CSV ingest, the number reader, the config loader, the spreadsheet reader and
# the HTTP request parsers (sandbox server, pushed delivery reports) (Sources/smsbatch-fuzz),
# each FUZZ_SECONDS, from the committed seeds in Tests/Fuzz/corpus/<target>; what it finds
# goes to .build-fuzz/ (new inputs in corpus-<target>/, a failing one as <target>-crash-…).
# Replay a finding with an ordinary build: SMSBATCH_FUZZ_TARGET=csv .build/debug/smsbatch-fuzz FILE
FUZZ_SECONDS ?= 60
# A fixed seed: the same inputs in the same order each run (CI never flakes on a new draw).
FUZZ_SEED ?= 1
FUZZ_TARGETS ?= csv number config sheet http
fuzz: SHELL := /bin/bash
fuzz: deps
	swift build -c release --product smsbatch-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p .build-fuzz/corpus-$$t; \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		SMSBATCH_FUZZ_TARGET=$$t .build-fuzz/release/smsbatch-fuzz -max_total_time=$(FUZZ_SECONDS) -seed=$(FUZZ_SEED) -rss_limit_mb=2048 -max_len=65536 \
			-print_final_stats=1 -artifact_prefix=.build-fuzz/$$t- .build-fuzz/corpus-$$t Tests/Fuzz/corpus/$$t 2>&1 | \
			grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|==[0-9]+==|Test unit written" ; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

gen:
	swift build -c release $(SWIFT_FLAGS) --product gen-recipients
	mkdir -p samples/generated
	$(SCRATCH)/release/gen-recipients --rows $(GEN_ROWS) --seed $(GEN_SEED) samples/generated/recipients-$(GEN_ROWS).csv

clean:
	rm -rf $(SCRATCH) out samples/generated bench/data bench/floor

# smsbatch run --dry-run on a generated 700,000-row file as .csv/.gz/.zip against the C floor
# (libcsv, libarchive, counting only): seconds, MB/s, rows/s, peak RSS, ratio to the floor, and
# RSS growth per unique row on a file twice as long. Data in bench/data/ (kept, never committed).
# `make bench BENCH_FLAGS="--rows 50000 --runs 1"` for a quick run. `release` builds every
# product, gen-recipients included. /usr/bin/time (Debian `time`) and python3 are bench-only.
BENCH_FLAGS ?=
bench: DEBS += time python3
bench: deps release bench/floor
	python3 bench/bench.py --bin-dir $(SCRATCH)/release --double $(BENCH_FLAGS)

bench/floor: bench/floor.c
	cc -O2 bench/floor.c -o bench/floor -lcsv -larchive

# Rows per second sent to the in-process sandbox with every limit off, ledger on and off.
bench-send: deps
	swift build --build-tests -c release -Xswiftc -enable-testing --scratch-path .build-bench
	SMSBATCH_BENCH=1 swift test --skip-build -c release -Xswiftc -enable-testing --scratch-path .build-bench --filter SendBenchmark 2>&1 | grep -E 'bench-send|error|failed'

# Rows per second by 1, 2 and 3 watch workers on one PostgreSQL ledger (and one killed),
# and ledger commits per second on SQLite and PostgreSQL: bench/workers.sh.
bench-workers: deps release
	BIN=$(abspath $(SCRATCH))/release/smsbatch GEN=$(abspath $(SCRATCH))/release/gen-recipients bench/workers.sh
