#!/usr/bin/env bash
# Sets up the InstrumentAVT-mini benchmark (docs/benchmark-data.md) in "$ACCRUE_DATA_DIR/mini"
# (default: <repo>/data/mini, git-ignored); `--full` builds the larger set in ".../mini-full".
#
#   scripts/setup_mini.sh [--full] [--force] [--jobs N] [--no-install] [--help]
#
# 1. checks the tools: python3 (standard library only), fluidsynth (installed with apt-get when
#    running as root on Debian/Ubuntu, else you are told how), rsvg-convert (optional: 3 SVG-only
#    Tux Paint stamps), apt-get and npm (only when an archive still has to be downloaded);
# 2. downloads every archive of scripts/mini_sources.lock by package name and pinned version
#    (`apt-get download NAME=VERSION`, `npm pack NAME@VERSION`) into "$ACCRUE_DATA_DIR/downloads"
#    and checks its sha256; archives already there with the right checksum are reused;
# 3. runs scripts/prepare_mini.py, which unpacks, renders and writes the manifests.
#
# Idempotent: when the output is complete for the same sources and options, it does nothing.
# Nothing it downloads or writes is ever committed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${ACCRUE_DATA_DIR:-${ROOT}/data}"
DL="${DATA}/downloads"
LOCK="${ROOT}/scripts/mini_sources.lock"
PREPARE="${ROOT}/scripts/prepare_mini.py"

FULL=0
FORCE=0
INSTALL=1
JOBS="$(nproc 2>/dev/null || echo 2)"
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --full) FULL=1 ;;
    --force) FORCE=1 ;;
    --no-install) INSTALL=0 ;;
    --jobs) JOBS="${2:?--jobs needs a number}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup_mini: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT="${DATA}/mini"
PREP_ARGS=(--downloads "$DL" --out "$OUT" --lock "$LOCK" --jobs "$JOBS")
if [[ $FULL == 1 ]]; then
  OUT="${DATA}/mini-full"
  PREP_ARGS=(--downloads "$DL" --out "$OUT" --lock "$LOCK" --jobs "$JOBS" --full)
fi

say() { echo "setup_mini: $*"; }
fail() { echo "setup_mini: error: $*" >&2; exit 1; }
if command -v sha256sum >/dev/null 2>&1; then
  sha() { sha256sum "$1" | cut -d' ' -f1; }
else
  sha() { shasum -a 256 "$1" | cut -d' ' -f1; }
fi
is_root() { [[ "$(id -u)" == 0 ]]; }

command -v python3 >/dev/null 2>&1 || fail "python3 is required (standard library only)"
command -v sha256sum >/dev/null 2>&1 || command -v shasum >/dev/null 2>&1 \
  || fail "sha256sum (coreutils) or shasum is required"

if [[ $FORCE == 0 ]] && python3 "$PREPARE" "${PREP_ARGS[@]}" --is-ready; then
  say "$OUT is ready (nothing to do; --force rebuilds)"
  exit 0
fi

START=$(date +%s)

# ---- 1. tools --------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() { # package...
  if [[ $INSTALL == 1 ]] && is_root && command -v apt-get >/dev/null 2>&1; then
    if [[ $APT_UPDATED == 0 ]]; then
      apt-get update -qq >/dev/null 2>&1 || true
      APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    return 1
  fi
}
lock_field() { # name column(1-based: kind name version file sha)
  awk -v n="$1" -v c="$2" '!/^#/ && $2 == n { print $c }' "$LOCK"
}

if ! command -v fluidsynth >/dev/null 2>&1; then
  say "fluidsynth not found: installing it with apt-get"
  apt_install fluidsynth || fail "fluidsynth is missing. Install it:
    Debian/Ubuntu: sudo apt-get install fluidsynth   (reference version $(lock_field fluidsynth 3))
    macOS:         brew install fluid-synth
  then run this script again."
