#!/usr/bin/env bash
# Fetches the real pre-trained aisfx CNN weights (MIT) from the PyPI wheel aisfx==0.1.2 and
# unpacks aisfx/models/checkpoint.pth into "${ACCRUE_DATA_DIR:-<repo>/data}/aisfx-0.1.2/".
#
# Needs: python3 with pip (only `pip download`, nothing is installed), unzip, sha256sum.
# Idempotent: does nothing when the checkpoint is already there with the right checksum.
# The data directory is git-ignored; the weights are never committed.
set -euo pipefail

VERSION="0.1.2"
WHEEL="aisfx-${VERSION}-py2.py3-none-any.whl"
WHEEL_SHA256="bfe219950715af179e9a1653e7117cc1852baef267cd6596c42cad74afe1d194"
CKPT_SHA256="499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${ACCRUE_DATA_DIR:-${ROOT}/data}"
DEST="${DATA}/aisfx-${VERSION}"
CKPT="${DEST}/checkpoint.pth"

fail() { echo "fetch_aisfx: error: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

for tool in python3 unzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is required but not installed"
done

if [[ -f "$CKPT" && "$(sha "$CKPT")" == "$CKPT_SHA256" ]]; then
  echo "fetch_aisfx: $CKPT already present (sha256 ok)"
  exit 0
fi

mkdir -p "$DEST"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch_aisfx: downloading aisfx==${VERSION} from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" "aisfx==${VERSION}" \
  || fail "pip download aisfx==${VERSION} failed (network or PyPI unreachable?)"
[[ -f "$TMP/$WHEEL" ]] || fail "expected $WHEEL, got: $(ls "$TMP")"
[[ "$(sha "$TMP/$WHEEL")" == "$WHEEL_SHA256" ]] \
  || fail "sha256 of $WHEEL is $(sha "$TMP/$WHEEL"), expected $WHEEL_SHA256"

unzip -q -o -j "$TMP/$WHEEL" "aisfx/models/checkpoint.pth" -d "$TMP/out" \
  || fail "checkpoint.pth not found in $WHEEL"
[[ "$(sha "$TMP/out/checkpoint.pth")" == "$CKPT_SHA256" ]] \
  || fail "sha256 of checkpoint.pth is $(sha "$TMP/out/checkpoint.pth"), expected $CKPT_SHA256"

mv "$TMP/out/checkpoint.pth" "$CKPT"
echo "fetch_aisfx: wrote $CKPT"
