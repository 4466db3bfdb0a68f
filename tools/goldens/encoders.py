#!/usr/bin/env python3
"""Golden fixtures for `accrue-encoders` (PANNs ResNet-38, Cnn14/10/6, aisfx).

What it writes (into `crates/accrue-encoders/tests/fixtures/encoders/`, all small):

* `resnet38_small.pth` (torch zip format) and `resnet38_small_legacy.pth` (legacy, pre-1.6
  pickle, `_use_new_zipfile_serialization=False`): a random-init ResNet-38 with the exact
  PANNs topology (ConvBlock + [3, 4, 6, 3] basic blocks + ConvBlock after, same key names as
  `ResNet38_mAP=0.434.pth`), at reduced width (stage widths 2/4/8/16, after-block 32, fc 32,
  10 classes) and a reduced front end (8 kHz, n_fft 128, hop 32, 32 mels, 50-4000 Hz). Saved as
  `{'iteration': 0, 'model': state_dict}` like the released checkpoints.
* `resnet38_small_broken.pth` (legacy format): the same state dict with one renamed key, one removed key and
  one wrongly-shaped tensor (for the refusal test).
* `cnn14_small.pth` (zip): random-init Cnn14 (widths 2..64, fc 64), same front end.
* `<model>_io.safetensors` + `<model>_io.json`: eval-mode inputs/outputs (waveform, bn0 output,
  embedding, clipwise output) and one training step (train mode, every dropout p = 0, BN in
  train mode, SpecAugment off; loss = mean binary cross-entropy of the clipwise output against
  fixed targets): the loss, the gradients of `conv_block1.conv1.weight`, of one BN weight and
  of `fc1.weight` (PyTorch layout [out, in]), and one BN running variance after the step.
* `aisfx_io.safetensors` + `aisfx_io.json`: the real `aisfx==0.1.2` network (weights from the
  package's own `checkpoint.pth`), its input blocks (normalised log-mel, [B, 100, 96]), the
  512-d embeddings the package's PyTorch model gives, and the logits of two heads.

It also asserts that the full-size PyTorch ResNet-38 reference has exactly 73,783,247
trainable parameters (method-spec §1.6) and that the full-size Cnn14 reference has the same
state-dict keys and shapes as `panns_hear.models.Cnn14`.

Requirements (developer machine only, never CI):
    python 3.11, torch==2.9.0, torchlibrosa==0.1.0, librosa==0.11.0, numpy, safetensors,
    soundfile, panns-hear==0.2.1 (--no-deps), aisfx==0.1.2 (--no-deps)

Run from the repository root:
    python tools/goldens/encoders.py            # writes the fixtures
    python tools/goldens/encoders.py --full DIR # also writes a full-size ResNet-38 checkpoint
                                                # (~300 MB, never commit) + outputs into DIR
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import save_file
from torchlibrosa.stft import LogmelFilterBank, Spectrogram

OUT = Path(__file__).resolve().parents[2] / "crates" / "accrue-encoders" / "tests" / "fixtures" / "encoders"


# --------------------------------------------------------------------------------------------
# PANNs building blocks (qiuqiangkong/audioset_tagging_cnn:pytorch/models.py), parametrised.
# --------------------------------------------------------------------------------------------


def init_layer(layer):
    nn.init.xavier_uniform_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        layer.bias.data.fill_(0.0)


def init_bn(bn):
    bn.bias.data.fill_(0.0)
    bn.weight.data.fill_(1.0)


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, (3, 3), (1, 1), (1, 1), bias=False)
        self.conv2 = nn.Conv2d(cout, cout, (3, 3), (1, 1), (1, 1), bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)
        init_layer(self.conv1)
        init_layer(self.conv2)
        init_bn(self.bn1)
        init_bn(self.bn2)

    def forward(self, x, pool_size=(2, 2)):
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class ConvBlock5x5(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, (5, 5), (1, 1), (2, 2), bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        init_layer(self.conv1)
        init_bn(self.bn1)

    def forward(self, x, pool_size=(2, 2)):
        x = F.relu_(self.bn1(self.conv1(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class BasicBlock(nn.Module):
    """`_ResnetBasicBlock` (expansion 1)."""

    def __init__(self, inplanes, planes, stride, downsample, p_block):
        super().__init__()
        self.stride = stride
        self.p_block = p_block
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        init_layer(self.conv1)
        init_bn(self.bn1)
        init_layer(self.conv2)
        init_bn(self.bn2)
        nn.init.constant_(self.bn2.weight, 0)

    def forward(self, x):
        identity = x
        out = F.avg_pool2d(x, kernel_size=(2, 2)) if self.stride == 2 else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = F.dropout(out, p=self.p_block, training=self.training)
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(identity)
        return self.relu(out + identity)


class ResNetBody(nn.Module):
    def __init__(self, widths, layers, p_block):
        super().__init__()
        self.inplanes = widths[0]
        self.layer1 = self._make(widths[0], layers[0], 1, p_block)
        self.layer2 = self._make(widths[1], layers[1], 2, p_block)
        self.layer3 = self._make(widths[2], layers[2], 2, p_block)
        self.layer4 = self._make(widths[3], layers[3], 2, p_block)

    def _make(self, planes, blocks, stride, p_block):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            if stride == 1:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes))
                init_layer(downsample[0])
                init_bn(downsample[1])
            else:
                downsample = nn.Sequential(
                    nn.AvgPool2d(kernel_size=2), nn.Conv2d(self.inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
                )
                init_layer(downsample[1])
                init_bn(downsample[2])
        mods = [BasicBlock(self.inplanes, planes, stride, downsample, p_block)]
        self.inplanes = planes
        for _ in range(1, blocks):
            mods.append(BasicBlock(planes, planes, 1, None, p_block))
        return nn.Sequential(*mods)

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def add_front_end(owner, fe):
    """Registers the PANNs front-end modules on `owner` (same key names as PANNs)."""
    owner.spectrogram_extractor = Spectrogram(
        n_fft=fe["window"], hop_length=fe["hop"], win_length=fe["window"], window="hann",
        center=True, pad_mode="reflect", freeze_parameters=True,
    )
    owner.logmel_extractor = LogmelFilterBank(
        sr=fe["sr"], n_fft=fe["window"], n_mels=fe["mels"], fmin=fe["fmin"], fmax=fe["fmax"],
        ref=1.0, amin=1e-10, top_db=None, freeze_parameters=True,
    )
    owner.bn0 = nn.BatchNorm2d(fe["mels"])
    init_bn(owner.bn0)


def front(owner, wave):
    x = owner.logmel_extractor(owner.spectrogram_extractor(wave))
    x = owner.bn0(x.transpose(1, 3)).transpose(1, 3)
    # SpecAugment is deliberately not applied (train-step goldens run with it off).
    return x


def head(owner, x, p_final):
    x = torch.mean(x, dim=3)
    x = torch.max(x, dim=2)[0] + torch.mean(x, dim=2)
    x = F.dropout(x, p=p_final, training=owner.training)
    x = F.relu_(owner.fc1(x))
    embedding = F.dropout(x, p=p_final, training=owner.training)
    logits = owner.fc_audioset(x)
    return {"embedding": embedding, "clipwise_output": torch.sigmoid(logits), "logits": logits}


class ResNet38(nn.Module):
    def __init__(self, fe, widths=(64, 128, 256, 512), after=2048, classes=527, p_stage=0.2, p_block=0.1, p_final=0.5,
                 layers=(3, 4, 6, 3)):
        super().__init__()
        add_front_end(self, fe)
        self.p_stage, self.p_final = p_stage, p_final
        self.conv_block1 = ConvBlock(1, widths[0])
        self.resnet = ResNetBody(widths, list(layers), p_block)
        self.conv_block_after1 = ConvBlock(widths[3], after)
        self.fc1 = nn.Linear(after, after, bias=True)
        self.fc_audioset = nn.Linear(after, classes, bias=True)
        init_layer(self.fc1)
        init_layer(self.fc_audioset)

    def forward(self, wave):
        x = front(self, wave)
        bn0_out = x
        x = self.conv_block1(x, (2, 2))
        x = F.dropout(x, p=self.p_stage, training=self.training)
        x = self.resnet(x)
        x = F.avg_pool2d(x, kernel_size=(2, 2))
        x = F.dropout(x, p=self.p_stage, training=self.training)
        x = self.conv_block_after1(x, (1, 1))
        x = F.dropout(x, p=self.p_stage, training=self.training)
        out = head(self, x, self.p_final)
        out["bn0_out"] = bn0_out
        return out


class Cnn14(nn.Module):
    def __init__(self, fe, widths=(64, 128, 256, 512, 1024, 2048), classes=527, p_stage=0.2, p_final=0.5,
                 last_pool=(1, 1)):
        super().__init__()
        add_front_end(self, fe)
        self.p_stage, self.p_final, self.last_pool = p_stage, p_final, last_pool
        cin = 1
        for i, w in enumerate(widths):
            setattr(self, f"conv_block{i + 1}", ConvBlock(cin, w))
            cin = w
        self.n_blocks = len(widths)
        self.fc1 = nn.Linear(cin, cin, bias=True)
        self.fc_audioset = nn.Linear(cin, classes, bias=True)
        init_layer(self.fc1)
        init_layer(self.fc_audioset)

    def forward(self, wave):
        x = front(self, wave)
        bn0_out = x
        for i in range(self.n_blocks):
            pool = self.last_pool if i == self.n_blocks - 1 else (2, 2)
            x = getattr(self, f"conv_block{i + 1}")(x, pool)
            x = F.dropout(x, p=self.p_stage, training=self.training)
        out = head(self, x, self.p_final)
        out["bn0_out"] = bn0_out
        return out


class Cnn6(Cnn14):
    def __init__(self, fe, widths=(64, 128, 256, 512), classes=527):
        nn.Module.__init__(self)
        add_front_end(self, fe)
        self.p_stage, self.p_final, self.last_pool = 0.2, 0.5, (2, 2)
        cin = 1
        for i, w in enumerate(widths):
            setattr(self, f"conv_block{i + 1}", ConvBlock5x5(cin, w))
            cin = w
        # PANNs Cnn6 pools 2x2 after every block, the last one included.
        self.n_blocks = len(widths)
        self.fc1 = nn.Linear(cin, cin, bias=True)
        self.fc_audioset = nn.Linear(cin, classes, bias=True)
        init_layer(self.fc1)
        init_layer(self.fc_audioset)


PANNS_FE = dict(sr=32000, window=1024, hop=320, mels=64, fmin=50, fmax=14000)
SMALL_FE = dict(sr=8000, window=128, hop=32, mels=32, fmin=50, fmax=4000)
FRONT_END_KEYS = ("spectrogram_extractor.", "logmel_extractor.")


def trainable(model):
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not n.startswith(FRONT_END_KEYS))


def randomise_bn(model, gen):
    """Random affine parameters and running statistics so that no path is trivially zero."""
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                if name == "bn0":
                    m.running_mean.copy_(-40.0 + 5.0 * torch.randn(c, generator=gen))
                    m.running_var.copy_(200.0 + 50.0 * torch.rand(c, generator=gen))
                else:
                    m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                    m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(7)


def test_wave(gen, batch, length, sr):
    t = torch.arange(length, dtype=torch.float64) / sr
    rows = []
    for b in range(batch):
        f0 = 220.0 * (b + 1)
        chirp = torch.sin(2 * np.pi * (f0 * t + 300.0 * t * t))
        noise = torch.randn(length, generator=gen, dtype=torch.float64) * 0.05
        rows.append(0.5 * chirp + noise)
    return torch.stack(rows).float()


def legacy_bytes(obj):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def golden(name, model, wave, grads, bn_running, classes):
    """Eval outputs and one train step (every dropout p = 0 in `model`)."""
    tensors = {"wave": wave.numpy()}
    model.eval()
    with torch.no_grad():
        out = model(wave)
    tensors["bn0_out"] = out["bn0_out"].numpy()
    tensors["embedding"] = out["embedding"].numpy()
    tensors["clipwise_output"] = out["clipwise_output"].numpy()

    model.train()
    gen = torch.Generator().manual_seed(11)
    target = (torch.rand(wave.shape[0], classes, generator=gen) > 0.5).float()
    tensors["train_target"] = target.numpy()
    model.zero_grad()
    out = model(wave)
    loss = F.binary_cross_entropy(out["clipwise_output"], target)
    loss.backward()
    tensors["train_embedding"] = out["embedding"].detach().numpy()
    params = dict(model.named_parameters())
    for key in grads:
        tensors["grad." + key] = params[key].grad.numpy().copy()
    buffers = dict(model.named_buffers())
    tensors["after." + bn_running] = buffers[bn_running].numpy().copy()
    meta = {"loss": float(loss.item()), "grads": list(grads), "bn_running": bn_running}
    model.eval()
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, str(OUT / f"{name}_io.safetensors"))
    return meta


def make_resnet_small():
    torch.manual_seed(1234)
    model = ResNet38(SMALL_FE, widths=(2, 4, 8, 16), after=32, classes=10, p_stage=0.0, p_block=0.0, p_final=0.0)
    randomise_bn(model, torch.Generator().manual_seed(99))
    return model


def make_cnn14_small():
    torch.manual_seed(4321)
    model = Cnn14(SMALL_FE, widths=(2, 4, 8, 16, 32, 64), classes=10, p_stage=0.0, p_final=0.0)
    randomise_bn(model, torch.Generator().manual_seed(98))
    return model


def check_full_size():
    resnet = ResNet38(PANNS_FE)
    n = trainable(resnet)
    assert n == 73_783_247, n
    sd = resnet.state_dict()
    assert len(sd) == 246, len(sd)
    total = sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k)
    assert total == 74_866_703, total
    counts = {"resnet38": n}
    del resnet, sd

    from panns_hear.models import Cnn14 as PannsCnn14

    ref = PannsCnn14(32000, 1024, 320, 64, 50, 14000, 527)
    mine = Cnn14(PANNS_FE)
    a = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    assert a == b, set(a.items()) ^ set(b.items())
    # Same seed, same init order -> same weights -> same outputs.
    torch.manual_seed(5)
    ref = PannsCnn14(32000, 1024, 320, 64, 50, 14000, 527).eval()
    torch.manual_seed(5)
    mine = Cnn14(PANNS_FE).eval()
    wave = torch.randn(1, 32000) * 0.1
    with torch.no_grad():
        d = (ref(wave)["embedding"] - mine(wave)["embedding"]).abs().max().item()
    assert d == 0.0, d
    counts["cnn14"] = trainable(mine)
    del ref, mine
    counts["cnn10"] = trainable(Cnn14(PANNS_FE, widths=(64, 128, 256, 512), last_pool=(2, 2)))
    counts["cnn6"] = trainable(Cnn6(PANNS_FE))
    return counts


def aisfx_golden():
    import aisfx
    from aisfx.models.cnn2d import CrossNet, EmbeddingNet
    from aisfx.preprocessing import blocking, spectrogram_normalize

    ckpt = Path(aisfx.__file__).parent / "models" / "checkpoint.pth"
    weights, ds_dict = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = CrossNet(EmbeddingNet("max", 3, 1, 64), ds_dict, "cpu")
    model.load_state_dict(weights)
    model.eval()

    # A real-ish input: the package's own librosa front end on a synthetic 5 s clip at 44.1 kHz.
    # (`spectrogram_librosa.compute_spectrogram` returns [mels, frames]; the network wants
    # [frames, mels], as the Essentia path gives, so it is transposed here.)
    import librosa

    sr = 44100
    gen = torch.Generator().manual_seed(3)
    y = test_wave(gen, 1, 5 * sr, sr)[0].numpy().astype(np.float64)
    y = y / np.max(np.abs(y))
    spec = librosa.feature.melspectrogram(
        y=y, sr=sr, n_mels=96, norm=1.0, fmin=0.0, fmax=22050.0, htk=True, power=2.0,
        hop_length=1024, win_length=2048,
    )
    spec = np.log10(spec * 10000.0 + 1).T
    spec = spectrogram_normalize(spec, spec_norm="original")
    blocks = blocking(spec, block_size=100, hop_size=50, drop_partial_block=True).astype(np.float32)
    x = torch.from_numpy(blocks)
    with torch.no_grad():
        emb = model.get_embedding(x)
        first = model.fc[0](emb)
        last = model.fc[len(ds_dict) - 1](emb)
    save_file(
        {"input": blocks, "embedding": emb.numpy(), "head0_logits": first.numpy(), "head_last_logits": last.numpy()},
        str(OUT / "aisfx_io.safetensors"),
    )
    names = sorted(ds_dict, key=lambda k: int(ds_dict[k][0]))
    return {"heads": [[n, int(ds_dict[n][1])] for n in names], "input_shape": list(blocks.shape)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", type=Path, default=None, help="also write a full-size ResNet-38 + outputs here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "front_end": SMALL_FE}

    meta["full_size_trainable"] = check_full_size()
    print("full-size trainable parameter counts:", meta["full_size_trainable"])

    # ---- ResNet-38, reduced width -----------------------------------------------------------
    model = make_resnet_small()
    sd = model.state_dict()
    torch.save({"iteration": 0, "model": sd}, OUT / "resnet38_small.pth")
    (OUT / "resnet38_small_legacy.pth").write_bytes(legacy_bytes({"iteration": 0, "model": sd}))
    broken = dict(sd)
    broken["conv_block1.conv_one.weight"] = broken.pop("conv_block1.conv1.weight")
    del broken["resnet.layer2.0.downsample.2.running_mean"]
    broken["fc1.bias"] = torch.zeros(63)
    # Legacy format: the zip crate behind burn-store 0.22 rejects torch 2.9's zip of this exact
    # dict ("Invalid Central Directory header") although Python reads it; see the crate docs.
    (OUT / "resnet38_small_broken.pth").write_bytes(legacy_bytes({"iteration": 0, "model": broken}))
    wave = test_wave(torch.Generator().manual_seed(7), 2, 5120, SMALL_FE["sr"])
    meta["resnet38_small"] = golden(
        "resnet38_small", model, wave,
        ["conv_block1.conv1.weight", "resnet.layer3.0.bn1.weight", "fc1.weight"],
        "conv_block1.bn1.running_var", 10,
    )
    meta["resnet38_small"]["config"] = {"widths": [2, 4, 8, 16], "after": 32, "classes": 10}

    # ---- Cnn14, reduced width ---------------------------------------------------------------
    model = make_cnn14_small()
    torch.save({"iteration": 0, "model": model.state_dict()}, OUT / "cnn14_small.pth")
    meta["cnn14_small"] = golden(
        "cnn14_small", model, wave,
        ["conv_block1.conv1.weight", "conv_block3.bn2.weight", "fc1.weight"],
        "conv_block2.bn1.running_var", 10,
    )
    meta["cnn14_small"]["config"] = {"widths": [2, 4, 8, 16, 32, 64], "classes": 10}

    # ---- aisfx (real weights) -----------------------------------------------------------------
    meta["aisfx"] = aisfx_golden()

    (OUT / "goldens.json").write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")

    if args.full is not None:
        args.full.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(2024)
        full = ResNet38(PANNS_FE)
        randomise_bn(full, torch.Generator().manual_seed(97))
        torch.save({"iteration": 0, "model": full.state_dict()}, args.full / "resnet38_full_legacy.pth",
                   _use_new_zipfile_serialization=False)
        full.eval()
        wave = test_wave(torch.Generator().manual_seed(8), 1, 320000, 32000)
        with torch.no_grad():
            out = full(wave)
        save_file({"wave": wave.numpy(), "embedding": out["embedding"].numpy(),
                   "clipwise_output": out["clipwise_output"].numpy()}, str(args.full / "resnet38_full_io.safetensors"))
        print(f"wrote full-size checkpoint and outputs into {args.full}")


if __name__ == "__main__":
    sys.exit(main())
