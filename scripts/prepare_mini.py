#!/usr/bin/env python3
"""Builds the InstrumentAVT-mini benchmark from the downloaded archives (Python stdlib only).

Called by ``scripts/setup_mini.sh`` after it has downloaded and checked the archives listed in
``scripts/mini_sources.lock``; it can also be run on its own::

    python3 scripts/prepare_mini.py --downloads data/downloads --out data/mini [--full] [--jobs N]

What it does (docs/benchmark-data.md describes the result):

1. unpacks the two soundfonts (FluidR3_GM, TimGM6mb) from their ``.deb`` archives (an ``ar``
   archive holding ``data.tar.xz``: read with ``tarfile``/``lzma``, no ``dpkg-deb`` needed), the
   instrument emoji from the npm tarball and the Tux Paint stamps from their ``.deb``;
2. writes one Standard MIDI File per (soundfont, instrument) with one note per slot, renders it
   with ``fluidsynth`` (fast render, 32 kHz, reverb and chorus off) and cuts the render at the
   known onsets into mono 16-bit WAV clips;
3. generates several captions per clip from the render metadata, pairs every clip with the
   pictures of its instrument, and writes the JSON Lines manifests, ``classes.json`` and
   ``summary.json``.

The output is built in ``<out>.partial`` and renamed to ``<out>`` at the end, so an interrupted run
never leaves a half-written benchmark behind. ``summary.json`` records a fingerprint of the
configuration; a second run with the same configuration does nothing (``--force`` rebuilds).
"""

from __future__ import annotations

import argparse
import array
import hashlib
import io
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from collections import Counter
from pathlib import Path

#: Bump when the generated data changes for the same sources and options.
FORMAT_VERSION = 1

SAMPLE_RATE = 32000
VELOCITIES = ((40, "soft"), (80, "moderate"), (120, "loud"))

#: The soundfonts: key -> (package, path inside the .deb, gain passed to fluidsynth, role).
SOUNDFONTS = {
    "fluidr3": ("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2", 0.85,
                "train/valid/test"),
    "timgm6mb": ("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2", 0.85, "test_shift"),
}
MAIN_SF, SHIFT_SF = "fluidr3", "timgm6mb"

GM_FAMILIES = (
    "piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
    "sound effects",
)

# Pictures: ("emoji", short_name) from emoji-datasource-google, ("tux", path under the stamps
# directory without extension) from tuxpaint-stamps-default.
#
# Pitched instruments: General MIDI programs (bank 0) with the name used in captions, and the
# playing range [lo, hi] in MIDI note numbers.
PITCHED = {
    "piano": dict(
        programs={0: "grand piano", 1: "bright piano"}, range=(33, 96),
        pictures=[("emoji", "musical_keyboard")]),
    "acoustic guitar": dict(
        programs={24: "nylon-string guitar", 25: "steel-string acoustic guitar"}, range=(40, 81),
        pictures=[("tux", "hobbies/music/string/guitar_classical")]),
    "electric guitar": dict(
        programs={26: "jazz electric guitar", 27: "clean electric guitar",
                  29: "overdriven electric guitar"}, range=(40, 84),
        pictures=[("emoji", "guitar"), ("tux", "hobbies/music/string/guitar_electric"),
                  ("tux", "hobbies/music/string/guitar2")]),
    "electric bass": dict(
        programs={33: "fingered electric bass", 34: "picked electric bass"}, range=(28, 60),
        pictures=[("tux", "hobbies/music/string/guitar_electric_bass"),
                  ("tux", "hobbies/music/string/guitar_electric_bass2")]),
    "violin": dict(
        programs={40: "violin"}, range=(55, 93),
        pictures=[("emoji", "violin"), ("tux", "hobbies/music/string/violin"),
                  ("tux", "hobbies/music/string/violin2")]),
    "cello": dict(
        programs={42: "cello"}, range=(36, 76),
        pictures=[("tux", "hobbies/music/string/cello")]),
    "harp": dict(
        programs={46: "harp"}, range=(28, 91),
        pictures=[("emoji", "harp")]),
    "trumpet": dict(
        programs={56: "trumpet", 59: "muted trumpet"}, range=(54, 82),
        pictures=[("emoji", "trumpet"), ("tux", "hobbies/music/brass/trumpet")]),
    "saxophone": dict(
        programs={64: "soprano saxophone", 65: "alto saxophone", 66: "tenor saxophone",
                  67: "baritone saxophone"}, range=(41, 72),
        pictures=[("emoji", "saxophone")]),
    "bassoon": dict(
        programs={70: "bassoon"}, range=(34, 72),
        pictures=[("tux", "hobbies/music/wind/bassoon")]),
    "flute": dict(
        programs={73: "flute"}, range=(60, 96),
        pictures=[("emoji", "flute")]),
    "banjo": dict(
        programs={105: "banjo"}, range=(48, 84),
        pictures=[("emoji", "banjo")]),
    "accordion": dict(
        programs={21: "accordion", 23: "tango accordion"}, range=(41, 89),
        pictures=[("emoji", "accordion")]),
    "bell": dict(
        programs={14: "tubular bell", 112: "tinkle bell"}, range=(55, 84),
        pictures=[("emoji", "bell")]),
}

