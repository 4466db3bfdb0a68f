"""The Python package against the Rust side: a real (tiny) run trained by the `accrue` binary,
loaded and scored from Python, compared with `accrue encode` on the same files.

Needs the `accrue` binary (`ACCRUE_BIN`, default `$CARGO_TARGET_DIR/debug/accrue`) and the
package built into the running interpreter (`scripts/test_python.sh` does both). The HEAR
module's tests run only where torch is installed (not in CI: see the README).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

import accrue

RATE = 32_000
CLASSES = ["bird", "dog", "siren"]
DIM = 16


def accrue_bin() -> str:
    b = os.environ.get("ACCRUE_BIN")
    if not b:
        target = os.environ.get("CARGO_TARGET_DIR", str(Path(__file__).parents[3] / "target"))
        b = str(Path(target) / "debug" / "accrue")
    if not Path(b).is_file():
        pytest.fail(f"the accrue binary is missing at {b}: build it (cargo build -p accrue-cli) "
                    "or set ACCRUE_BIN")
    return b


def run_accrue(*args, cwd: Path) -> str:
    p = subprocess.run([accrue_bin(), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, f"accrue {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """16-bit PCM as PANNs (and accrue's decoder) read it: int16 / 32767."""
    with wave.open(str(path), "rb") as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return (x.astype(np.float64) / 32767.0).astype(np.float32), w.getframerate()


def read_arrays(path: Path) -> tuple[dict, dict]:
    """A safetensors file of f32 arrays (accrue's array format), without extra packages."""
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for k, v in header.items():
        assert v["dtype"] == "F32"
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s : 8 + n + e], dtype=np.float32).reshape(v["shape"])
    return out, meta


