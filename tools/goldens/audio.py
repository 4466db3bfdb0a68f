#!/usr/bin/env python3
"""Golden fixtures for `accrue-audio`, computed with the reference Python stack.

Run by hand (never in CI), from the repository root, in a virtual environment outside the repo:

    python3 -m venv ../venv && ../venv/bin/pip install torch==2.9.0 torchlibrosa==0.1.0 \
        librosa==0.11.0 soxr==1.1.0 soundfile==0.14.0 safetensors numpy
    scripts/fetch_audio_fixtures.sh          # the real recordings (Debian sound-theme-freedesktop)
    ../venv/bin/python tools/goldens/audio.py

Writes small files into crates/accrue-audio/tests/fixtures/audio/:
  mel.safetensors        librosa.filters.mel matrices (transposed to PANNs' melW layout)
  kernels.safetensors    selected rows of torchlibrosa's conv_real / conv_imag STFT kernels
  synthetic.safetensors  synthetic waveforms and torchlibrosa log-mels of them
  real.safetensors       symphonia-comparable decoded heads + torchlibrosa log-mels of real files
  real_sha256.txt        sha256 of each real recording (checked by the fetch script and tests)
  resample.safetensors   band-limited signals and their soxr (VHQ) resampling
  aisfx.safetensors      the aisfx package's librosa features (HTK, unit-sum, log10(1e4x+1)/9.4578)
  codecs/                tiny encoded files (WAV PCM 8/16/24/32, float, FLAC, MP3) + decodes
  meta.json              versions and parameters used
"""

import hashlib
import json
import os
import sys

import librosa
import numpy as np
import soundfile as sf
import soxr
import torch
import torchlibrosa
from safetensors.numpy import save_file
from torchlibrosa.stft import LogmelFilterBank, Spectrogram

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "accrue-audio", "tests", "fixtures", "audio")
DATA = os.environ.get("ACCRUE_DATA_DIR", os.path.join(ROOT, "data"))
REAL_DIR = os.path.join(DATA, "sound-theme-freedesktop", "stereo")
REAL_FILES = [
    "bell.oga",
    "camera-shutter.oga",
    "complete.oga",
    "dialog-warning.oga",
    "phone-incoming-call.oga",
    "trash-empty.oga",
]

torch.set_num_threads(1)


def torch_logmel(wave, sr, n_fft=1024, hop=320, n_mels=64, fmin=50.0, fmax=14000.0):
    spec = Spectrogram(n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann",
                       center=True, pad_mode="reflect", freeze_parameters=True)
    logmel = LogmelFilterBank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                              ref=1.0, amin=1e-10, top_db=None, freeze_parameters=True)
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(wave, dtype=np.float32))[None]
        return logmel(spec(x))[0, 0].numpy().astype(np.float32)  # (T, n_mels)


def mel_fixtures():
    out = {}
    for name, (sr, n_fft, n_mels, fmin, fmax, htk) in {
        "panns_32k": (32000, 1024, 64, 50.0, 14000.0, False),
        "sr16k_512_40": (16000, 512, 40, 0.0, 8000.0, False),
        "htk_22k_1024_80": (22050, 1024, 80, 20.0, 11025.0, True),
    }.items():
        m = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk)
        out[name] = np.ascontiguousarray(m.T.astype(np.float32))
    save_file(out, os.path.join(OUT, "mel.safetensors"))


def kernel_fixtures():
    spec = Spectrogram(n_fft=1024, hop_length=320, win_length=1024, window="hann",
                       center=True, pad_mode="reflect", freeze_parameters=True)
    rows = [0, 1, 7, 100, 256, 511, 512]
    real = spec.stft.conv_real.weight.detach().numpy()[rows, 0, :]
    imag = spec.stft.conv_imag.weight.detach().numpy()[rows, 0, :]
    save_file({"rows": np.array(rows, dtype=np.int64), "conv_real": np.ascontiguousarray(real),
               "conv_imag": np.ascontiguousarray(imag)},
              os.path.join(OUT, "kernels.safetensors"))


def synthetic_fixtures():
    sr, n = 32000, 16000  # 0.5 s
    t = np.arange(n) / sr
    rng = np.random.default_rng(20241125)
    sig = {
        "sine_440": 0.5 * np.sin(2 * np.pi * 440 * t),
        "two_sines": 0.3 * np.sin(2 * np.pi * 1000 * t) + 0.2 * np.sin(2 * np.pi * 6300 * t + 0.3),
        "chirp": 0.5 * np.sin(2 * np.pi * (100 * t + 0.5 * (15000 - 100) / 0.5 * t**2)),
        "noise": 0.1 * rng.standard_normal(n),
        "silence": np.zeros(n),
        "clipped": np.clip(1.8 * np.sin(2 * np.pi * 220 * t), -1.0, 1.0),
        "short_600": 0.5 * np.sin(2 * np.pi * 3000 * t[:600]),
    }
    out = {}
    for k, v in sig.items():
        v = v.astype(np.float32)
        out[f"{k}.wave"] = v
        out[f"{k}.logmel"] = torch_logmel(v, sr)
    save_file(out, os.path.join(OUT, "synthetic.safetensors"))


