#!/usr/bin/env python3
"""Writes a HEAR 2021 task folder (the layout `hear-preprocess` produces and `heareval`
reads) from accrue-data manifests, plus an accrue manifest over the very same audio files, so
that `heareval` and `accrue eval` score one split of one set of files.

    python tools/hear/make_task.py --name instruments-mini --out hear-tasks \
        train=results/data/task_a.jsonl:train valid=results/data/task_a.jsonl:valid \
        test=results/data/test.jsonl:test

Writes `<out>/<name>-v1.0-full/`:
- `task_metadata.json` (scene, multiclass or multilabel, trainvaltest), `labelvocabulary.csv`,
  `{train,valid,test}.json` (file name -> labels), the audio in `<rate>/<split>/<id>.wav`
  (float32 WAV, resampled with scipy's polyphase filter when the source rate differs);
- `accrue.jsonl`: one row per file with its split and labels (for an accrue suite).

`--label meta.register` takes the label from a `meta` field instead of `labels` (a task on
register, dynamics, soundfont ...). By hand, in the reference venv (numpy, scipy, soundfile);
never in CI.
"""

import argparse
import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly


def read_manifest(spec: str):
    path, _, split = spec.partition(":")
    path = Path(path)
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if split and row.get("split") != split:
            continue
        audio = Path(row["audio"])
        if not audio.is_absolute():
            audio = path.parent / audio
        row["audio"] = audio
        row["_where"] = f"{path}:{n}"
        rows.append(row)
    if not rows:
        raise SystemExit(f"{spec}: no clips")
    return rows


def labels_of(row, key: str):
    if key == "labels":
        labels = row.get("labels") or []
    elif key.startswith("meta."):
        v = (row.get("meta") or {}).get(key[5:])
        labels = [] if v is None else [str(v)]
    else:
        raise SystemExit(f"--label must be `labels` or `meta.<field>`, got {key}")
    if not labels:
        raise SystemExit(f"{row['_where']}: no label under `{key}`")
    return [str(l) for l in labels]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("splits", nargs=3, help="train=M[:S] valid=M[:S] test=M[:S]")
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--label", default="labels")
    ap.add_argument("--sample-rate", type=int, default=48000)
    args = ap.parse_args()

    parts = {}
    for s in args.splits:
        name, _, spec = s.partition("=")
        if name not in ("train", "valid", "test") or not spec:
            raise SystemExit(f"bad split argument `{s}` (train=..., valid=..., test=...)")
        parts[name] = read_manifest(spec)
    if set(parts) != {"train", "valid", "test"}:
        raise SystemExit("need train=, valid= and test=")

    task = args.out / f"{args.name}-v1.0-full"
    vocab = sorted({l for rows in parts.values() for r in rows for l in labels_of(r, args.label)})
    multilabel = any(len(labels_of(r, args.label)) > 1 for rows in parts.values() for r in rows)
    durations = []
    manifest = []
    for split, rows in parts.items():
        folder = task / str(args.sample_rate) / split
        folder.mkdir(parents=True, exist_ok=True)
        index = {}
        for r in rows:
            x, sr = sf.read(str(r["audio"]), dtype="float64", always_2d=True)
            x = x.mean(axis=1)
            if sr != args.sample_rate:
                f = Fraction(args.sample_rate, sr)
                x = resample_poly(x, f.numerator, f.denominator)
            fname = f"{r['id']}.wav"
            if fname in index:
                raise SystemExit(f"{r['_where']}: duplicate id {r['id']} in split {split}")
            sf.write(str(folder / fname), x.astype(np.float32), args.sample_rate, subtype="FLOAT")
            labels = labels_of(r, args.label)
            index[fname] = labels
            durations.append(len(x) / args.sample_rate)
            manifest.append(
                {
                    "audio": f"{args.sample_rate}/{split}/{fname}",
                    "id": f"{split}/{r['id']}",
                    "split": split,
                    "labels": labels,
                }
            )
        (task / f"{split}.json").write_text(json.dumps(index, indent=1))
    with open(task / "labelvocabulary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["idx", "label"])
        for i, l in enumerate(vocab):
            w.writerow([i, l])
    meta = {
        "task_name": args.name,
        "version": "v1.0",
        "mode": "full",
        "embedding_type": "scene",
        "prediction_type": "multilabel" if multilabel else "multiclass",
        "split_mode": "trainvaltest",
        "splits": ["train", "valid", "test"],
        "sample_duration": max(durations),
        "evaluation": ["mAP"] if multilabel else ["top1_acc"],
        "source": "accrue tools/hear/make_task.py",
    }
    (task / "task_metadata.json").write_text(json.dumps(meta, indent=2))
    with open(task / "accrue.jsonl", "w") as f:
        for row in manifest:
            f.write(json.dumps(row) + "\n")
    print(f"{task}: {sum(len(r) for r in parts.values())} clips, {len(vocab)} labels")


if __name__ == "__main__":
    main()
