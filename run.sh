#!/usr/bin/env bash
# The main job (README "Quick start"). Fetches what it needs, then runs.
set -euo pipefail
cd "$(dirname "$0")"
scripts/fetch_audio_fixtures.sh
DATA="${ACCRUE_DATA_DIR:-data}/sound-theme-freedesktop/stereo"
cargo run --release --quiet -- frontend \
  "$DATA/bell.oga" "$DATA/camera-shutter.oga" "$DATA/complete.oga" "$DATA/phone-incoming-call.oga"