def real_fixtures():
    if not os.path.isdir(REAL_DIR):
        sys.exit(f"missing {REAL_DIR}: run scripts/fetch_audio_fixtures.sh first")
    out, sums = {}, []
    for f in REAL_FILES:
        path = os.path.join(REAL_DIR, f)
        with open(path, "rb") as fh:
            sums.append(f"{hashlib.sha256(fh.read()).hexdigest()}  {f}")
        wave, sr = sf.read(path, dtype="float32", always_2d=True)
        mono = wave.mean(axis=1).astype(np.float32)
        key = f.replace(".oga", "")
        out[f"{key}.head"] = np.ascontiguousarray(mono[:4096])
        out[f"{key}.info"] = np.array([sr, wave.shape[0], wave.shape[1]], dtype=np.int64)
        out[f"{key}.logmel"] = torch_logmel(mono, sr)
    save_file(out, os.path.join(OUT, "real.safetensors"))
    with open(os.path.join(OUT, "real_sha256.txt"), "w") as fh:
        fh.write("\n".join(sums) + "\n")


def resample_fixtures():
    rng = np.random.default_rng(7)
    out = {}
    for src, dst in [(44100, 32000), (48000, 32000), (22050, 32000), (16000, 32000), (96000, 44100)]:
        n = src // 4
        t = np.arange(n) / src
        # Band-limited: a few sines well inside both Nyquist bands, with a smooth fade in/out.
        top = 0.4 * min(src, dst)
        freqs = rng.uniform(50, top, size=6)
        x = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs)
        fade = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.05 * src))
        x = (x * fade).astype(np.float32)
        y = soxr.resample(x.astype(np.float64), src, dst, quality="VHQ").astype(np.float32)
        out[f"{src}_{dst}.input"] = x
        out[f"{src}_{dst}.soxr"] = y
    save_file(out, os.path.join(OUT, "resample.safetensors"))


def codec_fixtures():
    d = os.path.join(OUT, "codecs")
    os.makedirs(d, exist_ok=True)
    sr, n = 8000, 800  # 0.1 s, tiny files
    t = np.arange(n) / sr
    st = np.stack([0.6 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], axis=1)
    out = {}
    for name, fmt, subtype in [
        ("pcm_u8.wav", "WAV", "PCM_U8"),
        ("pcm_16.wav", "WAV", "PCM_16"),
        ("pcm_24.wav", "WAV", "PCM_24"),
        ("pcm_32.wav", "WAV", "PCM_32"),
        ("float.wav", "WAV", "FLOAT"),
        ("pcm_16.flac", "FLAC", "PCM_16"),
        ("mp3.mp3", "MP3", "MPEG_LAYER_III"),
    ]:
        path = os.path.join(d, name)
        sf.write(path, st, sr if fmt != "MP3" else 8000, format=fmt, subtype=subtype)
        # Reference decode: libsndfile float (÷2^(bits-1)); int16 also kept raw for PANNs' ÷32767.
        dec, _ = sf.read(path, dtype="float32", always_2d=True)
        out[name + ".mono"] = dec.mean(axis=1).astype(np.float32)
        if subtype in ("PCM_16",):
            raw, _ = sf.read(path, dtype="int16", always_2d=True)
            out[name + ".int16"] = raw.astype(np.int16).reshape(-1).astype(np.int64)
    save_file(out, os.path.join(d, "decoded.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    mel_fixtures()
    kernel_fixtures()
    synthetic_fixtures()
    resample_fixtures()
    codec_fixtures()
    real_fixtures()
    aisfx_fixtures()
    meta = {
        "torch": torch.__version__, "torchlibrosa": getattr(torchlibrosa, "__version__", "0.1.0"),
        "librosa": librosa.__version__, "soxr": soxr.__version__, "soundfile": sf.__version__,
        "libsndfile": sf.__libsndfile_version__, "numpy": np.__version__,
        "real_package": "sound-theme-freedesktop (Debian)", "real_files": REAL_FILES,
        "frontend": {"n_fft": 1024, "hop": 320, "n_mels": 64, "fmin": 50, "fmax": 14000,
                     "amin": 1e-10, "ref": 1.0, "top_db": None, "window": "hann periodic",
                     "pad": "reflect"},
    }
    with open(os.path.join(OUT, "meta.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
    print("wrote", OUT)



def aisfx_fixtures():
    """The aisfx package's librosa front end (aisfx/spectrogram/spectrogram_librosa.py +
    preprocessing.spectrogram_normalize('original')) on a synthetic clip and a real recording,
    written as [T, 96] (the layout the network takes)."""
    out = {}
    sr = 44100
    t = np.arange(sr // 2) / sr
    synth = (0.3 * np.sin(2 * np.pi * 523.25 * t) + 0.05 * np.sin(2 * np.pi * 7040 * t)).astype(np.float32)
    waves = {"synth": synth}
    path = os.path.join(REAL_DIR, "bell.oga")
    if os.path.exists(path):
        wave, wsr = sf.read(path, dtype="float32", always_2d=True)
        assert wsr == sr
        waves["bell"] = wave.mean(axis=1).astype(np.float32)
    for name, y in waves.items():
        f = np.max(np.abs(y)) or 1.0
        yn = y / f
        spec = librosa.feature.melspectrogram(y=yn, sr=sr, n_mels=96, norm=1.0, fmin=0.0, fmax=22050.0,
                                              htk=True, power=2.0, hop_length=1024, win_length=2048)
        spec = np.log10(spec * 10000.0 + 1) / 9.457798957824707
        out[f"{name}.wave"] = y
        out[f"{name}.features"] = np.ascontiguousarray(spec.T.astype(np.float32))
    save_file(out, os.path.join(OUT, "aisfx.safetensors"))


if __name__ == "__main__":
    main()
