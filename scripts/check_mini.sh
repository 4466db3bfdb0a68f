#!/usr/bin/env bash
# Checks the InstrumentAVT-mini benchmark (docs/benchmark-data.md): runs scripts/setup_mini.sh
# first (it does nothing when the data are already there), then validates the output with the
# Python standard library:
#
#   - every manifest line is a JSON object with only the keys of the accrue-data JSONL manifest
#     format, string-valued `meta`, a known split and a unique id;
#   - every referenced file exists and is what it claims (WAV: RIFF, PCM 16-bit mono at the
#     summary's rate and clip length; PNG and Ogg signatures);
#   - labels are classes of classes.json, captions and image lists are non-empty where the task
#     needs them; task_a/task_av/task_at list the same clips;
#   - held-out pitches (drum keys) of valid/test never occur in train for the same class;
#   - counts per subset and class agree with summary.json; 134 Tux Paint clips (unless
#     summary.json says what is missing).
#
#   scripts/check_mini.sh [--full] [--no-setup]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${ACCRUE_DATA_DIR:-${ROOT}/data}"
OUT="${DATA}/mini"
SETUP=1
SETUP_ARGS=()
for a in "$@"; do
  case "$a" in
    --full) OUT="${DATA}/mini-full"; SETUP_ARGS+=(--full) ;;
    --no-setup) SETUP=0 ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check_mini: unknown option $a" >&2; exit 2 ;;
  esac
done

if [[ $SETUP == 1 ]]; then
  "${ROOT}/scripts/setup_mini.sh" ${SETUP_ARGS[@]+"${SETUP_ARGS[@]}"}
fi
if [[ ! -f "${OUT}/summary.json" ]]; then
  echo "check_mini: error: ${OUT}/summary.json not found (run scripts/setup_mini.sh)" >&2
  exit 1
fi

python3 - "$OUT" <<'PY'
import json
import struct
import sys
from collections import Counter, defaultdict
from pathlib import Path

out = Path(sys.argv[1])
errors = []


def err(msg):
    errors.append(msg)
    if len(errors) <= 30:
        print(f"check_mini: FAIL {msg}", file=sys.stderr)


summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
classes_doc = json.loads((out / "classes.json").read_text(encoding="utf-8"))
classes = [c["name"] for c in classes_doc["classes"]]
if classes != sorted(classes):
    err("classes.json is not in sorted order (the manifest reader's default class order)")
if classes != summary["classes"]:
    err("classes.json and summary.json disagree on the classes")
cfg = summary["config"]
rate, clip_s = cfg["sample_rate"], cfg["clip_seconds"]
clip_bytes = round(rate * clip_s) * 2

KEYS = {"audio", "id", "split", "fold", "labels", "captions", "images", "image_embeddings", "meta"}
SPLITS = {"train", "valid", "test"}
checked_files = {}


def check_file(rel, kind):
    if rel in checked_files:
        return checked_files[rel]
    p = out / rel
    ok = True
    if not p.is_file():
        err(f"missing file {rel}")
        ok = False
    else:
        head = p.read_bytes()[:64] if kind != "wav" else p.read_bytes()
        if kind == "wav":
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE" or head[12:16] != b"fmt ":
                err(f"{rel}: not a canonical WAV file")
                ok = False
            else:
                tag, ch, r, _, _, bits = struct.unpack("<HHIIHH", head[20:36])
                size = struct.unpack("<I", head[40:44])[0]
                if (tag, ch, r, bits) != (1, 1, rate, 16) or head[36:40] != b"data":
                    err(f"{rel}: expected PCM mono {rate} Hz 16-bit, got {(tag, ch, r, bits)}")
                    ok = False
                elif size != clip_bytes or len(head) != 44 + size:
                    err(f"{rel}: {size} data bytes, expected {clip_bytes}")
                    ok = False
                elif not any(head[44:]):
                    err(f"{rel}: all samples are zero")
                    ok = False
        elif kind == "png" and head[:8] != b"\x89PNG\r\n\x1a\n":
            err(f"{rel}: not a PNG file")
            ok = False
        elif kind == "ogg" and head[:4] != b"OggS":
            err(f"{rel}: not an Ogg file")
            ok = False
    checked_files[rel] = ok
    return ok


def read_manifest(name):
    rows = []
    path = out / summary["manifests"][name]
    ids = set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            r = json.loads(line)
        except ValueError as e:
            err(f"{where}: invalid JSON ({e})")
            continue
        if not isinstance(r, dict) or not isinstance(r.get("audio"), str) or not r["audio"]:
            err(f"{where}: not an object with a non-empty `audio`")
            continue
        if set(r) - KEYS:
            err(f"{where}: unknown keys {sorted(set(r) - KEYS)}")
        if r.get("id") in ids:
            err(f"{where}: duplicate id {r.get('id')}")
        ids.add(r.get("id"))
        if r.get("split") not in SPLITS:
            err(f"{where}: split {r.get('split')!r} is not train/valid/test")
        for k in ("labels", "captions", "images"):
            v = r.get(k, [])
            if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
                err(f"{where}: `{k}` must be a list of non-empty strings")
        meta = r.get("meta", {})
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            err(f"{where}: `meta` must map strings to strings")
        rows.append((where, r))
    return rows


