#!/usr/bin/env bash
# The Python package's tests (README "Python"): builds `crates/accrue-py` into a venv with
# maturin (dev profile, sharing the Cargo target dir) and runs its pytest suite against the
# `accrue` binary that `cargo test --workspace` built. The venv lives in the target dir, outside
# the repository; numpy, pytest and maturin come from PyPI. torch is not installed here, so the
# HEAR module's test is skipped (it is run by hand: README "Python").
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${ACCRUE_PY_VENV:-$TARGET/py-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check "maturin>=1.9,<2" "numpy>=1.21" "pytest>=7"
(cd crates/accrue-py && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --quiet)
ACCRUE_BIN="${ACCRUE_BIN:-$TARGET/debug/accrue}" "$VENV/bin/python" -m pytest crates/accrue-py/tests -q
