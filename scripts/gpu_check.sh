#!/usr/bin/env bash
# The GPU path, proven: accrue's model code on `wgpu` through Vulkan, against `flex` and the
# PyTorch goldens, and timed against PyTorch eager on the same GPU.
#
#   scripts/gpu_check.sh prepare [--wgsl | --cpu]   # here: network and a Rust toolchain (≈ 45 min on 2
#                                           # cores the first time: Burn with its wgpu backend)
#   scripts/gpu_check.sh run [--software]   # on the GPU machine: no network, no Rust (≤ 10 min)
#
# `prepare` builds, with `--features burn/vulkan` (wgpu on Vulkan, SPIR-V kernels; `--wgsl`:
# `burn/wgpu`, WGSL kernels translated by wgpu), ONE test binary holding every check
# (`crates/accrue-continual/tests/gpu_check.rs`: Burn and its GPU kernels linked once), and
# packs into ignored folders what `run` needs on a machine that can fetch nothing:
#   .gpu/   the binary (stripped, xz), the build's repository root, the commit, the device name;
#   .gl/    the Vulkan loader as Debian packages (unpacked by `run` when the machine has none);
#   .whl/   torchlibrosa and librosa with the dependencies a plain PyTorch image lacks (for the
#           PyTorch side of the timing: the reference model of tools/goldens/encoders.py).
# They travel with the working tree (the device tool's `carry`: .gpu .gl .whl; `prepare` checks
# the 64 MiB that travels).
#
# `run` (repository root; results into $OUT, default ./gpu-check-out):
#   1. golden tests on the GPU (BURN_DEVICE=vulkan), the fixtures and tolerances of `flex`:
#      encoders (ResNet-38 / CNN14 small: eval forward, train-step loss and gradients, against
#      PyTorch), losses (InfoNCE, KD, CaSSLe, Mod-X, against PyTorch). The tower goldens are not
#      in it: they read the real tower weights (≈ 110 MB), over what travels;
#   2. full-size ResNet-38 on the GPU against flex (eval forward; loss and gradients of one
#      train step; batch 2 × 10 s);
#   3. an A → AV → AT run of the demo encoder on the GPU against flex, loss by loss (same
#      initial weights, dropout and SpecAugment off);
#   4. the full ResNet-38 train step (forward + BCE + backward + Adam) and eval forward at
#      batch 8 × 10 s and 32 × 10 s: Burn (f32; bf16) against PyTorch eager on the same GPU
#      (fp32, tf32, bf16 autocast), medians of 10 after 3 warm-up calls, and the ratios
#      (PyTorch time ÷ accrue time: > 1 is faster).
# `--software`: the same on this machine's software Vulkan (Mesa lavapipe: apt-get install
# mesa-vulkan-drivers), at sizes a CPU manages (full size at 1 × 2 s; timing at 1 × 1 s and the
# PyTorch side on the CPU): a check that the script and the kernels are right, no speed figure.
# Lavapipe crashes (SIGSEGV in its pipeline compiler) on cubecl's SPIR-V kernels, Mesa 22.3
# and 25.0 alike; a `--wgsl` build runs there but too slowly to finish (docs/benchmarks.md, "GPU").
# `prepare --cpu` builds the same binary with `flex` alone (device `flex`): `run --software` then
# exercises the whole script, packing and unpacking, every check and the ratio table included,
# on the CPU (what CI-less testing of the script can do without a GPU; the kernels are flex's).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
shift || true
software=0
features=burn/vulkan
for a in "$@"; do
  case "$a" in
    --software) software=1 ;;
    --wgsl) features=burn/wgpu ;;
    --cpu) features="" ;;
    *) echo "gpu_check.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