def check_task(name, need):
    rows = read_manifest(name)
    for where, r in rows:
        check_file(r["audio"], "wav")
        labels = r.get("labels", [])
        if len(labels) != 1 or labels[0] not in classes:
            err(f"{where}: labels {labels} must be exactly one class of classes.json")
        if need == "images":
            imgs = r.get("images", [])
            if not imgs:
                err(f"{where}: no images")
            for i in imgs:
                check_file(i, "png")
        if need == "captions":
            caps = r.get("captions", [])
            if len(caps) != cfg["captions_per_clip"]:
                err(f"{where}: {len(caps)} captions, expected {cfg['captions_per_clip']}")
            names = (labels[0] if labels else "", r.get("meta", {}).get("variant", ""))
            if caps and not any(n and n in caps[0] for n in names):
                err(f"{where}: first caption {caps[0]!r} does not name the instrument")
        sub = r.get("meta", {}).get("subset")
        if sub not in ("train", "valid", "test", "test_shift"):
            err(f"{where}: meta.subset {sub!r} unknown")
        elif (sub == "test_shift") != (r["meta"].get("soundfont") == "timgm6mb") or \
                r["split"] != ("test" if sub == "test_shift" else sub):
            err(f"{where}: subset {sub} / split {r['split']} / soundfont inconsistent")
    return rows


task_a = check_task("task_a", None)
task_av = check_task("task_av", "images")
task_at = check_task("task_at", "captions")
ids_a = [r["id"] for _, r in task_a]
for name, rows in (("task_av", task_av), ("task_at", task_at)):
    if [r["id"] for _, r in rows] != ids_a:
        err(f"{name} does not list the same clips as task_a")

# Held-out pitches / drum keys: never in train for the same class.
notes = defaultdict(lambda: defaultdict(set))
for _, r in task_a:
    notes[r["labels"][0]][r["meta"]["subset"]].add(r["meta"]["note"])
for cls, by in notes.items():
    for held in ("valid", "test"):
        leak = by["train"] & by[held]
        if leak:
            err(f"class {cls}: {held} notes {sorted(leak)} also occur in train")
    if by["test_shift"] != by["test"]:
        err(f"class {cls}: test_shift notes differ from test notes")

# Counts against summary.json.
counts = defaultdict(Counter)
for _, r in task_a:
    counts[r["meta"]["subset"]][r["labels"][0]] += 1
want = summary["counts"]["clips_per_subset_and_class"]
for sub in set(want) | set(counts):
    if dict(counts.get(sub, {})) != want.get(sub, {}):
        err(f"subset {sub}: counts differ from summary.json")
for sub in ("train", "valid", "test", "test_shift"):
    missing_cls = [c for c in classes if counts[sub][c] == 0]
    if missing_cls:
        err(f"subset {sub}: no clips for {missing_cls}")

# Tux Paint.
tux = read_manifest("tuxpaint")
for where, r in tux:
    check_file(r["audio"], "ogg")
    if r["split"] != "test":
        err(f"{where}: Tux Paint clips are test-only")
    if len(r.get("captions", [])) != 1 or len(r.get("images", [])) != 1:
        err(f"{where}: expected one caption and one image")
    for i in r.get("images", []):
        check_file(i, "png")
    if r.get("labels"):
        err(f"{where}: Tux Paint clips carry no class labels")
lower = Counter(Path(r["audio"]).name.lower() for _, r in tux)
if any(v > 1 for v in lower.values()):
    err("Tux Paint file names collide on a case-insensitive file system")
expected_tux = 134 - sum(1 for m in summary["missing"] if m.startswith("tux paint stamp"))
if len(tux) != summary["counts"]["tuxpaint_clips"] or len(tux) < expected_tux:
    err(f"{len(tux)} Tux Paint clips, summary.json says {summary['counts']['tuxpaint_clips']}")

for m in summary["missing"]:
    print(f"check_mini: note: missing from this build: {m}")
per = {s: sum(c.values()) for s, c in sorted(counts.items())}
print(f"check_mini: {out}: {len(classes)} classes, clips per subset {per}, "
      f"{len(tux)} Tux Paint clips, {len(checked_files)} files checked")
if errors:
    print(f"check_mini: {len(errors)} problem(s) found", file=sys.stderr)
    sys.exit(1)
print("check_mini: OK")
PY
