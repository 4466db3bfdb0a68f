"""The HEAR 2021 API (https://hearbenchmark.com/hear-api.html) over an accrue encoder, so that
the field's own harness (`hearvalidator`, `heareval`) can load and score it.

    python -m hearvalidator accrue.hear --model runs/x/stages/2-AT.safetensors

    load_model(model_file_path, preset=None, sample_rate=48000, timestamp_hop_ms=50.0)
    get_scene_embeddings(audio, model)       -> Tensor [n, D]
    get_timestamp_embeddings(audio, model)   -> (Tensor [n, T, D], Tensor [n, T] in ms)

Choices, stated:
- `sample_rate`: HEAR accepts 16000, 22050, 44100 or 48000 Hz (not the encoders' 32 kHz).
  The default is 48000 (no band lost: the PANNs front end stops at 14 kHz); audio is
  resampled to the encoder's rate inside accrue (rubato, as `accrue eval` resamples files).
- Scene embeddings are the encoder's f_a of the whole clip, exactly `Encoder.embed`.
- Timestamp embeddings: the encoder's frame embeddings (one per 0.32 s for PANNs, see
  `Encoder.embed_frames`) linearly interpolated between frame centres onto a regular grid
  of `timestamp_hop_ms` (default 50 ms, HEAR's recommended maximum), from 0 to the clip's
  end; before the first centre and after the last the nearest frame is used.
  `timestamp_hop_ms=None` returns the native frames and their centres.

Needs torch (imported here only); inputs on any device are embedded on the CPU and returned on
the input's device.
"""

from __future__ import annotations

import numpy as np
import torch

from . import Encoder

__all__ = [
    "AccrueHearModel",
    "load_model",
    "get_scene_embeddings",
    "get_timestamp_embeddings",
]

HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)


class AccrueHearModel(torch.nn.Module):
    """A loaded accrue encoder with the attributes the HEAR API requires."""

    def __init__(self, encoder: Encoder, sample_rate: int, timestamp_hop_ms: float | None):
        super().__init__()
        self.encoder = encoder
        self.sample_rate = int(sample_rate)
        self.scene_embedding_size = encoder.embedding_dim
        self.timestamp_embedding_size = encoder.embedding_dim
        self.timestamp_hop_ms = timestamp_hop_ms

    def extra_repr(self) -> str:
        return (
            f"encoder={self.encoder!r}, sample_rate={self.sample_rate}, "
            f"timestamp_hop_ms={self.timestamp_hop_ms}"
        )


def load_model(
    model_file_path: str = "",
    preset: str | None = None,
    sample_rate: int = 48000,
    timestamp_hop_ms: float | None = 50.0,
) -> AccrueHearModel:
    """Loads an accrue model file (see `accrue.Encoder.load`). `preset` is needed only for a
    file outside a run folder (heareval: `--model-options '{"preset": "resnet38"}'`)."""
    if not model_file_path:
        raise ValueError(
            "accrue ships no default weights: pass the model file (a stage model of a run, "
            "an encoder safetensors or a PANNs .pth)"
        )
    if int(sample_rate) not in HEAR_SAMPLE_RATES:
        raise ValueError(
            f"sample_rate {sample_rate} is not one HEAR accepts {HEAR_SAMPLE_RATES}"
        )
    if timestamp_hop_ms is not None and not timestamp_hop_ms > 0:
        raise ValueError(f"timestamp_hop_ms must be > 0 or None, got {timestamp_hop_ms}")
    return AccrueHearModel(Encoder.load(model_file_path, preset), sample_rate, timestamp_hop_ms)


def _check(audio, model) -> np.ndarray:
    if not isinstance(model, AccrueHearModel):
        raise TypeError(f"model must come from accrue.hear.load_model, got {type(model)}")
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"audio must be a torch.Tensor, got {type(audio)}")
    if audio.ndim != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples], got shape {tuple(audio.shape)}")
    return audio.detach().to("cpu", torch.float32).contiguous().numpy()


def get_scene_embeddings(audio: torch.Tensor, model: AccrueHearModel) -> torch.Tensor:
    """`[n_sounds, n_samples]` at `model.sample_rate` → `[n_sounds, scene_embedding_size]`."""
    clips = _check(audio, model)
    emb = model.encoder.embed(clips, model.sample_rate)
    return torch.from_numpy(emb).to(audio.device)


def interpolate_frames(
    frames: np.ndarray, centres_s: np.ndarray, duration_s: float, hop_ms: float
) -> tuple[np.ndarray, np.ndarray]:
    """Frames `[n, T, D]` centred at `centres_s` (seconds) → `[n, K, D]` on the grid
    `0, hop, 2·hop, … ≤ duration` (ms), linear between centres, nearest beyond them."""
    grid_ms = np.arange(0.0, duration_s * 1000.0 + 1e-9, hop_ms)
    c_ms = np.asarray(centres_s, dtype=np.float64) * 1000.0
    if len(c_ms) == 1:
        out = np.repeat(frames[:, :1, :], len(grid_ms), axis=1)
        return out.astype(np.float32), grid_ms
    t = np.clip(grid_ms, c_ms[0], c_ms[-1])
    hi = np.clip(np.searchsorted(c_ms, t, side="right"), 1, len(c_ms) - 1)
    lo = hi - 1
    w = ((t - c_ms[lo]) / (c_ms[hi] - c_ms[lo]))[None, :, None]
    out = (1.0 - w) * frames[:, lo, :] + w * frames[:, hi, :]
    return out.astype(np.float32), grid_ms


def get_timestamp_embeddings(
    audio: torch.Tensor, model: AccrueHearModel
) -> tuple[torch.Tensor, torch.Tensor]:
    """`[n_sounds, n_samples]` → (`[n_sounds, n_timestamps, D]`, timestamps `[n_sounds,
    n_timestamps]` in milliseconds)."""
    clips = _check(audio, model)
    frames, centres = model.encoder.embed_frames(clips, model.sample_rate)
    if model.timestamp_hop_ms is None:
        emb, ts = frames, np.asarray(centres) * 1000.0
    else:
        duration = clips.shape[1] / model.sample_rate
        emb, ts = interpolate_frames(frames, centres, duration, model.timestamp_hop_ms)
    ts = np.broadcast_to(ts.astype(np.float32), emb.shape[:2]).copy()
    return (
        torch.from_numpy(np.ascontiguousarray(emb)).to(audio.device),
        torch.from_numpy(ts).to(audio.device),
    )
