#!/usr/bin/env bash
# The fuzz targets under fuzz/ (libFuzzer, one per parser of outside data).
#
#   scripts/fuzz.sh check            build every target on stable without
#                                    cargo-fuzz, test the harness, and run each
#                                    target once over its committed seeds (CI)
#   scripts/fuzz.sh run [seconds]    fuzz each target in turn for `seconds`
#                                    (default 180) and print its executions;
#                                    needs cargo-fuzz (`cargo install cargo-fuzz`)
#   scripts/fuzz.sh list             the targets
#
# `run` builds with cargo-fuzz's coverage instrumentation, which needs
# RUSTC_BOOTSTRAP=1 on a stable toolchain (set here), with overflow checks on
# and no sanitizer by default (the parsers are safe Rust; set FUZZ_SANITIZER=address
# to add ASan). One fuzzer process at a time. New inputs go to fuzz/corpus/<target>
# and crashes to fuzz/artifacts/<target>/ (both untracked); the committed seeds
# in fuzz/seeds/<target> are read, never written. FUZZ_TARGETS="a b" picks targets.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=fuzz/Cargo.toml
targets() {
  if [ -n "${FUZZ_TARGETS:-}" ]; then
    tr ' ' '\n' <<<"$FUZZ_TARGETS"
  else
    sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | grep -v '^autoenroll-fuzz$'
  fi
}

check() {
  # The main package's target folder: its dependencies are already built there.
  local target_dir=${CARGO_TARGET_DIR:-target}
  cargo build --locked --manifest-path "$manifest" --target-dir "$target_dir" --bins --examples
  cargo test --locked --manifest-path "$manifest" --target-dir "$target_dir" --lib
  cargo clippy --locked --manifest-path "$manifest" --target-dir "$target_dir" --all-targets -- -D warnings
  # Without instrumentation a target still runs its inputs: every seed (and
  # with it every input that once crashed, kept in the seeds) must pass.
  local t
  for t in $(targets); do
    "$target_dir/debug/$t" -runs=0 "fuzz/seeds/$t" >"$target_dir/fuzz-$t.log" 2>&1 || {
      cat "$target_dir/fuzz-$t.log"
      echo "fuzz target $t fails on its seeds" >&2
      exit 1
    }
    echo "fuzz target $t: $(find "fuzz/seeds/$t" -type f | wc -l) seeds pass"
  done
}

run() {
  local seconds=${1:-180}
  command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 1
  }
  export RUSTC_BOOTSTRAP=1
  local sanitizer=${FUZZ_SANITIZER:-none}
  cargo fuzz build -O -a -s "$sanitizer"
  local bin_dir t log execs failed=""
  bin_dir=fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release
  for t in $(targets); do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=fuzz/artifacts/$t/last-run.log
    # One process, in-process fuzzing (no -jobs/-workers forks).
    if ! "$bin_dir/$t" "fuzz/corpus/$t" "fuzz/seeds/$t" \
      -max_total_time="$seconds" -timeout=10 -max_len=16384 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
      tail -n 40 "$log"
      echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/" >&2
      failed="$failed $t"
      continue
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$t: ${execs:-?} executions in ${seconds}s, corpus $(find "fuzz/corpus/$t" -type f | wc -l) inputs"
  done
  if [ -n "$failed" ]; then
    echo "failed:$failed" >&2
    exit 1
  fi
}

case "${1:-}" in
  check) check ;;
  run) run "${2:-180}" ;;
  list) targets ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
