#!/usr/bin/env python3
"""Golden fixtures for `accrue-eval`: AP/mAP, ROC AUC, d', accuracy and Clotho-style retrieval.

References (independent of the Rust code):
  - scikit-learn `average_precision_score` (per class and macro), `roc_auc_score`,
    `accuracy_score`; scipy `stats.norm.ppf` for d' = sqrt(2) * Phi^-1(AUC) (HEAR `DPrime`).
  - LAION-CLAP's `evaluate_clotho_audiocaps` retrieval code (argsort ranks, R@1/5/10, mAP@10),
    re-typed here with torch on tie-free random embeddings, N clips x 5 captions.

Cases include exact score ties (scores rounded to a coarse grid), classes with no positive
(scikit-learn 1.9 scores them 0 with a warning; the Rust default skips them, so both macro
numbers are stored), classes with only positives (AUC undefined) and a single-row edge case.

Output (small, committed): `crates/accrue-eval/tests/fixtures/eval/`
  - `tensors.safetensors`: `<case>/targets` (uint8 0/1, [N, C]), `<case>/scores` (float32,
    [N, C]); `retrieval/audio` [N, D], `retrieval/text` [5N, D] (float32).
  - `cases.json`: expected values per case (float64).

Requirements: Python 3.10+, numpy 2.x, scikit-learn 1.9.1, scipy 1.17, torch 2.9.0 (CPU),
safetensors 0.8. No downloads.

Run from the repository root:
    python tools/goldens/eval.py
and then `cargo test -p accrue-eval`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from safetensors.numpy import save_file
from scipy import stats
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

OUT = Path(__file__).resolve().parents[2] / "crates" / "accrue-eval" / "tests" / "fixtures" / "eval"
RNG = np.random.default_rng(20240601)
TENSORS: dict[str, np.ndarray] = {}
CASES: dict[str, dict] = {}


def nan_to_none(values) -> list:
    return [None if (v is None or np.isnan(v)) else float(v) for v in values]


def multilabel_case(name: str, targets: np.ndarray, scores: np.ndarray) -> None:
    targets = targets.astype(np.uint8)
    scores = scores.astype(np.float32)
    TENSORS[f"{name}/targets"] = np.ascontiguousarray(targets)
    TENSORS[f"{name}/scores"] = np.ascontiguousarray(scores)
    s64 = scores.astype(np.float64)  # the exact float32 values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ap = average_precision_score(targets, s64, average=None)
        sk_macro = average_precision_score(targets, s64, average="macro")
    has_pos = targets.sum(axis=0) > 0
    has_both = has_pos & (targets.sum(axis=0) < targets.shape[0])
    auc = [roc_auc_score(targets[:, c], s64[:, c]) if has_both[c] else None
           for c in range(targets.shape[1])]
    dprime = [float(stats.norm.ppf(a) * np.sqrt(2.0)) if a is not None else None for a in auc]
    defined = [d for d in dprime if d is not None]
    CASES[name] = {
        "kind": "multilabel",
        "shape": list(targets.shape),
        "ap_per_class": [float(a) if has_pos[c] else None for c, a in enumerate(ap)],
        "map_skip": float(np.mean(ap[has_pos])),
        "n_skipped": int((~has_pos).sum()),
        "map_sklearn_zero": float(sk_macro),
        "auc_per_class": nan_to_none(auc),
        "d_prime_mean": float(np.mean(defined)) if defined else None,
    }


def multiclass_case(name: str, n: int, c: int, quant: float | None) -> None:
    labels = RNG.integers(0, c, size=n)
    scores = RNG.standard_normal((n, c)).astype(np.float32)
    scores[np.arange(n), labels] += 1.0
    if quant is not None:
        scores = (np.round(scores / quant) * quant).astype(np.float32)
    TENSORS[f"{name}/scores"] = scores
    TENSORS[f"{name}/labels"] = labels.astype(np.int64)
    CASES[name] = {
        "kind": "multiclass",
        "shape": [n, c],
        # numpy argmax = first maximum, as in the Rust `argmax_rows`.
        "accuracy": float(accuracy_score(labels, scores.argmax(axis=1))),
    }


def retrieval_case(n_clips: int, per_clip: int, dim: int) -> None:
    audio = RNG.standard_normal((n_clips, dim)).astype(np.float32)
    text = (np.repeat(audio, per_clip, axis=0) * 0.5
            + RNG.standard_normal((n_clips * per_clip, dim)).astype(np.float32))
    text = text.astype(np.float32)
    TENSORS["retrieval/audio"] = audio
    TENSORS["retrieval/text"] = text
    a = torch.nn.functional.normalize(torch.from_numpy(audio).double(), dim=-1)
    t = torch.nn.functional.normalize(torch.from_numpy(text).double(), dim=-1)
    logits_per_audio = a @ t.t()  # [N, 5N]
    logits_per_text = logits_per_audio.t()  # [5N, N]
    m = {}
    # Text to audio (LAION-CLAP): 0-based rank of the caption's own clip.
    ground_truth = torch.arange(n_clips).repeat_interleave(per_clip).view(-1, 1)
    ranking = torch.argsort(logits_per_text, descending=True)
    preds = torch.where(ranking == ground_truth)[1].numpy()
    for k in (1, 5, 10):
        m[f"T2A/R@{k}"] = float(np.mean(preds < k))
    m["T2A/mAP@10"] = float(np.mean(np.where(preds < 10, 1 / (preds + 1), 0.0)))
    # Audio to text: best rank among the clip's captions; AP over the captions.
    map_all, pred_all = [], []
    for d in range(n_clips):
        ranking = torch.argsort(logits_per_audio[d], descending=True)
        gt = torch.arange(d * per_clip, d * per_clip + per_clip)[None]
        all_pred = torch.where(torch.stack([ranking] * per_clip) == gt.view(-1, 1))[1]
        all_pred = torch.sort(all_pred).values
        pred_all.append(int(all_pred.min()))
        f = all_pred[all_pred < 10].numpy()
        map_all.append(np.sum(np.arange(1, len(f) + 1) / (f + 1)) / per_clip)
    for k in (1, 5, 10):
        m[f"A2T/R@{k}"] = float(np.mean(np.array(pred_all) < k))
    m["A2T/mAP@10"] = float(np.mean(map_all))
    CASES["retrieval"] = {"kind": "retrieval", "n_clips": n_clips, "per_clip": per_clip,
                          "dim": dim, "expected": m}


def main() -> None:
    # Continuous scores (no ties), 60 x 7, one class without positives.
    t = (RNG.random((60, 7)) < 0.3)
    t[:, 3] = False
    s = RNG.standard_normal((60, 7)) + 1.5 * t
    multilabel_case("continuous", t, s)
    # Heavy ties: scores on a 0.5 grid; one all-positive class (AUC undefined), one empty.
    t = (RNG.random((80, 9)) < 0.25)
    t[:, 0] = True
    t[:, 8] = False
    s = np.round((RNG.standard_normal((80, 9)) + 1.0 * t) * 2.0) / 2.0
    multilabel_case("ties", t, s)
    # Every score equal: AP = prevalence.
    t = (RNG.random((25, 3)) < 0.4)
    t[0, :] = True
    multilabel_case("all_tied", t, np.zeros((25, 3)))
    # Single row.
    multilabel_case("one_row", np.array([[1, 0, 1]]), np.array([[0.2, 0.9, -1.0]]))
    # AudioSet-like: 300 x 40, sparse labels, ties from float16-like rounding.
    t = (RNG.random((300, 40)) < 0.05)
    s = (RNG.standard_normal((300, 40)) + 2.0 * t).astype(np.float16).astype(np.float32)
    multilabel_case("sparse_rounded", t, s)
    multiclass_case("multiclass", 200, 10, None)
    multiclass_case("multiclass_ties", 200, 10, 1.0)
    retrieval_case(40, 5, 16)

    OUT.mkdir(parents=True, exist_ok=True)
    save_file(TENSORS, str(OUT / "tensors.safetensors"))
    meta = {"generator": "tools/goldens/eval.py", "sklearn": sklearn.__version__,
            "numpy": np.__version__, "torch": torch.__version__, "cases": CASES}
    (OUT / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(CASES)} cases to {OUT}")


if __name__ == "__main__":
    main()