fi
FS_VERSION="$(fluidsynth --version 2>/dev/null | head -1 | awk '{print $NF}')"
FS_WANT="$(lock_field fluidsynth 3)"
if [[ "${FS_WANT%%-*}" != "$FS_VERSION" ]]; then
  say "note: fluidsynth $FS_VERSION differs from the reference ${FS_WANT%%-*}; the audio may" \
      "differ slightly from the reference set"
fi
if ! command -v rsvg-convert >/dev/null 2>&1; then
  apt_install librsvg2-bin 2>/dev/null || true
  command -v rsvg-convert >/dev/null 2>&1 || say "note: rsvg-convert (Debian librsvg2-bin) is" \
    "missing: the 3 Tux Paint stamps that ship only an SVG picture will be left out"
fi

# ---- 2. archives -----------------------------------------------------------------------------
mkdir -p "$DL"
MISSING=()
T_DL=$(date +%s)
while read -r kind name version file want; do
  [[ "$kind" == deb || "$kind" == npm ]] || continue
  path="${DL}/${file}"
  if [[ -f "$path" && "$(sha "$path")" == "$want" ]]; then
    say "ok  $file (sha256 verified)"
    continue
  fi
  rm -f "$path"
  say "downloading $kind package $name $version"
  ok=0
  if [[ "$kind" == deb ]]; then
    if command -v apt-get >/dev/null 2>&1; then
      (cd "$DL" && apt-get download -qq "${name}=${version}" >/dev/null 2>&1) && ok=1
      if [[ $ok == 0 && $APT_UPDATED == 0 ]] && is_root; then
        apt-get update -qq >/dev/null 2>&1 || true
        APT_UPDATED=1
        (cd "$DL" && apt-get download -qq "${name}=${version}" >/dev/null 2>&1) && ok=1
      fi
      why="apt-get download ${name}=${version} failed (no network, or the configured Debian"
      why+=" release does not carry this version)"
    else
      why="apt-get is not available (not a Debian/Ubuntu system)"
    fi
  else
    if command -v npm >/dev/null 2>&1; then
      (cd "$DL" && npm pack --silent "${name}@${version}" >/dev/null 2>&1) && ok=1
      why="npm pack ${name}@${version} failed (no network or npm registry unreachable)"
    else
      why="npm is not installed"
    fi
  fi
  if [[ $ok == 1 && -f "$path" ]]; then
    got="$(sha "$path")"
    if [[ "$got" == "$want" ]]; then
      say "ok  $file (downloaded, sha256 verified)"
      continue
    fi
    mv "$path" "${path}.bad-sha256"
    why="sha256 mismatch: got $got, expected $want (kept as ${file}.bad-sha256)"
  fi
  MISSING+=("$kind $name $version -> $file (sha256 $want): $why")
done < <(grep -v '^[[:space:]]*#' "$LOCK" | grep -v '^[[:space:]]*$')
T_DL_END=$(date +%s)

if [[ ${#MISSING[@]} -gt 0 ]]; then
  {
    echo "setup_mini: error: ${#MISSING[@]} archive(s) could not be obtained:"
    for m in "${MISSING[@]}"; do echo "  - $m"; done
    echo "Put each file with exactly that name and sha256 into $DL and run this script again"
    echo "(Debian packages: any Debian mirror's pool/main/ directory, or \`apt-get download\` on"
    echo "a Debian 12 machine; npm packages: \`npm pack NAME@VERSION\` on any machine with npm)."
  } >&2
  exit 1
fi

# ---- 3. prepare ------------------------------------------------------------------------------
T_PREP=$(date +%s)
EXTRA=()
[[ $FORCE == 1 ]] && EXTRA=(--force)
python3 "$PREPARE" "${PREP_ARGS[@]}" ${EXTRA[@]+"${EXTRA[@]}"}
END=$(date +%s)
say "done: downloads $((T_DL_END - T_DL)) s, prepare $((END - T_PREP)) s, total $((END - START)) s"
say "manifests in $OUT (task_a, task_av, task_at, tuxpaint .jsonl; classes.json; summary.json)"
