"""accrue from Python: load an accrue audio encoder (or a stage model of a continual run) and
embed audio given as numpy arrays.

    >>> import accrue
    >>> enc = accrue.Encoder.load("runs/a-av-at-lwf/stages/2-AT.safetensors")
    >>> emb = enc.embed(audio, sample_rate=44100)       # [n, D] float32
    >>> frames, centres = enc.embed_frames(audio, 44100)  # [n, T, D], [T] seconds

`accrue.hear` implements the HEAR 2021 API on top of it (needs torch).

Inputs: `audio` is mono float audio in [-1, 1], shaped `[n, samples]` (one clip per row, all of
the same length) or `[samples]` (one clip; the result then has no batch axis). Any float
dtype is converted to float32. Each clip is resampled to the model's rate and zero-padded to
1 s when shorter, exactly as `accrue eval` and `accrue encode` embed a clip; nothing else is
padded, so `batch_size` changes only the order of floating-point sums (measured: see the
README's Python section).
"""

from __future__ import annotations

import numpy as _np

from . import _native
from ._native import AccrueError, presets

__all__ = ["AccrueError", "Encoder", "presets", "__version__"]
__version__ = _native.__version__


def _as_clips(audio) -> tuple[_np.ndarray, bool]:
    """`audio` as a C-contiguous float32 `[n, samples]` array and whether it was one clip."""
    a = _np.asarray(audio)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"audio must be numeric, got dtype {a.dtype}")
    if a.dtype.kind in "iu":
        raise ValueError(
            f"audio must be float in [-1, 1], got integer dtype {a.dtype} "
            "(divide int16 PCM by 32767, as PANNs does)"
        )
    if a.ndim == 1:
        return _np.ascontiguousarray(a[None, :], dtype=_np.float32), True
    if a.ndim != 2:
        raise ValueError(
            f"audio must be [samples] or [n, samples] (mono), got shape {a.shape}"
        )
    return _np.ascontiguousarray(a, dtype=_np.float32), False


class Encoder:
    """An accrue encoder or stage model, in eval mode on the CPU.

    Load with `Encoder.load(path, preset=None)`: any file `accrue info` understands (accrue
    safetensors: encoder, student or stage model; a PANNs PyTorch checkpoint), strictly. Without
    `preset` the encoder is read from the run folder the file belongs to.
    """

    def __init__(self, native: "_native.Encoder"):
        self._native = native

    @classmethod
    def load(cls, path, preset: str | None = None) -> "Encoder":
        return cls(_native.Encoder.load(str(path), preset))

    @property
    def sample_rate(self) -> int:
        """The model's sample rate (Hz); other rates are resampled to it."""
        return self._native.sample_rate

    @property
    def embedding_dim(self) -> int:
        """Width of the scene and frame embeddings."""
        return self._native.embedding_dim

    @property
    def num_classes(self) -> int:
        """Classes of the g^A head."""
        return self._native.num_classes

    @property
    def preset(self) -> str:
        return self._native.preset

    @property
    def path(self) -> str:
        return str(self._native.path)

    @property
    def heads(self) -> dict[str, int]:
        """The projection heads the model has (`av`, `at`) and their output widths."""
        return dict(self._native.heads)

    @property
    def frame_hop_seconds(self) -> float:
        """Seconds between frame embeddings (0.32 for PANNs)."""
        return self._native.frame_hop_seconds

    def embed(self, audio, sample_rate: int, batch_size: int = 16, output: str = "embedding"):
        """Scene embeddings `[n, D]` (or `[D]` for one clip).

        `output`: `embedding` (f_a), `av` / `at` (the projection head's output) or `logits`.
        """
        clips, single = _as_clips(audio)
        out = self._native.embed(clips, int(sample_rate), int(batch_size), output)
        return out[0] if single else out

    def embed_frames(self, audio, sample_rate: int, batch_size: int = 16):
        """Frame embeddings `[n, T, D]` and their centre times `[T]` in seconds."""
        clips, single = _as_clips(audio)
        frames, centres = self._native.embed_frames(clips, int(sample_rate), int(batch_size))
        return (frames[0] if single else frames), centres

    def __repr__(self) -> str:
        return repr(self._native)