def tone(i: int, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    cls = i % len(CLASSES)
    f = 300.0 + 250.0 * cls + 10.0 * i
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(i)
    return (0.3 * np.sin(2 * math.pi * f * t) + 0.01 * rng.standard_normal(t.size)).astype(
        np.float32
    )


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> dict:
    """Trains A → AT on synthetic clips with the real trainer (a few steps)."""
    d = tmp_path_factory.mktemp("run")
    (d / "clips").mkdir()
    train, valid, table = [], [], {}
    for i in range(12):
        write_wav(d / "clips" / f"c{i}.wav", tone(i), RATE)
        caption = f"a {CLASSES[i % 3]} sound number {i}"
        rng = np.random.default_rng(100 + i)
        table[caption] = rng.standard_normal(DIM).round(4).tolist()
        row = {"audio": f"clips/c{i}.wav", "id": f"c{i}", "labels": [CLASSES[i % 3]],
               "captions": [caption]}
        (train if i < 9 else valid).append(json.dumps(row))
    (d / "train.jsonl").write_text("\n".join(train) + "\n")
    (d / "valid.jsonl").write_text("\n".join(valid) + "\n")
    (d / "text.json").write_text(json.dumps({"dim": DIM, "entries": table}))
    stage = """
[[stages]]
name = "{name}"
strategy = {{ kind = "{kind}" }}
epochs = 1
batch_size = 4
crop_seconds = 0.5
seed = 7
[stages.optimizer]
lr = 1e-3
[[stages.tasks]]
kind = "{task}"
manifest = "train.jsonl"
valid_manifest = "valid.jsonl"
{extra}
"""
    text = (
        'name = "py"\noutput_dir = "out"\n[encoder]\npreset = "resnet38-tiny"\nnum_classes = 3\n'
        f"[head]\nhidden = 32\noutput = {DIM}\n"
        + stage.format(name="A", kind="finetune", task="A", extra="")
        + stage.format(name="AT", kind="lwf", task="AT", extra='supervision = "text.json"')
    )
    (d / "exp.toml").write_text(text)
    run_accrue("train", "exp.toml", cwd=d)
    stages = sorted((d / "out" / "stages").glob("*.safetensors"))
    assert [s.name for s in stages] == ["0-A.safetensors", "1-AT.safetensors"]
    return {"dir": d, "model": stages[-1], "clips": sorted((d / "clips").glob("*.wav"))}


def test_load_reads_the_encoder_from_the_run_folder(run):
    enc = accrue.Encoder.load(run["model"])
    assert enc.preset == "resnet38-tiny"
    assert enc.sample_rate == 32_000
    assert enc.embedding_dim == 64
    assert enc.num_classes == 3
    assert enc.heads == {"at": DIM}
    assert enc.frame_hop_seconds == pytest.approx(0.32)


def test_embeddings_equal_the_rust_cli_on_the_same_files(run):
    enc = accrue.Encoder.load(run["model"])
    files = run["clips"]
    out = run["dir"] / "encode.safetensors"
    run_accrue("encode", run["model"], *files, "--out", out, cwd=run["dir"])
    rust, meta = read_arrays(out)
    assert json.loads(meta["files"]) == [str(f) for f in files]
    audio = np.stack([read_wav(f)[0] for f in files])
    for output, key in [("embedding", "embedding"), ("at", "g_AT"), ("logits", "logits")]:
        py = enc.embed(audio, RATE, output=output)
        assert py.dtype == np.float32 and py.shape == rust[key].shape
        # Same decoder scaling, same resampler, same forward: equal up to the rounding of
        # int16 / 32767 (f64 here, f32·f64 in the decoder); observed: bit-identical.
        np.testing.assert_allclose(py, rust[key], rtol=1e-5, atol=1e-6)


def test_resampling_to_the_model_rate_matches_the_rust_decoder(run):
    enc = accrue.Encoder.load(run["model"])
    rate = 48_000
    x = tone(5, seconds=1.5, rate=rate)
    path = run["dir"] / "c48k.wav"
    write_wav(path, x, rate)
    out = run["dir"] / "encode48k.safetensors"
    run_accrue("encode", run["model"], path, "--out", out, cwd=run["dir"])
    rust, _ = read_arrays(out)
    audio, sr = read_wav(path)
    assert sr == rate
    np.testing.assert_allclose(enc.embed(audio, sr)[None], rust["embedding"], rtol=1e-5, atol=1e-6)


def test_batching_and_repeats_do_not_change_results(run):
    enc = accrue.Encoder.load(run["model"])
    audio = np.stack([tone(i) for i in range(7)])
    a = enc.embed(audio, RATE, batch_size=1)
    b = enc.embed(audio, RATE, batch_size=3)
    c = enc.embed(audio, RATE, batch_size=16)
    # Clips are never padded against each other, so only the order of float sums inside the
    # kernels could differ with the batch; observed: bit-identical on flex.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(c, enc.embed(audio, RATE, batch_size=16))
    # One clip without a batch axis is the same row.
    np.testing.assert_allclose(enc.embed(audio[2], RATE), c[2], rtol=1e-5, atol=1e-6)
    # Rows are independent: a clip's embedding does not depend on its neighbours.
    np.testing.assert_allclose(enc.embed(audio[[4, 2]], RATE)[1], c[2], rtol=1e-5, atol=1e-6)


def test_short_clips_are_zero_padded_to_one_second(run):
    enc = accrue.Encoder.load(run["model"])
    x = tone(3, seconds=0.4)
    padded = np.zeros(RATE, dtype=np.float32)
    padded[: x.size] = x
    np.testing.assert_allclose(enc.embed(x, RATE), enc.embed(padded, RATE), rtol=1e-6, atol=1e-7)


def test_frame_embeddings_shapes_and_centres(run):
    enc = accrue.Encoder.load(run["model"])
    audio = np.stack([tone(i, seconds=2.0) for i in range(2)])
    frames, centres = enc.embed_frames(audio, RATE)
    # 2 s at hop 320: 1 + 200 = 201 front-end frames, 32 per output frame → 6.
    assert frames.shape == (2, 6, 64)
    assert frames.dtype == np.float32 and (frames >= 0).all()  # fc1 + ReLU
    np.testing.assert_allclose(centres, (32 * np.arange(6) + 15.5) * 320 / RATE)
    np.testing.assert_allclose(np.diff(centres), enc.frame_hop_seconds)
    one, _ = enc.embed_frames(audio[1], RATE)
    np.testing.assert_allclose(one, frames[1], rtol=1e-5, atol=1e-6)


def test_encoder_outside_its_run_folder_needs_a_preset(run, tmp_path):
    copy = tmp_path / "model.safetensors"
    shutil.copy(run["model"], copy)
    with pytest.raises(accrue.AccrueError, match="resnet38-tiny"):
        accrue.Encoder.load(copy)
    enc = accrue.Encoder.load(copy, preset="resnet38-tiny")
    audio = np.stack([tone(i) for i in range(3)])
    np.testing.assert_array_equal(
        enc.embed(audio, RATE), accrue.Encoder.load(run["model"]).embed(audio, RATE)
    )


def test_bad_files_raise_accrue_errors_naming_them(run, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(run["model"].read_bytes()[:5000])
    with pytest.raises(accrue.AccrueError, match="truncated.safetensors"):
        accrue.Encoder.load(truncated, preset="resnet38-tiny")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(accrue.AccrueError, match="garbage.safetensors"):
        accrue.Encoder.load(garbage, preset="resnet38-tiny")
    with pytest.raises(accrue.AccrueError, match="missing.safetensors"):
        accrue.Encoder.load(tmp_path / "missing.safetensors", preset="resnet38-tiny")
    # The wrong encoder: a strict load fails with the key report.
    with pytest.raises(accrue.AccrueError, match="(?i)mismatch|shape"):
        accrue.Encoder.load(run["model"], preset="cnn14-tiny")
    with pytest.raises(ValueError, match="unknown encoder preset"):
        accrue.Encoder.load(run["model"], preset="resnet50")


def test_bad_audio_and_arguments_raise_clear_errors(run):
    enc = accrue.Encoder.load(run["model"])
    good = np.stack([tone(i) for i in range(2)])
    nan = good.copy()
    nan[1, 17] = np.nan
    with pytest.raises(accrue.AccrueError, match="row 1"):
        enc.embed(nan, RATE)
    loud = good.copy()
    loud[0, 3] = 1e30
    with pytest.raises(accrue.AccrueError, match="row 0"):
        enc.embed(loud, RATE)
    with pytest.raises(ValueError, match="integer"):
        enc.embed((good * 32767).astype(np.int16), RATE)
    with pytest.raises(ValueError, match="shape"):
        enc.embed(good[None], RATE)
    with pytest.raises(ValueError, match="no clips"):
        enc.embed(np.zeros((0, 100), np.float32), RATE)
    with pytest.raises(ValueError, match="sample rate"):
        enc.embed(good, 7)
    with pytest.raises(ValueError, match="no AV head"):
        enc.embed(good, RATE, output="av")
    with pytest.raises(ValueError, match="unknown output"):
        enc.embed(good, RATE, output="g_at")
    with pytest.raises(ValueError, match="batch_size"):
        enc.embed(good, RATE, batch_size=0)
    # Float64 input is converted, not refused.
    np.testing.assert_array_equal(enc.embed(good.astype(np.float64), RATE), enc.embed(good, RATE))


def test_hear_api(run):
    torch = pytest.importorskip("torch", reason="the HEAR module needs torch (not in CI)")
    from accrue import hear

    model = hear.load_model(str(run["model"]))
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 48_000
    assert model.scene_embedding_size == model.timestamp_embedding_size == 64
    x = torch.rand(3, 96_000) * 2 - 1
    scene = hear.get_scene_embeddings(x, model)
    assert scene.dtype == torch.float32 and scene.shape == (3, 64)
    np.testing.assert_array_equal(scene.numpy(), model.encoder.embed(x.numpy(), 48_000))
    emb, ts = hear.get_timestamp_embeddings(x, model)
    assert emb.shape == (3, 41, 64) and ts.shape == (3, 41)
    np.testing.assert_allclose(ts[0].numpy(), np.arange(41) * 50.0)
    # On the native frame centres the interpolation returns the frames themselves.
    frames, centres = model.encoder.embed_frames(x.numpy(), 48_000)
    on, grid = hear.interpolate_frames(frames, centres, 2.0, 5.0)
    for i, c in enumerate(centres):
        k = int(round(c * 1000 / 5.0))
        if abs(grid[k] - c * 1000) < 1e-6:
            np.testing.assert_allclose(on[:, k], frames[:, i], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="HEAR accepts"):
        hear.load_model(str(run["model"]), sample_rate=32_000)
    with pytest.raises(ValueError, match="default weights"):
        hear.load_model()
