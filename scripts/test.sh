#!/usr/bin/env bash
# The project's test command (README "Test"; .ci/run calls it).
#
# 1. fetches the real data the golden tests read and prepares InstrumentAVT-mini for the smoke
#    test of the main job (registries only, pinned, checksummed; idempotent, and a failed
#    fetch only means those tests print SKIPPED — unless ACCRUE_REQUIRE_DATA=1, as in CI),
# 2. checks formatting, 3. runs every test of the workspace on the default CPU backend (and
#    compiles the GPU check's test binary), then a short smoke of the input fuzzer,
# 4. builds the Python package and runs its pytest suite (scripts/test_python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

for fetch in scripts/fetch_*.sh; do
  if ! "$fetch"; then
    echo "test.sh: $fetch failed; the tests that need its data will be skipped" >&2
  fi
done

if ! scripts/setup_mini.sh; then
  echo "test.sh: scripts/setup_mini.sh failed; the demo smoke test will be skipped" >&2
fi

cargo fmt --all -- --check
cargo test --workspace --all-targets "$@"
# The GPU check's one test binary (scripts/gpu_check.sh) is built only with its feature: compile
# it here on the CPU backend so that it cannot rot (what it runs already ran above).
cargo test --no-run --quiet -p accrue-continual --features gpu-check --test gpu_check
# A short smoke of the input fuzzer (the 10-million-execution runs are by hand, docs/fuzzing.md):
# every target with a fixed seed; a panic exits 1. `cargo test` builds examples as test
# harnesses, so the fuzzer's own binary is built here (same profile and features: links only).
cargo build --quiet --workspace --example fuzz
fuzz="${CARGO_TARGET_DIR:-target}/debug/examples/fuzz"
for target in audio manifest experiment supervision tokenizer; do
  "$fuzz" "$target" 20000 1
done
for target in safetensors pytorch; do
  "$fuzz" "$target" 5000 1
done
"$fuzz" clip-vocab 20 1
scripts/test_python.sh
