# Thin front door: tools/setup.sh installs what is missing and configures a
# CMake preset (CMakePresets.json); CMake and Ninja do the rest, so a rerun
# with nothing changed costs a second or two.
#
#   make demo       build, then run `maskattn demo` on its built-in defaults
#   make test       also install the Python test requirements, build, then run
#                   every test: C++, CLI and Python (ctest --preset dev)
#   make build      set up and build the dev preset (build/dev)
#   make test-asan  the tests again under AddressSanitizer + UBSan (build/asan)
#   make bench      build, then run the benchmarks
#   make fuzz       build the libFuzzer targets (clang, ASan + UBSan: build/fuzz)
#                   and run each for FUZZ_SECONDS (30) from its seed corpus
#   make clean      remove the preset build directories

.DEFAULT_GOAL := build
.PHONY: build demo test test-asan bench fuzz clean

FUZZ_SECONDS ?= 30

build:
	@bash tools/setup.sh dev
	@cmake --build --preset dev

demo: build
	@build/dev/cli/maskattn demo

test:
	@bash tools/setup.sh --test dev
	@cmake --build --preset dev
	@ctest --preset dev

test-asan:
	@bash tools/setup.sh asan
	@cmake --build --preset asan
	@ctest --preset asan

bench: build
	@set -e; n=0; for b in build/dev/bench/bench_*; do \
	  if [ -f "$$b" ] && [ -x "$$b" ]; then n=$$((n + 1)); "$$b"; fi; \
	done; \
	[ $$n -gt 0 ] || { echo "make bench: no build/dev/bench/bench_* programs" >&2; exit 1; }

fuzz:
	@bash tools/setup.sh fuzz
	@cmake --build --preset fuzz
	@bash tools/run_fuzzers.sh $(FUZZ_SECONDS)

clean:
	rm -rf build/dev build/asan build/fuzz