# Percussion: GM drum keys (channel 10) with the caption name and the split of that key (held-out
# keys play the role of held-out pitches), rendered with several drum kits (bank 128 presets).
DRUM_KITS = ((0, "standard"), (16, "power"), (40, "brush"), (32, "jazz"), (8, "room"),
             (24, "electronic"), (25, "808"), (48, "orchestral"))
PERCUSSION = {
    "drum": dict(
        keys={35: ("bass drum", "train"), 36: ("bass drum", "test"), 38: ("snare drum", "train"),
              40: ("snare drum", "test"), 41: ("floor tom", "train"), 43: ("floor tom", "valid"),
              45: ("tom drum", "train"), 47: ("tom drum", "test"), 48: ("tom drum", "train"),
              50: ("tom drum", "train")},
        pictures=[("emoji", "drum_with_drumsticks"), ("emoji", "long_drum"),
                  ("tux", "hobbies/music/percussion/drumkit"),
                  ("tux", "hobbies/music/percussion/drum_tomtom_floor")]),
    "cymbal": dict(
        keys={49: ("crash cymbal", "train"), 57: ("crash cymbal", "test"),
              51: ("ride cymbal", "train"), 59: ("ride cymbal", "test"),
              52: ("china cymbal", "train"), 55: ("splash cymbal", "valid"),
              53: ("ride cymbal bell", "train")},
        pictures=[("tux", "hobbies/music/percussion/cymbal_crash")]),
}

#: Tux Paint stamps (with sound) that show one of the classes.
TUX_INSTRUMENTS = {
    "cello": "cello", "violin": "violin", "bassoon": "bassoon", "cymbal_crash": "cymbal",
    "drum_tomtom_floor": "drum", "drumkit": "drum",
}

TUX_STAMPS = "usr/share/tuxpaint/stamps/"

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

ADVERBS = {"soft": ("softly", "quietly", "gently"),
           "moderate": ("moderately", "at medium volume", "with moderate force"),
           "loud": ("loudly", "forcefully", "strongly")}
ADJECTIVES = {"soft": ("soft", "quiet", "gentle"),
              "moderate": ("moderate", "medium-loud", "moderately loud"),
              "loud": ("loud", "forceful", "strong")}

PITCHED_TEMPLATES = (
    "{a_inst} playing a {reg} note {adv}",
    "a {reg} note played {adv} on {a_var}",
    "{a_var} plays a {adj} {reg} note",
    "the sound of {a_var} playing {adv}",
    "{a_adj} {reg}-pitched note from {a_var}",
    "someone plays the note {note} on {a_var} {adv}",
    "a single {adj} {reg} tone from {a_var}",
    "{a_inst} in its {reg} register, played {adv}",
)
PERCUSSION_TEMPLATES = (
    "{a_inst} being hit {adv}",
    "{a_var} hit {adv}",
    "someone strikes {a_var} {adv}",
    "{a_adj} hit on {a_var} from {a_kit} drum kit",
    "the sound of {a_var} played {adv}",
    "a single {adj} {var} stroke",
    "{a_var} from {a_kit} kit, struck {adv}",
)
CAPTIONS_PER_CLIP = 5


class PrepareError(Exception):
    """An error with a message meant for the user."""


def log(msg: str) -> None:
    print(f"prepare_mini: {msg}", flush=True)


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def with_article(word: str) -> str:
    return f"{article(word)} {word}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Sources: lock file, .deb (ar + data.tar.xz) and .tgz readers
# --------------------------------------------------------------------------------------------

def read_lock(path: Path) -> dict:
    entries = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 5:
            raise PrepareError(f"{path}:{n}: expected 5 columns (kind name version file sha256)")
        kind, name, version, file, sha = parts
        entries[name] = dict(kind=kind, name=name, version=version, file=file, sha256=sha)
    return entries


