"""Miniature replicas of the VoxCeleb1/2, SITW, MUSAN and RIRS_NOISES trees, with their real layouts,
metadata and list formats, and a little generated audio per file (16 kHz).

VoxCeleb2's ``.m4a`` files hold wav data: there is no AAC encoder here. :func:`fake_ffmpeg`
writes an ``ffmpeg`` stand-in that accepts exactly the recipe's decoding command and copies the
file to stdout, so the pipe in wav.scp is exercised end to end.
"""

from __future__ import annotations

import os
import stat
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile

RATE = 16000

VOX1_SPEAKERS = {"id10001": "dev", "id10002": "dev", "id10270": "test", "id10271": "test"}
VOX1_META_HEADER = "VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet"
VOX2_DEV = ("id00012", "id00015", "id00016")
VOX2_TEST = ("id00017",)
VIDEOS = ("21Uxsk56VDQ", "x6uYqmx31kE")
SEGMENTS = ("00001", "00002")


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Voiced bursts (harmonics of a seed-dependent f0) between pauses, plus faint noise: float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = 90 + 150 * rng.random()
    voiced = sum(np.sin(2 * np.pi * k * f0 * t + rng.random() * 6) / k for k in range(1, 6))
    gate = (np.sin(2 * np.pi * (1.5 + rng.random()) * t) > -0.3).astype(float)
    return (0.3 * voiced * gate / 2.3 + 0.003 * rng.standard_normal(n)).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), samples, RATE, subtype="PCM_16", format=fmt)
    return path


def _pairs(utts: list[str], spk_of) -> list[tuple[str, str, str]]:
    """All ``(label, enrol, test)`` pairs over ``utts``, label 1 for the same speaker."""
    return [("1" if spk_of(a) == spk_of(b) else "0", a, b) for a, b in combinations(utts, 2)]


def make_voxceleb1(root: Path, seconds: float = 1.0) -> Path:
    """``root/wav/SPK/VIDEO/SEG.wav``, ``vox1_meta.csv`` and the three cleaned trial lists."""
    rels = []
    for i, spk in enumerate(VOX1_SPEAKERS):
        for j, video in enumerate(VIDEOS):
            for k, seg in enumerate(SEGMENTS):
                rel = f"{spk}/{video}/{seg}.wav"
                write_wav(root / "wav" / rel, speechlike(seconds, 100 * i + 10 * j + k))
                rels.append(rel)
    lines = [VOX1_META_HEADER] + [f"{spk}\tCeleb_{i}\t{'mf'[i % 2]}\tIreland\t{split}"
                                  for i, (spk, split) in enumerate(VOX1_SPEAKERS.items())]
    (root / "vox1_meta.csv").write_text("\n".join(lines) + "\n")
    spk_of = lambda rel: rel.split("/")[0]  # noqa: E731
    test_rels = [r for r in rels if VOX1_SPEAKERS[spk_of(r)] == "test"]
    lists = {
        "veri_test2.txt": _pairs(test_rels, spk_of),
        "list_test_all2.txt": _pairs(rels, spk_of)[::3],
        "list_test_hard2.txt": [p for p in _pairs(rels, spk_of) if p[1].startswith(p[2][:6])][::2],
    }
    for name, trials in lists.items():
        (root / name).write_text("".join(f"{lab} {a} {b}\n" for lab, a, b in trials))
    return root


def make_voxceleb2(root: Path, seconds: float = 1.0) -> Path:
    """``root/{dev,test}/aac/SPK/VIDEO/SEG.m4a`` (wav inside, see module doc) and ``vox2_meta.csv``."""
    meta = ["VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set "]
    for i, (spk, part) in enumerate([(s, "dev") for s in VOX2_DEV] + [(s, "test") for s in VOX2_TEST]):
        meta.append(f"{spk} ,n{spk[2:]} ,{'mf'[i % 2]} ,{part} ")
        for j, video in enumerate(VIDEOS):
            for k, seg in enumerate(SEGMENTS):
                write_wav(root / part / "aac" / spk / video / f"{seg}.m4a", speechlike(seconds, 1000 + 100 * i + 10 * j + k))
    (root / "vox2_meta.csv").write_text("\n".join(meta) + "\n")
    return root


