#!/usr/bin/env bash
# The project's test command (README "Test"; .ci/run calls it).
#
# 1. fetches the real data the golden tests read and prepares InstrumentAVT-mini for the smoke
#    test of the main job (registries only, pinned, checksummed; idempotent, and a failed
#    fetch only means those tests print SKIPPED — unless ACCRUE_REQUIRE_DATA=1, as in CI),
# 2. checks formatting, 3. runs every test of the workspace on the default CPU backend (and
#    compiles the GPU check's test binary),
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
scripts/test_python.sh
