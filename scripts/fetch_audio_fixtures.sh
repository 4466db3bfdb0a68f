#!/usr/bin/env bash
# Fetches the real recordings that the audio golden tests read, by Debian package name.
#
# The recordings are not committed (they belong to their package); the golden outputs computed
# from them are, together with the sha256 of every file (tests/fixtures/audio/real_sha256.txt of
# accrue-audio). Idempotent: does nothing when the files are already there and verify.
#
# Destination: $ACCRUE_DATA_DIR/sound-theme-freedesktop (default: data/ at the repository root).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${ACCRUE_DATA_DIR:-$ROOT/data}"
DEST="$DATA/sound-theme-freedesktop"
SUMS="$ROOT/crates/accrue-audio/tests/fixtures/audio/real_sha256.txt"
PKG="sound-theme-freedesktop"

verify() {
  [ -d "$DEST/stereo" ] || return 1
  (cd "$DEST/stereo" && sha256sum --quiet -c "$SUMS") >/dev/null 2>&1
}

if verify; then
  echo "fetch_audio_fixtures: $DEST already present and verified"
  exit 0
fi

mkdir -p "$DATA"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"
if ! apt-get download "$PKG" >/dev/null 2>"$TMP/apt.err"; then
  echo "fetch_audio_fixtures: 'apt-get download $PKG' failed:" >&2
  cat "$TMP/apt.err" >&2
  echo "fetch_audio_fixtures: run 'apt-get update' first, or check access to the Debian archive." >&2
  exit 1
fi
dpkg-deb -x "$PKG"_*.deb extracted
rm -rf "$DEST"
mkdir -p "$DEST"
cp -r extracted/usr/share/sounds/freedesktop/stereo "$DEST/stereo"
if ! verify; then
  echo "fetch_audio_fixtures: checksums of $PKG differ from $SUMS" >&2
  echo "fetch_audio_fixtures: the archive serves another version; regenerate the goldens (tools/goldens/audio.py)" >&2
  (cd "$DEST/stereo" && sha256sum -c "$SUMS") >&2 || true
  exit 1
fi
echo "fetch_audio_fixtures: $PKG recordings in $DEST"
