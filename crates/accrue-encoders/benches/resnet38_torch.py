#!/usr/bin/env python3
"""PyTorch reference timing for `benches/resnet38.rs`: full-size PANNs ResNet-38, eval forward
and one training step (BCE + backward + Adam) on a batch of 10-s clips at 32 kHz, CPU.
`--preset resnet38-tiny --loss ce` times the main job's encoder with task A's loss (16 classes),
as `ACCRUE_BENCH_PRESET=resnet38-tiny ACCRUE_BENCH_LOSS=ce` does on the Rust side;
`scripts/bench_ratio.sh` runs both interleaved.

Uses the reference model of `tools/goldens/encoders.py` (torch==2.9.0, torchlibrosa==0.1.0).
Run from the repository root with the same thread count as the Rust bench:
    python crates/accrue-encoders/benches/resnet38_torch.py --batch 8 --threads 2
Prints the median time per iteration; divide by the criterion median for the ratio.

On a GPU (`scripts/gpu_check.sh`): `--device cuda` (each iteration ends with
`torch.cuda.synchronize()`); `--precision tf32` lets matmuls and convolutions use TF32,
`--precision bf16` runs the forward under `torch.autocast(dtype=torch.bfloat16)`; `--json FILE`
also writes the medians as JSON.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "goldens"))
from encoders import PANNS_FE, ResNet38  # noqa: E402


def timeit(fn, reps, sync):
    for _ in range(3):  # warm-up (cuDNN picks its algorithms on the first calls)
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
    ap.add_argument("--preset", choices=["resnet38", "resnet38-tiny"], default="resnet38")
    ap.add_argument("--loss", choices=["bce", "ce"], default="bce")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    autocast = (
        (lambda: torch.autocast(dev.type, dtype=torch.bfloat16))
        if args.precision == "bf16"
        else contextlib.nullcontext
    )
    if args.preset == "resnet38":
        model = ResNet38(PANNS_FE).to(dev)
    else:  # ResNet38Config::tiny() with the main job's 16 classes
        model = ResNet38(PANNS_FE, widths=(8, 16, 32, 64), after=64, classes=16,
                         layers=(1, 1, 1, 1)).to(dev)
    classes = model.fc_audioset.out_features
    wave = (torch.rand(args.batch, args.seconds * 32000) - 0.5).to(dev)
    if args.loss == "bce":
        target = (torch.rand(args.batch, classes) > 0.5).float().to(dev)
    else:
        target = torch.randint(0, classes, (args.batch,)).to(dev)

    model.eval()

    def forward():
        with torch.no_grad(), autocast():
            model(wave)

    fwd = timeit(forward, args.reps, sync)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        with autocast():
            out = model(wave)
        if args.loss == "bce":
            loss = F.binary_cross_entropy(out["clipwise_output"].float(), target)
        else:
            loss = F.cross_entropy(out["logits"].float(), target)
        loss.backward()
        opt.step()

    train = timeit(step, args.reps, sync)
    where = torch.cuda.get_device_name(dev) if cuda else f"threads {args.threads}"
    print(
        f"torch {torch.__version__}, {where}, {args.precision}, {args.preset}, {args.loss}, "
        f"batch {args.batch} x {args.seconds} s"
    )
    print(f"forward_eval    median {fwd:.4f} s")
    print(f"train_step_adam median {train:.4f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "torch": torch.__version__,
                    "device": where,
                    "precision": args.precision,
                    "preset": args.preset,
                    "loss": args.loss,
                    "batch": args.batch,
                    "seconds": args.seconds,
                    "forward_eval": fwd,
                    "train_step_adam": train,
                },
                f,
            )


if __name__ == "__main__":
    main()
