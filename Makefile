# The two commands (see README.md):
#   make run    build the release preset and start `wire serve` (this folder) on 127.0.0.1:8000
#   make test   build the dev preset (-Wall -Wextra -Werror) and run every test
# Each installs the Debian packages it needs first, only when missing.

BUILD_PACKAGES := cmake ninja-build g++ pkg-config libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev zlib1g-dev
TEST_PACKAGES := socat netcat-openbsd curl python3 nginx-light wrk lsof iproute2 chromium systemd \
  python3-prometheus-client
FUZZ_PACKAGES := clang libclang-rt-14-dev
BENCH_PACKAGES := wrk h2o nginx-light curl lsof iproute2 bc
FUZZ_SECONDS ?= 10
ADDRESS ?= tcp://127.0.0.1:8000

.PHONY: all deps test-deps build run test test-asan test-tsan fuzz fuzz-deps bench format clean

all: build

deps:
	@scripts/install-deps $(BUILD_PACKAGES)

test-deps: deps
	@scripts/install-deps $(TEST_PACKAGES)

build: deps
	cmake --preset release >/dev/null
	cmake --build --preset release

run: build
	./build/release/tools/wire/wire serve . --bind $(ADDRESS)

test: test-deps
	cmake --preset dev >/dev/null
	cmake --build --preset dev
	ctest --preset dev -j2
	$(MAKE) --no-print-directory fuzz

# libFuzzer under ASan+UBSan on every byte parser: fuzz/NAME_fuzz.cpp with its seeds in
# fuzz/corpus/NAME/. Each runs FUZZ_SECONDS (6 x 10 s in make test, to keep CI under 25 minutes;
# `make fuzz FUZZ_SECONDS=600` for a real session); any finding fails, and
# leaves the input in build/fuzz/findings/. One summary line per target.
FUZZ_TARGETS := http_parser address url chunked conditional content_decoding
FUZZ_CXXFLAGS := -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Iinclude -Isrc -pthread
# What each target links besides its own file.
build/fuzz/http_parser_fuzz: src/http/parser.cpp
build/fuzz/address_fuzz: src/address.cpp src/error.cpp
build/fuzz/url_fuzz: src/http/url.cpp src/error.cpp
build/fuzz/chunked_fuzz: src/http/parser.cpp
build/fuzz/conditional_fuzz: src/http/conditional.cpp src/http/parser.cpp
build/fuzz/content_decoding_fuzz: src/http/content_decoding.cpp src/error.cpp
build/fuzz/content_decoding_fuzz: FUZZ_LIBS := -lz

build/fuzz/%_fuzz: fuzz/%_fuzz.cpp $(wildcard include/wire/*.hpp include/wire/http/*.hpp src/http/*.hpp) | fuzz-deps
	@mkdir -p build/fuzz
	clang++ $(FUZZ_CXXFLAGS) $(filter %.cpp,$^) -o $@ $(FUZZ_LIBS)

fuzz-deps:
	@scripts/install-deps $(FUZZ_PACKAGES)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%_fuzz)
	@failed=0; \
	for name in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpora/$$name build/fuzz/findings; \
	  log=build/fuzz/$$name.log; \
	  if build/fuzz/$${name}_fuzz -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=4096 \
	       -print_final_stats=1 -artifact_prefix=build/fuzz/findings/$$name- \
	       build/fuzz/corpora/$$name fuzz/corpus/$$name > $$log 2>&1; then \
	    echo "fuzz $$name: ok, $$(sed -n 's/^stat::number_of_executed_units: *//p' $$log) runs" \
	         "in $(FUZZ_SECONDS) s, $$(ls build/fuzz/corpora/$$name | wc -l) inputs in the corpus"; \
	  else \
	    failed=1; grep -m 3 -E 'ERROR|SUMMARY|Test unit written' $$log; \
	    echo "fuzz $$name: FAILED, see $$log"; \
	  fi; \
	done; \
	exit $$failed

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: test-deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan
	ctest --preset asan -j2

# The multi-threaded tests (server workers, loops, the hostile-peer suite) under
# ThreadSanitizer; only their targets are built.
test-tsan: test-deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan
	ctest --preset tsan -j2

# Timed figures (never part of make test): see bench/RESULTS.md.
bench: build
	@scripts/install-deps $(BENCH_PACKAGES)
	bench/pingpong.sh build/release/bench/bench_pingpong
	build/release/bench/bench_sync --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
	bench/echo.sh build/release
	bench/idle_memory.sh build/release
	bench/http.sh build/release
	bench/sockets.sh build/release

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf build
