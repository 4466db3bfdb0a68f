#!/usr/bin/env python3
"""PyTorch reference timing for `benches/resnet38.rs`: full-size PANNs ResNet-38, eval forward
and one training step (BCE + backward + Adam) on a batch of 10-s clips at 32 kHz, CPU.

Uses the reference model of `tools/goldens/encoders.py` (torch==2.9.0, torchlibrosa==0.1.0).
Run from the repository root with the same thread count as the Rust bench:
    python crates/accrue-encoders/benches/resnet38_torch.py --batch 8 --threads 2
Prints the median time per iteration; divide by the criterion median for the ratio.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "goldens"))
from encoders import PANNS_FE, ResNet38  # noqa: E402


def timeit(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ResNet38(PANNS_FE)
    wave = torch.rand(args.batch, 320000) - 0.5
    target = (torch.rand(args.batch, 527) > 0.5).float()

    model.eval()

    def forward():
        with torch.no_grad():
            model(wave)

    fwd = timeit(forward, args.reps)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        loss = F.binary_cross_entropy(model(wave)["clipwise_output"], target)
        loss.backward()
        opt.step()

    train = timeit(step, args.reps)
    print(f"torch {torch.__version__}, threads {args.threads}, batch {args.batch} x 10 s")
    print(f"forward_eval    median {fwd:.3f} s")
    print(f"train_step_adam median {train:.3f} s")


if __name__ == "__main__":
    main()
