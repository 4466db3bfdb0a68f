#!/usr/bin/env bash
# The project's test command (README "Test"; .ci/run calls it).
#
# 1. fetches the real data the golden tests read (registries only, pinned, checksummed;
#    idempotent, and a failed fetch only means those tests print SKIPPED),
# 2. checks formatting, 3. runs every test of the workspace on the default CPU backend.
set -euo pipefail
cd "$(dirname "$0")/.."

for fetch in scripts/fetch_*.sh; do
  if ! "$fetch"; then
    echo "test.sh: $fetch failed; the tests that need its data will be skipped" >&2
  fi
done

cargo fmt --all -- --check
cargo test --workspace --all-targets "$@"
