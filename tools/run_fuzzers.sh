#!/usr/bin/env bash
# Runs the libFuzzer targets of the fuzz preset (build/fuzz) for a bounded
# time each, under ASan + UBSan, and says whether any found something.
#
#   tools/run_fuzzers.sh SECONDS [TARGET...]     default: every fuzz/*_fuzzer.cpp
#
# Each target starts from its committed seed corpus fuzz/corpus/TARGET/,
# copied to a scratch directory first (the committed seeds are never
# modified; what the run adds is thrown away), with fuzz/TARGET.dict as its
# dictionary when there is one. A crash, leak, timeout, out-of-memory or
# sanitizer report stops that target; its reproducer is kept under
# build/fuzz/artifacts/TARGET/ and its path printed (run the fuzzer on that
# file to reproduce: build/fuzz/fuzz/TARGET FILE). The last lines printed are
# one summary line per target (executions, exec/s) and the verdict; the exit
# status is non-zero when any target failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
  echo "usage: tools/run_fuzzers.sh SECONDS [TARGET...]" >&2
  exit 2
}
(($# >= 1)) || usage
seconds=$1
shift
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage

build_dir=build/fuzz
targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in fuzz/*_fuzzer.cpp; do
    targets+=("$(basename "$source" .cpp)")
  done
fi
((${#targets[@]} > 0)) || { echo "tools/run_fuzzers.sh: no fuzz/*_fuzzer.cpp" >&2; exit 2; }
for target in "${targets[@]}"; do
  if [[ ! -x $build_dir/fuzz/$target ]]; then
    echo "tools/run_fuzzers.sh: no $build_dir/fuzz/$target (build the fuzz preset:" \
      "cmake --preset fuzz && cmake --build --preset fuzz)" >&2
    exit 2
  fi
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/maskattn-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# halt_on_error / abort_on_error: the first report ends the run with a
# reproducer; leaks are reported at each input's end by libFuzzer.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
failed=0
for target in "${targets[@]}"; do
  corpus=$scratch/$target/corpus
  # Absolute paths: a fuzzer may change its working directory (cli_fuzzer does).
  artifacts=$PWD/$build_dir/artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  if [[ -d fuzz/corpus/$target ]]; then cp -R "fuzz/corpus/$target/." "$corpus/"; fi
  seeds=$(find "$corpus" -type f | wc -l)
  # An input that runs longer than this is reported as a timeout. The flash
  # differential runs attention forward and backward on both backends, on the
  # portable EMU128 target too (scalar emulation, slow under coverage and
  # ASan): a decoding call (Lk = 300) with its backward there took 22 s.
  timeout=10
  [[ $target == flash_vs_reference_fuzzer ]] && timeout=60
  options=(-max_total_time="$seconds" -print_final_stats=1 -timeout=$timeout -rss_limit_mb=2048
    -artifact_prefix="$artifacts/")
  if [[ -f fuzz/$target.dict ]]; then options+=(-dict="$PWD/fuzz/$target.dict"); fi
  log=$scratch/$target.log
  echo "== $target: ${seconds} s from $seeds seeds (fuzz/corpus/$target)"
  # In a subshell that waits for it (the exit keeps bash from exec'ing the
  # fuzzer in its place), so that the shell's "Aborted" note goes to the log.
  ("$build_dir/fuzz/$target" "${options[@]}" "$corpus"; exit $?) >"$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  reproducer=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
  if ((status == 0)) && [[ -z $reproducer ]] && [[ -n $execs ]]; then
    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs)' "$log" | tail -1
    summary+=("$(printf '%-20s ok      %12s executions %8s exec/s  (%s s)' "$target" "$execs" \
      "$rate" "$seconds")")
  else
    failed=1
    # The report: what the sanitizer or libFuzzer said, and the reproducer.
    grep -v -E '^#[0-9]+ +(NEW|REDUCE|pulse|INITED|RELOAD)' "$log" | tail -60
    summary+=("$(printf '%-20s FAILED  %12s executions %8s exec/s  exit %s, reproducer: %s' \
      "$target" "${execs:-?}" "${rate:-?}" "$status" "${reproducer:-none written}")")
  fi
done

echo
echo "fuzzing summary (${seconds} s per target, ASan + UBSan):"
printf '  %s\n' "${summary[@]}"
if ((failed)); then
  echo "fuzzing: FAILED (reproduce: $build_dir/fuzz/TARGET REPRODUCER; see docs/fuzzing.md)"
  exit 1
fi
echo "fuzzing: all ${#targets[@]} targets ran clean"