class _Slice(io.RawIOBase):
    """A read-only window [start, start + size) of an open binary file."""

    def __init__(self, f, start: int, size: int):
        self._f, self._pos, self._end = f, start, start + size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self._end - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_deb_data(deb: Path) -> tarfile.TarFile:
    """Opens the data.tar.* member of a Debian package as a streaming tar archive."""
    f = open(deb, "rb")
    if f.read(8) != b"!<arch>\n":
        raise PrepareError(f"{deb} is not a Debian package (no ar header)")
    while True:
        header = f.read(60)
        if len(header) < 60:
            raise PrepareError(f"{deb}: no data.tar member found")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = f.tell()
        if name.startswith("data.tar"):
            comp = {"data.tar.xz": "xz", "data.tar.gz": "gz", "data.tar.bz2": "bz2",
                    "data.tar": ""}.get(name)
            if comp is None:
                raise PrepareError(
                    f"{deb}: member {name} uses a compression Python cannot read; "
                    "extract it with `dpkg-deb -x` instead")
            stream = io.BufferedReader(_Slice(f, start, size), buffer_size=1 << 20)
            return tarfile.open(fileobj=stream, mode=f"r|{comp}" if comp else "r|")
        f.seek(start + size + (size & 1))


def norm_member(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def extract_file(deb: Path, member: str, dest: Path) -> None:
    """Extracts one file of a .deb to `dest` (atomically)."""
    with open_deb_data(deb) as tar:
        for info in tar:
            if norm_member(info.name) == member and info.isfile():
                src = tar.extractfile(info)
                tmp = dest.with_suffix(dest.suffix + ".tmp")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                tmp.replace(dest)
                return
    raise PrepareError(f"{deb} has no file {member}")


# --------------------------------------------------------------------------------------------
# Standard MIDI File writer
# --------------------------------------------------------------------------------------------

TICKS_PER_QUARTER = 480
TEMPO_US = 500_000  # 120 bpm: one tick = 1/960 s
TICKS_PER_SECOND = TICKS_PER_QUARTER * 1_000_000 // TEMPO_US


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_smf(path: Path, events: list) -> None:
    """Writes a format-0 SMF from (tick, status/meta bytes) events (sorted by tick, stable)."""
    track = bytearray()
    track += b"\x00\xff\x51\x03" + TEMPO_US.to_bytes(3, "big")
    last = 0
    for tick, data in sorted(events, key=lambda e: e[0]):
        track += _vlq(tick - last) + data
        last = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


# --------------------------------------------------------------------------------------------
# WAV reading / writing
# --------------------------------------------------------------------------------------------

def read_wav_s16(path: Path) -> tuple[int, int, array.array]:
    """Reads a 16-bit PCM WAV (also WAVE_FORMAT_EXTENSIBLE): (rate, channels, samples)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise PrepareError(f"{path} is not a WAV file")
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise PrepareError(f"{path}: missing fmt or data chunk")
    tag, channels, rate, _, _, bits = fmt
    if tag not in (1, 0xFFFE) or bits != 16:
        raise PrepareError(f"{path}: expected 16-bit PCM, got format {tag} with {bits} bits")
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return rate, channels, samples


def write_wav_mono16(path: Path, samples: array.array, rate: int) -> None:
    if sys.byteorder == "big":
        samples = array.array("h", samples)
        samples.byteswap()
    pcm = samples.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", len(pcm))
    path.write_bytes(header + pcm)


def ogg_info(path: Path) -> tuple[int, int, float] | None:
    """(sample rate, channels, duration in s) of an Ogg Vorbis file, from its identification
    header and last granule position (None if unreadable)."""
    data = path.read_bytes()
    i = data.find(b"\x01vorbis")
    last = data.rfind(b"OggS")
    if i < 0 or last < 0 or last + 14 > len(data) or i + 16 > len(data):
        return None
    channels = data[i + 11]
    rate = struct.unpack("<I", data[i + 12:i + 16])[0]
    granule = struct.unpack("<q", data[last + 6:last + 14])[0]
    if rate <= 0 or granule < 0:
        return None
    return rate, channels, granule / rate


# --------------------------------------------------------------------------------------------
# The clip plan
# --------------------------------------------------------------------------------------------

def pitch_grid(lo: int, hi: int, n: int) -> list[int]:
    n = max(2, min(n, hi - lo + 1))
    return sorted({round(lo + i * (hi - lo) / (n - 1)) for i in range(n)})


def pitch_split(i: int) -> str:
    """Held-out pitches: every 4th pitch (offset 2) is test, every 8th (offset 0) is valid."""
    if i % 4 == 2:
        return "test"
    if i % 8 == 0:
        return "valid"
    return "train"


def register(pitch: int, lo: int, hi: int) -> str:
    third = (hi - lo) / 3
    if pitch < lo + third:
        return "low"
    if pitch > hi - third:
        return "high"
    return "middle"


def note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def slug(name: str) -> str:
    return name.replace(" ", "_")


def plan_clips(full: bool, combos: int) -> list[dict]:
    """Every clip to render: instrument, program/kit, note, velocity, split, soundfont."""
    clips = []
    for inst, spec in PITCHED.items():
        lo, hi = spec["range"]
        progs = spec["programs"]
        n = hi - lo + 1 if full else math.ceil(combos / len(progs))
        for i, pitch in enumerate(pitch_grid(lo, hi, n)):
            split = pitch_split(i)
            for prog, variant in progs.items():
                for vel, dyn in VELOCITIES:
                    clips.append(dict(
                        instrument=inst, family=GM_FAMILIES[prog // 8], kind="pitched",
                        program=prog, bank=0, channel=0, note=pitch, velocity=vel,
                        dynamics=dyn, variant=variant, register=register(pitch, lo, hi),
                        split=split))
    for inst, spec in PERCUSSION.items():
        keys = spec["keys"]
        n_kits = len(DRUM_KITS) if full else max(1, round(combos / len(keys)))
        for key, (variant, split) in keys.items():
            for kit, kit_name in DRUM_KITS[:n_kits]:
                for vel, dyn in VELOCITIES:
                    clips.append(dict(
                        instrument=inst, family="drum kit", kind="percussion", program=kit,
                        bank=128, channel=9, note=key, velocity=vel, dynamics=dyn,
                        variant=variant, kit=kit_name, register="", split=split))
    out = []
    for c in clips:
        for sf in (MAIN_SF, SHIFT_SF):
            if sf == SHIFT_SF and c["split"] != "test":
                continue
            d = dict(c, soundfont=sf, subset="test_shift" if sf == SHIFT_SF else c["split"])
            p = "k" if d["kind"] == "percussion" else "p"
            d["id"] = (f"{slug(d['instrument'])}-{sf}-{p}{d['program']:03d}-n{d['note']:03d}"
                       f"-v{d['velocity']:03d}")
            out.append(d)
    return out


def captions_for(clip: dict) -> list[str]:
    rng = random.Random(zlib.crc32(clip["id"].encode()))
    dyn = clip["dynamics"]
    adv, adj = rng.choice(ADVERBS[dyn]), rng.choice(ADJECTIVES[dyn])
    values = dict(
        a_inst=with_article(clip["instrument"]), a_var=with_article(clip["variant"]),
        var=clip["variant"], reg=clip["register"], adv=adv, adj=adj,
        a_adj=with_article(adj), note=note_name(clip["note"]),
        a_kit=with_article(clip.get("kit", "")))
    templates = PITCHED_TEMPLATES if clip["kind"] == "pitched" else PERCUSSION_TEMPLATES
    chosen = [templates[0]] + rng.sample(templates[1:], CAPTIONS_PER_CLIP - 1)
    return [t.format(**values) for t in chosen]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def render_jobs(plan: list[dict], work: Path, clip_s: float, note_s: float, gap_s: float):
    """Groups clips per (soundfont, instrument), writes one MIDI per group, returns the jobs."""
    groups: dict[tuple, list] = {}
    for c in plan:
        groups.setdefault((c["soundfont"], c["instrument"]), []).append(c)
    slot = round((clip_s + gap_s) * TICKS_PER_SECOND)
    clip_ticks = round(clip_s * TICKS_PER_SECOND)
    note_ticks = round(note_s * TICKS_PER_SECOND)
    lead = round(0.1 * TICKS_PER_SECOND)  # silence before the first note
    jobs = []
    for (sf, inst), clips in groups.items():
        events = []
        for j, c in enumerate(clips):
            t = lead + j * slot
            ch = c["channel"]
            setup = t - 2 if t >= 2 else 0
            # channel 10 (index 9) is the drum channel: its program change picks the kit
            events += [
                (setup, bytes([0xC0 | ch, c["program"]])),
                (setup, bytes([0xB0 | ch, 7, 100])),   # volume
                (setup, bytes([0xB0 | ch, 10, 64])),   # pan centre
                (setup, bytes([0xB0 | ch, 91, 0])),    # reverb send off
                (setup, bytes([0xB0 | ch, 93, 0])),    # chorus send off
                (t, bytes([0x90 | ch, c["note"], c["velocity"]])),
                (t + note_ticks, bytes([0x80 | ch, c["note"], 0])),
                (t + clip_ticks, bytes([0xB0 | ch, 120, 0])),  # all sound off
            ]
            c["_onset_s"] = t / TICKS_PER_SECOND
        name = f"{sf}-{slug(inst)}"
        mid = work / f"{name}.mid"
        write_smf(mid, events)
        jobs.append(dict(sf=sf, instrument=inst, midi=mid, wav=work / f"{name}.wav", clips=clips))
    return jobs


def run_renders(jobs: list[dict], soundfont_files: dict, n_jobs: int) -> None:
    pending = list(jobs)
    running: list[tuple] = []
    while pending or running:
        while pending and len(running) < n_jobs:
            job = pending.pop(0)
            _, _, gain, _ = SOUNDFONTS[job["sf"]]
            cmd = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain),
                   "-r", str(SAMPLE_RATE), "-T", "wav", "-O", "s16", "-F", str(job["wav"]),
                   str(soundfont_files[job["sf"]]), str(job["midi"])]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            running.append((proc, job))
        proc, job = running.pop(0)
        out, _ = proc.communicate()
        if proc.returncode != 0 or not job["wav"].exists():
            raise PrepareError(
                f"fluidsynth failed on {job['midi'].name} (exit {proc.returncode}): "
                f"{out.decode(errors='replace').strip()[-500:]}")


def cut_render(job: dict, out_dir: Path, clip_s: float) -> list[dict]:
    rate, channels, samples = read_wav_s16(job["wav"])
    if rate != SAMPLE_RATE:
        raise PrepareError(f"{job['wav']}: fluidsynth wrote {rate} Hz, expected {SAMPLE_RATE}")
    n = round(clip_s * SAMPLE_RATE)
    problems = []
    for c in job["clips"]:
        start = round(c["_onset_s"] * SAMPLE_RATE)
        if channels == 1:
            mono = samples[start:start + n]
        else:
            left = samples[start * channels:(start + n) * channels:channels]
            right = samples[start * channels + 1:(start + n) * channels:channels]
            # most presets are mono samples panned to the centre (left == right): no averaging
            mono = left if left == right else array.array(
                "h", [(a + b) >> 1 for a, b in zip(left, right)])
        if len(mono) < n:
            mono.extend([0] * (n - len(mono)))
        peak = max(max(mono), -min(mono))
        clipped = mono.count(32767) + mono.count(-32768)
        c["peak"] = peak / 32768
        if peak < 33:  # below -60 dBFS: nothing was rendered
            problems.append(f"{c['id']}: silent render (peak {peak})")
            c["_bad"] = True
            continue
        if clipped:
            problems.append(f"{c['id']}: {clipped} clipped samples")
        rel = Path("audio") / c["soundfont"] / slug(c["instrument"]) / f"{c['id']}.wav"
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        write_wav_mono16(out_dir / rel, mono, SAMPLE_RATE)
        c["audio"] = rel.as_posix()
    job["wav"].unlink()
    return problems


# --------------------------------------------------------------------------------------------
# Pictures and Tux Paint
# --------------------------------------------------------------------------------------------

def svg_to_png(svg_bytes: bytes, dest: Path) -> bool:
    tool = shutil.which("rsvg-convert")
    if tool is None:
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([tool, "-h", "300", "-a", "-f", "png", "-o", str(dest)],
                          input=svg_bytes, capture_output=True)
    return proc.returncode == 0 and dest.exists()


def read_tuxpaint(deb: Path) -> dict:
    """One pass over the stamps: sound, image and caption files by stem (path without extension).

    Holds the ~230 MB of stamp files in memory for one pass instead of decompressing the 161 MB
    archive twice; the caller keeps only the stems it needs.
    """
    files: dict[str, dict] = {}
    with open_deb_data(deb) as tar:
        for info in tar:
            name = norm_member(info.name)
            if not info.isfile() or not name.startswith(TUX_STAMPS):
                continue
            rel = name[len(TUX_STAMPS):]
            stem, dot, ext = rel.rpartition(".")
            if not dot or ext not in ("ogg", "png", "svg", "txt"):
                continue
            data = tar.extractfile(info).read()
            files.setdefault(stem, {})[ext] = data
    return files


def first_line(txt: bytes) -> str:
    for line in txt.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line:
            return line
    return ""


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def fingerprint(args, lock: dict) -> str:
    cfg = dict(format=FORMAT_VERSION, full=args.full, combos=args.combos, clip_s=args.clip_seconds,
               lock={k: v["sha256"] for k, v in sorted(lock.items())},
               script=hashlib.sha256(Path(__file__).read_bytes()).hexdigest())
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]


def is_ready(out: Path, fp: str) -> bool:
    summary = out / "summary.json"
    if not summary.exists():
        return False
    try:
        s = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return s.get("fingerprint") == fp and all(
        (out / m).exists() for m in s.get("manifests", {}).values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--downloads", type=Path, required=True,
                    help="folder with the archives of mini_sources.lock")
    ap.add_argument("--out", type=Path, required=True, help="output folder (e.g. data/mini)")
    ap.add_argument("--sources", type=Path, default=None,
                    help="cache for unpacked soundfonts (default: <downloads>/../sources)")
    ap.add_argument("--lock", type=Path, default=root / "scripts" / "mini_sources.lock")
    ap.add_argument("--full", action="store_true",
                    help="every semitone of every range, every program, all 8 drum kits")
    ap.add_argument("--combos", type=int, default=32,
                    help="(pitch, program) or (key, kit) combinations per class (default 32)")
    ap.add_argument("--clip-seconds", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--force", action="store_true", help="rebuild even if up to date")
    ap.add_argument("--is-ready", action="store_true",
                    help="only check: exit 0 when <out> is complete for these options")
    args = ap.parse_args()

    lock = read_lock(args.lock)
    fp = fingerprint(args, lock)
    if args.is_ready:
        return 0 if is_ready(args.out, fp) else 1
    if not args.force and is_ready(args.out, fp):
        log(f"{args.out} is up to date (fingerprint {fp}); use --force to rebuild")
        return 0

    timings = {}
    t0 = time.perf_counter()
    archives = {}
    for name, e in lock.items():
        if e["kind"] not in ("deb", "npm"):
            continue
        path = args.downloads / e["file"]
        if not path.exists():
            raise PrepareError(f"missing archive {path} ({e['kind']} {name} {e['version']}); "
                               "run scripts/setup_mini.sh to download it")
        got = sha256_file(path)
        if got != e["sha256"]:
            raise PrepareError(f"{path}: sha256 is {got}, mini_sources.lock expects "
                               f"{e['sha256']}; delete it and run scripts/setup_mini.sh")
        archives[name] = path
    if shutil.which("fluidsynth") is None:
        raise PrepareError("fluidsynth is not installed (Debian/Ubuntu: apt-get install "
                           "fluidsynth; macOS: brew install fluid-synth)")

    # 1. Soundfonts (cached, verified against the lock's archive through a marker file).
    sources = args.sources or args.downloads.parent / "sources"
    sf_files = {}
    for key, (pkg, member, _, _) in SOUNDFONTS.items():
        dest = sources / f"{pkg}_{lock[pkg]['version']}" / Path(member).name
        marker = dest.with_suffix(".from")
        want = lock[pkg]["sha256"]
        if not (dest.exists() and marker.exists() and marker.read_text().strip() == want):
            log(f"unpacking {Path(member).name} from {archives[pkg].name}")
            extract_file(archives[pkg], member, dest)
            marker.write_text(want + "\n")
        sf_files[key] = dest
    timings["unpack_soundfonts_s"] = time.perf_counter() - t0

    partial = args.out.with_name(args.out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    work = partial / "_render"
    work.mkdir(parents=True)
    missing: list[str] = []
    warnings: list[str] = []

    # 2. Plan, MIDI, render, cut.
    t = time.perf_counter()
    clip_s = args.clip_seconds
    plan = plan_clips(args.full, args.combos)
    jobs = render_jobs(plan, work, clip_s, note_s=0.75 * clip_s, gap_s=0.15)
    log(f"rendering {len(plan)} clips ({len(jobs)} MIDI files, {args.jobs} fluidsynth processes)")
    run_renders(jobs, sf_files, max(1, args.jobs))
    timings["render_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for job in jobs:
        warnings += cut_render(job, partial, clip_s)
    shutil.rmtree(work)
    bad = [c["id"] for c in plan if c.get("_bad")]
    if bad:
        missing += [f"clip {b}: silent render, dropped" for b in bad]
    plan = [c for c in plan if not c.get("_bad")]
    timings["cut_s"] = time.perf_counter() - t

    # 3. Pictures.
    t = time.perf_counter()
    emoji_tgz = archives["emoji-datasource-google"]
    needed_emoji = {p for spec in (*PITCHED.values(), *PERCUSSION.values())
                    for kind, p in spec["pictures"] if kind == "emoji"}
    emoji_images = {}
    with tarfile.open(emoji_tgz, "r:gz") as tar:
        meta = json.load(tar.extractfile("package/emoji.json"))
        by_name = {e["short_name"]: e for e in meta}
        for name in sorted(needed_emoji):
            e = by_name.get(name)
            if e is None or not e.get("has_img_google"):
                missing.append(f"emoji {name}: not in emoji-datasource-google")
                continue
            data = tar.extractfile(f"package/img/google/64/{e['image']}").read()
            rel = Path("images") / "emoji" / f"{name}.png"
            (partial / rel).parent.mkdir(parents=True, exist_ok=True)
            (partial / rel).write_bytes(data)
            emoji_images[name] = rel.as_posix()

    tux = read_tuxpaint(archives["tuxpaint-stamps-default"])

    # File names must stay unique on case-insensitive file systems too ("A_with_umlaut" and
    # "a_with_umlaut" are two stamps): such names get their directory as a prefix.
    lower_names: dict[str, set[str]] = {}
    for stem in tux:
        lower_names.setdefault(Path(stem).name.lower(), set()).add(stem)

    def tux_id(stem: str) -> str:
        name = Path(stem).name
        return stem.replace("/", "-") if len(lower_names[name.lower()]) > 1 else name

    def tux_image(stem: str, dest_dir: str) -> str | None:
        f = tux.get(stem, {})
        rel = Path("images") / dest_dir / f"{tux_id(stem)}.png"
        dest = partial / rel
        if dest.exists():
            return rel.as_posix()
        if "png" in f:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(f["png"])
            return rel.as_posix()
        if "svg" in f:
            if svg_to_png(f["svg"], dest):
                return rel.as_posix()
            missing.append(f"tux paint image {stem}.svg: needs rsvg-convert (librsvg2-bin) "
                           "to become a PNG")
            return None
        missing.append(f"tux paint image {stem}: not in the package")
        return None

    class_images: dict[str, list[str]] = {}
    for inst, spec in (*PITCHED.items(), *PERCUSSION.items()):
        imgs = []
        for kind, p in spec["pictures"]:
            rel = emoji_images.get(p) if kind == "emoji" else tux_image(p, "tuxpaint")
            if rel:
                imgs.append(rel)
        if not imgs:
            raise PrepareError(f"class {inst}: none of its pictures could be prepared")
        class_images[inst] = imgs
    timings["images_s"] = time.perf_counter() - t

    # 4. Tux Paint out-of-domain set: stamps with their own sound effect, image and caption.
    t = time.perf_counter()
    stamps = sorted(s for s, f in tux.items() if "ogg" in f and ("png" in f or "svg" in f))
    class_pic_files = {p for v in class_images.values() for p in v}
    tux_rows = []
    for stem in stamps:
        f = tux[stem]
        name = Path(stem).name
        sid = tux_id(stem)
        caption = first_line(f.get("txt", b""))
        if not caption:
            missing.append(f"tux paint stamp {stem}: no caption (.txt), dropped")
            continue
        img = tux_image(stem, "tuxpaint")
        if img is None:
            continue
        rel = Path("tuxpaint") / f"{sid}.ogg"
        (partial / rel).parent.mkdir(parents=True, exist_ok=True)
        (partial / rel).write_bytes(f["ogg"])
        meta = {"source": "tuxpaint-stamps-default", "stamp": stem,
                "category": stem.split("/")[0],
                "audio_sha256": hashlib.sha256(f["ogg"]).hexdigest()}
        info = ogg_info(partial / rel)
        if info is not None:
            meta["sample_rate"], meta["channels"] = str(info[0]), str(info[1])
            meta["duration_s"] = f"{info[2]:.3f}"
        if name in TUX_INSTRUMENTS:
            meta["instrument"] = TUX_INSTRUMENTS[name]
            meta["image_in_av_train"] = "true" if img in class_pic_files else "false"
        tux_rows.append(dict(id=f"tuxpaint-{sid}", audio=rel.as_posix(), split="test",
                             captions=[caption], images=[img], meta=meta))
    tux.clear()  # free the stamp files
    timings["tuxpaint_s"] = time.perf_counter() - t

    # 5. Manifests.
    classes = sorted([*PITCHED, *PERCUSSION])
    rows_a, rows_av, rows_at = [], [], []
    for c in plan:
        meta = {
            "subset": c["subset"], "soundfont": c["soundfont"], "family": c["family"],
            "variant": c["variant"], "bank": str(c["bank"]), "program": str(c["program"]),
            "note": str(c["note"]), "velocity": str(c["velocity"]), "dynamics": c["dynamics"],
        }
        if c["kind"] == "pitched":
            meta.update(note_name=note_name(c["note"]), register=c["register"])
        else:
            meta["kit"] = c["kit"]
        base = dict(id=c["id"], audio=c["audio"], split=c["split"], labels=[c["instrument"]])
        rows_a.append(dict(base, meta=meta))
        rows_av.append(dict(base, images=class_images[c["instrument"]], meta=meta))
        rows_at.append(dict(base, captions=captions_for(c), meta=meta))

    manifests = {"task_a": "task_a.jsonl", "task_av": "task_av.jsonl",
                 "task_at": "task_at.jsonl", "tuxpaint": "tuxpaint.jsonl"}
    for key, rows in (("task_a", rows_a), ("task_av", rows_av), ("task_at", rows_at),
                      ("tuxpaint", tux_rows)):
        with open(partial / manifests[key], "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    class_info = []
    for name in classes:
        spec = PITCHED.get(name) or PERCUSSION[name]
        entry = dict(name=name, index=len(class_info), article=article(name),
                     prompt=f"the sound of {with_article(name)}", images=class_images[name])
        if name in PITCHED:
            entry.update(kind="pitched", bank=0, programs=sorted(spec["programs"]),
                         gm_family=sorted({GM_FAMILIES[p // 8] for p in spec["programs"]}),
                         variants=[spec["programs"][p] for p in sorted(spec["programs"])],
                         range=list(spec["range"]))
        else:
            entry.update(kind="percussion", bank=128, gm_family=["drum kit"],
                         keys=sorted(spec["keys"]),
                         variants=sorted({v for v, _ in spec["keys"].values()}))
        class_info.append(entry)
    (partial / "classes.json").write_text(json.dumps(
        {"classes": class_info, "zero_shot_template": "the sound of {article} {name}"},
        indent=2) + "\n", encoding="utf-8")

    # 6. Summary.
    def count(rows, key):
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            sub = out.setdefault(r["meta"]["subset"], {})
            sub[key(r)] = sub.get(key(r), 0) + 1
        return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}

    per_subset = {s: sum(v.values()) for s, v in count(rows_a, lambda r: "all").items()}
    caption_groups: dict[str, list[str]] = {}
    audio_groups: dict[str, list[str]] = {}
    for r in tux_rows:
        caption_groups.setdefault(r["captions"][0], []).append(r["id"])
        audio_groups.setdefault(r["meta"]["audio_sha256"], []).append(r["id"])
    tux_durs = [float(r["meta"]["duration_s"]) for r in tux_rows if "duration_s" in r["meta"]]
    peaks = [c["peak"] for c in plan]
    sizes = sum(p.stat().st_size for p in partial.rglob("*") if p.is_file())
    timings["total_prepare_s"] = time.perf_counter() - t0
    summary = {
        "benchmark": "InstrumentAVT-mini",
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "config": {"full": args.full, "combos_per_class": args.combos, "clip_seconds": clip_s,
                   "note_seconds": 0.75 * clip_s, "sample_rate": SAMPLE_RATE, "channels": 1,
                   "bits": 16, "velocities": [v for v, _ in VELOCITIES],
                   "captions_per_clip": CAPTIONS_PER_CLIP,
                   "soundfonts": {k: {"package": v[0], "file": Path(v[1]).name, "gain": v[2],
                                      "used_for": v[3]} for k, v in SOUNDFONTS.items()},
                   "fluidsynth": fluidsynth_version()},
        "manifests": manifests,
        "classes": classes,
        "counts": {"clips_per_subset": per_subset,
                   "clips_per_subset_and_class": count(rows_a, lambda r: r["labels"][0]),
                   "tuxpaint_clips": len(tux_rows),
                   "tuxpaint_sample_rates": dict(sorted(
                       Counter(r["meta"].get("sample_rate", "0") for r in tux_rows).items(),
                       key=lambda kv: int(kv[0]))),
                   "tuxpaint_per_category": dict(sorted(
                       {c: sum(1 for r in tux_rows if r["meta"]["category"] == c)
                        for c in {r["meta"]["category"] for r in tux_rows}}.items())),
                   "images_per_class": {k: len(v) for k, v in sorted(class_images.items())}},
        "durations_s": {
            "clip": clip_s,
            "rendered_total": round(len(plan) * clip_s, 1),
            "per_subset": {s: round(n * clip_s, 1) for s, n in per_subset.items()},
            "tuxpaint_total": round(sum(tux_durs), 1),
            "tuxpaint_min": round(min(tux_durs), 3) if tux_durs else None,
            "tuxpaint_max": round(max(tux_durs), 3) if tux_durs else None},
        "levels": {"peak_max": round(max(peaks), 4), "peak_min": round(min(peaks), 4)},
        "tuxpaint_duplicates": {
            "same_caption": [v for v in caption_groups.values() if len(v) > 1],
            "same_audio": [v for v in audio_groups.values() if len(v) > 1]},
        "sources": {k: {kk: v[kk] for kk in ("kind", "version", "file", "sha256")}
                    for k, v in lock.items()},
        "missing": missing,
        "warnings": warnings,
        "size_bytes": sizes,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    (partial / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    if args.out.exists():
        shutil.rmtree(args.out)
    partial.rename(args.out)
    for m in missing:
        log(f"missing: {m}")
    for w in warnings[:20]:
        log(f"warning: {w}")
    log(f"wrote {args.out}: {per_subset} clips, {len(tux_rows)} Tux Paint clips, "
        f"{len(classes)} classes, {sizes / 1e6:.1f} MB in {timings['total_prepare_s']:.1f} s")
    return 0


def fluidsynth_version() -> str:
    try:
        out = subprocess.run(["fluidsynth", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    first = out.strip().splitlines()[0] if out.strip() else ""
    return first.replace("FluidSynth runtime version", "").strip() or "unknown"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PrepareError as e:
        print(f"prepare_mini: error: {e}", file=sys.stderr)
        sys.exit(1)
