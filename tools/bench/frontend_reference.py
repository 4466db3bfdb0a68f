#!/usr/bin/env python3
"""The reference side of benches/frontend.rs: the same workloads in PyTorch/torchlibrosa and
librosa, with the same thread count. Run by hand, never in CI:

    ../venv/bin/python tools/bench/frontend_reference.py --threads 2

Workloads (identical to the criterion bench):
  logmel          PANNs log-mel (torchlibrosa Spectrogram + LogmelFilterBank, n_fft 1024, hop 320,
                  64 mels 50-14000 Hz) of a batch of 32 x 10-s clips at 32 kHz, eval mode, no grad.
  decode_resample librosa.load(path, sr=32000, mono=True) of every regular .oga file of the
                  Debian sound-theme-freedesktop package (scripts/fetch_audio_fixtures.sh).
Prints the median time of each in seconds; docs/benchmarks.md records them with the Rust medians.
"""

import argparse
import glob
import os
import statistics
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    import librosa
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    torch.set_num_threads(args.threads)
    batch, length = 32, 320_000
    i = np.arange(batch * length)
    t = (i % length) / 32000.0
    x = (0.3 * np.sin(2 * np.pi * (220.0 + (i // length) * 40.0) * t)
         + 0.01 * (((i * 7919) % 1000) / 1000.0 - 0.5)).astype(np.float32).reshape(batch, length)
    x = torch.from_numpy(x)
    spec = Spectrogram(n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True,
                       pad_mode="reflect", freeze_parameters=True).eval()
    logmel = LogmelFilterBank(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000, ref=1.0,
                              amin=1e-10, top_db=None, freeze_parameters=True).eval()

    def run_logmel():
        with torch.no_grad():
            logmel(spec(x))

    t_logmel = median_time(run_logmel, args.repeats)
    print(f"logmel/torchlibrosa/32x10s: {t_logmel:.4f} s  ({batch / t_logmel:.1f} clips/s)"
          f"  threads={torch.get_num_threads()} torch={torch.__version__}")

    data = os.environ.get("ACCRUE_DATA_DIR", os.path.join(ROOT, "data"))
    files = sorted(f for f in glob.glob(os.path.join(data, "sound-theme-freedesktop/stereo/*.oga"))
                   if not os.path.islink(f))
    if not files:
        print("decode_resample: skipped (run scripts/fetch_audio_fixtures.sh)")
        return

    def run_load():
        for f in files:
            librosa.load(f, sr=32000, mono=True)

    t_load = median_time(run_load, args.repeats)
    print(f"decode_resample/librosa.load(sr=32000)/{len(files)} files: {t_load:.4f} s"
          f"  librosa={librosa.__version__}")


if __name__ == "__main__":
    main()
