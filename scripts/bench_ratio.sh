#!/usr/bin/env bash
# accrue (flex) against PyTorch eager on this machine: the ResNet-38 eval forward and train step
# at the main job's size (resnet38-tiny, batch 32 × 1 s, cross-entropy over 16 classes + Adam) and
# at full size (PANNs ResNet-38, batch 2 × 10 s, BCE over 527 classes + Adam), one and two
# threads each. Both sides run the same workload (`crates/accrue-encoders/benches/common` and
# `benches/resnet38_torch.py`), interleaved round by round (the order alternates), so that load
# and thermal drift hit both; it prints the CPU model, each side's median over rounds and the
# ratio PyTorch ÷ accrue per round (above 1: accrue is faster).
#
#   scripts/bench_ratio.sh [--rounds N] [--only tiny|full] [--json FILE]
#
# Rust side: criterion (`cargo bench -p accrue-encoders --bench resnet38`, release profile,
# built once). Python side: `ACCRUE_TORCH_PYTHON` (default `python3`), a venv with
# torch==2.9.0 and torchlibrosa==0.1.0 from PyPI, made by hand (docs/benchmarks.md); never in CI.
# Threads: RAYON_NUM_THREADS for flex, torch.set_num_threads for PyTorch. Run it on a quiet
# machine: the numbers are only as good as the idle time they get.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=2
only=""
json=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    *) echo "bench_ratio.sh: unknown option $1 (--rounds N, --only tiny|full, --json FILE)" >&2; exit 2 ;;
  esac
done
python="${ACCRUE_TORCH_PYTHON:-python3}"
if ! "$python" -c 'import torch, torchlibrosa' 2>/dev/null; then
  echo "bench_ratio.sh: $python has no torch/torchlibrosa; set ACCRUE_TORCH_PYTHON to a venv's python" >&2
  exit 2
fi

# name preset loss batch seconds threads
workloads=(
  "tiny-1t resnet38-tiny ce 32 1 1"
  "tiny-2t resnet38-tiny ce 32 1 2"
  "full-1t resnet38 bce 2 10 1"
  "full-2t resnet38 bce 2 10 2"
)

echo "bench_ratio.sh: building the criterion bench (release profile, once)" >&2
exe=$(cargo bench -p accrue-encoders --bench resnet38 --no-run --message-format=json 2>/dev/null \
  | "$python" -c 'import json,sys
for l in sys.stdin:
    d = json.loads(l)
    if d.get("reason") == "compiler-artifact" and d.get("executable") and d["target"]["name"] == "resnet38":
        print(d["executable"])')
[[ -x "$exe" ]] || { echo "bench_ratio.sh: the bench did not build (run cargo bench -p accrue-encoders --bench resnet38 --no-run)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# criterion's median of one function, in seconds, from its report line "time: [lo med hi]".
crit_median() { # file function
  "$python" - "$1" "$2" <<'EOF'
import re, sys
text, fn = open(sys.argv[1]).read(), sys.argv[2]
m = re.search(re.escape(fn) + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text)
if not m:
    sys.exit(f"no criterion result for {fn}")
scale = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
print(float(m.group(1)) * scale)
EOF
}

run_rust() { # name preset loss batch seconds threads
  local out="$tmp/rust-$1-$r.txt"
  ACCRUE_BENCH_PRESET=$2 ACCRUE_BENCH_LOSS=$3 ACCRUE_BENCH_BATCH=$4 ACCRUE_BENCH_SECONDS=$5 \
    RAYON_NUM_THREADS=$6 "$exe" --bench --noplot >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
  echo "$1 $r rust forward_eval $(crit_median "$out" forward_eval)" >>"$tmp/results"
  echo "$1 $r rust train_step $(crit_median "$out" train_step_adam)" >>"$tmp/results"
}

run_torch() { # name preset loss batch seconds threads
  local out="$tmp/torch-$1-$r.json"
  "$python" crates/accrue-encoders/benches/resnet38_torch.py --preset "$2" --loss "$3" \
    --batch "$4" --seconds "$5" --threads "$6" --reps 7 --json "$out" >/dev/null
  "$python" - "$out" "$1" "$r" >>"$tmp/results" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sys.argv[2], sys.argv[3], "torch forward_eval", d["forward_eval"])
print(sys.argv[2], sys.argv[3], "torch train_step", d["train_step_adam"])
EOF
}

: >"$tmp/results"
for ((r = 1; r <= rounds; r++)); do
  for w in "${workloads[@]}"; do
    read -r name preset loss batch seconds threads <<<"$w"
    [[ -n "$only" && "$name" != "$only"* ]] && continue
    echo "bench_ratio.sh: round $r/$rounds, $name" >&2
    if ((r % 2)); then
      run_rust "$name" "$preset" "$loss" "$batch" "$seconds" "$threads"
      run_torch "$name" "$preset" "$loss" "$batch" "$seconds" "$threads"
    else
      run_torch "$name" "$preset" "$loss" "$batch" "$seconds" "$threads"
      run_rust "$name" "$preset" "$loss" "$batch" "$seconds" "$threads"
    fi
  done
done

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
"$python" - "$tmp/results" "$cpu" "$(nproc)" "$(uptime)" "$json" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(dict)
for line in open(sys.argv[1]):
    name, r, side, what, t = line.split()
    rows[(name, what)].setdefault(side, {})[int(r)] = float(t)
print(f"CPU: {sys.argv[2]}, {sys.argv[3]} cores; {sys.argv[4].strip()}")
print("| workload | accrue flex (median) | PyTorch (median) | PyTorch ÷ accrue, per round |")
print("|---|---:|---:|---|")
out = []
for (name, what), sides in sorted(rows.items()):
    rust, torch = sides.get("rust", {}), sides.get("torch", {})
    ratios = [torch[r] / rust[r] for r in sorted(rust) if r in torch]
    rs = ", ".join(f"{x:.2f}" for x in ratios)
    print(f"| {name} {what} | {statistics.median(rust.values()):.4f} s | "
          f"{statistics.median(torch.values()):.4f} s | {rs} |")
    out.append({"workload": name, "what": what, "accrue_s": rust, "torch_s": torch, "ratios": ratios})
if sys.argv[5]:
    with open(sys.argv[5], "w") as f:
        json.dump({"cpu": sys.argv[2], "cores": int(sys.argv[3]), "results": out}, f, indent=1)
EOF
