# The two commands (see README.md):
#   make run    build the release preset and start `wire serve` (this folder) on 127.0.0.1:8000
#   make test   build the dev preset (-Wall -Wextra -Werror) and run every test
# Each installs the Debian packages it needs first, only when missing.

BUILD_PACKAGES := cmake ninja-build g++ pkg-config libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
TEST_PACKAGES := socat netcat-openbsd curl python3 nginx-light wrk
FUZZ_PACKAGES := clang libclang-rt-14-dev
BENCH_PACKAGES := wrk h2o nginx-light curl
FUZZ_SECONDS ?= 30
ADDRESS ?= tcp://127.0.0.1:8000

.PHONY: all deps test-deps build run test test-asan test-tsan fuzz bench format clean

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

# libFuzzer on the HTTP parser under ASan+UBSan, bounded in time; any finding fails.
fuzz:
	@scripts/install-deps $(FUZZ_PACKAGES)
	mkdir -p build/fuzz/corpus
	clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -Iinclude fuzz/http_parser_fuzz.cpp src/http/parser.cpp -o build/fuzz/http_parser_fuzz
	cp fuzz/corpus/http/* build/fuzz/corpus/
	build/fuzz/http_parser_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  -print_final_stats=1 build/fuzz/corpus > build/fuzz/log 2>&1; status=$$?; \
	  tail -n 12 build/fuzz/log; exit $$status

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
	bench/echo.sh build/release
	bench/idle_memory.sh build/release
	bench/http.sh build/release

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf build