FFMPEG = """#!{python}
# Stand-in for ffmpeg: accepts only the recipe's m4a decoding command; the replica m4a holds wav.
import sys
args = sys.argv[1:]
expected = ["-v", "8", "-i", "PATH", "-f", "wav", "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", "-"]
if len(args) != len(expected) or any(e != "PATH" and a != e for a, e in zip(args, expected)):
    sys.exit("fake ffmpeg: unexpected arguments " + " ".join(args))
with open(args[3], "rb") as f:
    sys.stdout.buffer.write(f.read())
"""


def fake_ffmpeg(bin_dir: Path) -> Path:
    """Write ``bin_dir/ffmpeg`` (see module doc); put ``bin_dir`` first on PATH to use it."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / "ffmpeg"
    path.write_text(FFMPEG.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def path_with(bin_dir: Path) -> str:
    """PATH with ``bin_dir`` and this interpreter's folder first (pipes run ``python3``)."""
    return os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])


SITW_MODELS = {"dev": ("10005", "10012", "10021"), "eval": ("20003", "20007")}


def make_sitw(root: Path, seconds: float = 1.0) -> Path:
    """``root/{dev,eval}/audio/*.flac``, ``lists/enroll-core.lst`` and ``keys/core-core.lst``."""
    for s, (part, models) in enumerate(SITW_MODELS.items()):
        base = root / part
        enroll, keys = [], []
        tests = []
        for m, model in enumerate(models):
            enrol_name = f"e{part[0]}{m:02d}x"
            write_wav(base / "audio" / f"{enrol_name}.flac", speechlike(seconds, 5000 + 100 * s + m), "FLAC")
            enroll.append(f"{model} audio/{enrol_name}.flac")
            for t in range(2):
                name = f"t{part[0]}{m:02d}{t}q"
                write_wav(base / "audio" / f"{name}.flac", speechlike(seconds, 6000 + 100 * s + 10 * m + t), "FLAC")
                tests.append((model, name))
        for model in models:
            for owner, name in tests:
                keys.append(f"{model} audio/{name}.flac {'tgt' if owner == model else 'imp'}")
        (base / "lists").mkdir(parents=True, exist_ok=True)
        (base / "keys").mkdir(parents=True, exist_ok=True)
        (base / "lists" / "enroll-core.lst").write_text("\n".join(enroll) + "\n")
        (base / "keys" / "core-core.lst").write_text("\n".join(keys) + "\n")
    return root


def make_musan(root: Path) -> Path:
    """``root/{noise,music,speech}/SOURCE/CATEGORY-SOURCE-NNNN.wav`` plus the README and ANNOTATIONS."""
    rng = np.random.default_rng(7)
    sources = {"noise": ("free-sound", "sound-bible"), "music": ("fma", "jamendo"), "speech": ("librivox", "us-gov")}
    counts = {"noise": 2, "music": 1, "speech": 4}
    for c, (category, subdirs) in enumerate(sources.items()):
        for sub in subdirs:
            for n in range(counts[category]):
                seconds = 0.4 + 0.2 * n
                if category == "speech":
                    audio = speechlike(seconds, 7000 + 10 * c + n)
                else:
                    audio = (0.1 * rng.standard_normal(int(seconds * RATE))).astype(np.float32)
                write_wav(root / category / sub / f"{category}-{sub}-{n:04d}.wav", audio)
            (root / category / sub / "ANNOTATIONS").write_text("file annotation\n")
    (root / "README").write_text("MUSAN replica\n")
    return root


def make_rirs(root: Path, rooms: int = 2, per_room: int = 3) -> Path:
    """``root/simulated_rirs/{smallroom,mediumroom}/RoomNNN/RoomNNN-MMMMM.wav`` and each ``rir_list``;
    ``root`` is the RIRS_NOISES folder. Each RIR: a delayed direct path and a decaying tail."""
    rng = np.random.default_rng(11)
    for s, room_set in enumerate(("smallroom", "mediumroom")):
        lines = []
        for r in range(1, rooms + 1):
            for k in range(1, per_room + 1):
                n = int(0.05 * RATE) * (s + 1)
                rir = 0.05 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.01 * RATE))
                rir[10 + k] = 0.9
                rel = f"RIRS_NOISES/simulated_rirs/{room_set}/Room{r:03d}/Room{r:03d}-{k:05d}.wav"
                write_wav(root.parent / rel, rir.astype(np.float32))
                lines.append(f"--rir-id {room_set}-Room{r:03d}-{k:05d} --room-id {room_set}-Room{r:03d} {rel}")
        (root / "simulated_rirs" / room_set / "rir_list").write_text("\n".join(lines) + "\n")
    return root
