#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain: libFuzzer (the `libfuzzer-sys` crate) with
# rustc's own SanitizerCoverage pass (`-Cpasses=sancov-module`, stable flags), the way
# cargo-fuzz builds with `--sanitizer none` but without needing nightly.
#
#   fuzz/run.sh                 # every target for 60 s
#   fuzz/run.sh 600 proof uri   # these targets for 10 min each
#   fuzz/run.sh seeds           # rewrite the seed corpus (fuzz/corpus/, committed)
#
# New inputs go to a scratch directory, never into the committed corpus; a crash or timeout is
# written to fuzz/artifacts/<target>/ and the run fails. Keep it: copy the file to
# fuzz/regressions/<target>/ (replayed by every run before fuzzing) and fix the bug.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = seeds ]; then
  rm -rf corpus && (cd .. && cargo run --quiet --locked --example fuzz_seeds)
  exit 0
fi
TARGETS_ALL="proof token uri headers config"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks --cfg fuzzing"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros (they would need the
# libFuzzer runtime to link).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --quiet --target "$host"
bin="$CARGO_TARGET_DIR/$host/release"

SECONDS_EACH=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECONDS_EACH=$1; shift; fi
TARGETS=${*:-$TARGETS_ALL}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in $TARGETS; do
  mkdir -p "artifacts/$t" "$scratch/$t"
  # Every kept crash first: each must now pass.
  if compgen -G "regressions/$t/*" >/dev/null; then
    "$bin/$t" -runs=1 regressions/"$t"/* 2>"$scratch/$t.regressions.log" \
      || { cat "$scratch/$t.regressions.log"; echo "fuzz $t: a kept regression fails" >&2; exit 1; }
  fi
  echo "fuzz $t: ${SECONDS_EACH}s"
  "$bin/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" "$scratch/$t" "corpus/$t" \
    2>"$scratch/$t.log" || { tail -n 40 "$scratch/$t.log"; echo "fuzz $t: failed (input in fuzz/artifacts/$t/)" >&2; exit 1; }
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$scratch/$t.log" | tr '\n' ' '
  echo
done