prepare() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  mkdir -p .gpu .gl .whl
  cargo test --no-run -p accrue-continual --features "gpu-check${features:+,$features}" --test gpu_check \
    --message-format=json-render-diagnostics > .gpu/build.json
  exe=$(python3 -c '
import json, sys
for line in open(".gpu/build.json"):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "gpu_check":
        print(m["executable"])
')
  [[ -n "$exe" ]] || { echo "gpu_check.sh: no gpu_check binary built" >&2; exit 1; }
  rm -f .gpu/gpu-check .gpu/gpu-check.xz .gpu/bin.tar.gz .gpu/build.json
  cp "$exe" .gpu/gpu-check && strip .gpu/gpu-check
  xz -9 -T0 .gpu/gpu-check
  # The tests find their fixtures under the repository root they were built in.
  git rev-parse --show-toplevel > .gpu/build_root
  git rev-parse HEAD > .gpu/commit
  # BURN_DEVICE for `run`: vulkan pins the Vulkan API (SPIR-V); wgpu lets wgpu choose (WGSL).
  case "$features" in
    burn/vulkan) echo vulkan > .gpu/device ;;
    burn/wgpu) echo wgpu > .gpu/device ;;
    *) echo flex > .gpu/device ;;
  esac
  # The Vulkan loader (the device tool's notes: an NVIDIA image may have the driver only).
  mkdir -p /tmp/gpu-check-apt/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/gpu-check-apt)
  apt-get "${o[@]}" update -qq
  (cd .gl && rm -f ./*.deb && apt-get "${o[@]}" download -qq libvulkan1)
  # The PyTorch reference's front end: torchlibrosa (pinned as in tools/goldens) and librosa.
  rm -f .whl/*.whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
    torchlibrosa==0.1.0 librosa==0.11.0 audioread==3.0.1 soundfile==0.13.1 soxr==0.5.0.post1 \
    pooch==1.8.2 platformdirs==4.3.8 decorator==5.2.1 cffi==1.17.1 pycparser==2.22
  du -sh .gpu .gl .whl
  size=$(du -cm .gpu .gl .whl | tail -1 | cut -f1)
  if (( size > 56 )); then
    echo "gpu_check.sh prepare: WARNING: ${size} MiB packed; with the repository that is over the" \
      "64 MiB the device tool carries to the GPU machine" >&2
  fi
  echo "gpu_check.sh prepare: done; run it on the GPU machine with carry .gpu .gl .whl"
}

run() {
  [[ -f .gpu/gpu-check.xz ]] || { echo "gpu_check.sh: run \`scripts/gpu_check.sh prepare\` first" >&2; exit 2; }
  out="${OUT:-$PWD/gpu-check-out}"
  mkdir -p "$out"
  log="$out/gpu_check.log"
  : > "$log"
  say() { echo "$*" | tee -a "$log"; }
  work=$(mktemp -d)
  bin="$work/gpu-check"
  if command -v xz >/dev/null; then
    xz -dc .gpu/gpu-check.xz > "$bin"
  else  # python3 is there (PyTorch is)
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      .gpu/gpu-check.xz "$bin"
  fi
  chmod +x "$bin"
  # The binaries read their fixtures under the root they were built in.
  root=$(cat .gpu/build_root)
  if [[ ! -e "$root" ]]; then
    mkdir -p "$(dirname "$root")" && ln -s "$PWD" "$root"
  fi
  if [[ $software == 0 ]]; then
    if ! ldconfig -p | grep -q libvulkan.so.1; then
      for f in .gl/*.deb; do dpkg -x "$f" /; done
      ldconfig
    fi
    nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    if [[ -f $nvidia_icd && -z "${VK_DRIVER_FILES:-}" ]]; then export VK_DRIVER_FILES=$nvidia_icd; fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log" || true
    full=(2 10) sizes=(8 32) seconds=10 torch_device=cuda precisions=(fp32 tf32 bf16)
  else
    full=(1 2) sizes=(1) seconds=1 torch_device=cpu precisions=(fp32)
  fi
  say "gpu_check.sh run: commit $(cat .gpu/commit), software=$software, $(date -u +%FT%TZ)"
  export BURN_DEVICE="$(cat .gpu/device)"
  say "device: BURN_DEVICE=$BURN_DEVICE"
  status=0
  check() {
    local name=$1; shift
    local t0=$SECONDS
    if timeout "${CHECK_TIMEOUT:-300}" "$@" >> "$log" 2>&1; then
      say "PASS $name ($((SECONDS - t0)) s)"
    else
      say "FAIL $name ($((SECONDS - t0)) s): see gpu_check.log"
      status=1
    fi
  }
  check "golden: encoders on $BURN_DEVICE" "$bin" encoders_golden:: --test-threads 1 --nocapture
  check "golden: losses on $BURN_DEVICE" "$bin" losses_golden:: --test-threads 1 --nocapture
  check "full-size ResNet-38 vs flex (${full[0]} x ${full[1]} s)" \
    env ACCRUE_PARITY_BATCH="${full[0]}" ACCRUE_PARITY_SECONDS="${full[1]}" \
    "$bin" encoders_parity:: --ignored --nocapture
  check "A -> AV -> AT on $BURN_DEVICE vs flex, step by step" \
    "$bin" continual_parity:: --nocapture
  grep -h "^backend parity\|^eval forward\|^train step" "$log" | sed 's/^/  /' || true

  # Timing, both sides the median of 10 synchronised calls after 3 warm-up calls.
  for b in "${sizes[@]}"; do
    for dtype in f32 bf16; do
      [[ $software == 1 && $dtype == bf16 ]] && continue
      check "time burn $dtype b$b" env ACCRUE_BENCH_BATCH="$b" ACCRUE_BENCH_SECONDS=$seconds \
        ACCRUE_BENCH_DTYPE=$dtype ACCRUE_BENCH_REPS=10 ACCRUE_TIME_JSON="$work/burn-$dtype-b$b.json" \
        "$bin" time_resnet38 --exact --ignored --nocapture
    done
    if python3 -c "import torch" 2>/dev/null; then
      if [[ $software == 0 && -d .whl ]] && ! python3 -c "import torchlibrosa" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
          --target "$work/site" .whl/*.whl >> "$log" 2>&1 || true
        export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
      fi
      for p in "${precisions[@]}"; do
        check "time torch $p b$b" python3 crates/accrue-encoders/benches/resnet38_torch.py \
          --device $torch_device --precision "$p" --batch "$b" --seconds $seconds --reps 10 \
          --threads "$(nproc)" --json "$work/torch-$p-b$b.json"
      done
    else
      say "SKIP torch timing: no torch in this python3"
    fi
  done
  python3 - "$work" "$out/gpu_check.json" <<'EOF' | tee -a "$log"
import json, os, sys
work, dest = sys.argv[1], sys.argv[2]
rows = []
def burn(dtype, b, fn):
    p = os.path.join(work, f"burn-{dtype}-b{b}.json")
    return json.load(open(p))[fn] if os.path.exists(p) else None
def torch(p, b):
    f = os.path.join(work, f"torch-{p}-b{b}.json")
    return json.load(open(f)) if os.path.exists(f) else None
sizes = sorted({int(n[:-5].split("-b")[1]) for n in os.listdir(work)
                if n.startswith("burn-") and n.endswith(".json")})
print("| workload | accrue (s) | PyTorch (s) | PyTorch ÷ accrue |")
print("|---|---|---|---|")
for b in sizes:
    for fn in ("train_step_adam", "forward_eval"):
        for dtype, prec in (("f32", "fp32"), ("f32", "tf32"), ("bf16", "bf16")):
            a, t = burn(dtype, b, fn), torch(prec, b)
            if a is None or t is None:
                continue
            r = t[fn] / a
            rows.append(dict(batch=b, workload=fn, accrue_dtype=dtype, torch_precision=prec,
                             accrue_s=a, torch_s=t[fn], ratio=r, torch=t["torch"],
                             device=t["device"]))
            print(f"| {fn}, batch {b} × {t['seconds']} s, accrue {dtype} vs torch {prec} "
                  f"| {a:.4f} | {t[fn]:.4f} | {r:.2f}× |")
json.dump(rows, open(dest, "w"), indent=1)
EOF
  say "gpu_check.sh run: $([[ $status == 0 ]] && echo 'all checks passed' || echo 'SOME CHECKS FAILED')"
  rm -rf "$work"
  return $status
}

case "$mode" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: scripts/gpu_check.sh prepare | run [--software]" >&2; exit 2 ;;
esac
