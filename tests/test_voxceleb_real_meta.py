"""The VoxCeleb recipe on the real metadata files (../shared/voxceleb_meta from the repository
root): the full lists parsed, and miniature audio trees built from them (tiny WAVs) prepared by
the library and the recipe's local scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import replicas
from dropclass_lib.corpora.voxceleb import (prepare_voxceleb1, prepare_voxceleb2, read_vox1_meta, read_vox1_trials,
                                            read_vox2_meta, utt_id_from_relpath, voxceleb1_test_dir)
from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.trials import read_trials

ROOT = Path(__file__).resolve().parents[1]
META = ROOT.parent / "shared" / "voxceleb_meta"
LOCAL = ROOT / "egs" / "voxceleb" / "local"

pytestmark = pytest.mark.skipif(not (META / "veri_test2.txt").is_file(),
                                reason=f"the real VoxCeleb metadata ({META}) is not available")

VOX1_O_TRIALS, VOX1_O_TARGETS, VOX1_O_UTTS = 37611, 18802, 4708
VOX1_TEST_SPEAKERS = [f"id{n}" for n in range(10270, 10310)]


def run_script(script: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True)


def tiny_wav(path: Path, seed: int) -> None:
    replicas.write_wav(path, replicas.speechlike(0.02, seed))


def veri_test2_relpaths() -> list[str]:
    return sorted({rel for line in (META / "veri_test2.txt").read_text().splitlines() for rel in line.split()[1:]})


@pytest.fixture(scope="module")
def vox1_tree(tmp_path_factory) -> Path:
    """VoxCeleb1 with the real vox1_meta.csv and veri_test2.txt: a tiny WAV for each of the 4,708
    utterances of the list, and two utterances each of the first three dev speakers."""
    root = tmp_path_factory.mktemp("vox1")
    for name in ("vox1_meta.csv", "veri_test2.txt"):
        shutil.copy(META / name, root / name)
    dev = [spk for spk, part in read_vox1_meta(META / "vox1_meta.csv").items() if part == "dev"][:3]
    rels = veri_test2_relpaths() + [f"{spk}/vid{spk[2:]}/0000{k}.wav" for spk in dev for k in (1, 2)]
    for i, rel in enumerate(rels):
        tiny_wav(root / "wav" / rel, i)
    return root


def test_real_vox1_meta_is_tab_separated_with_1251_speakers():
    assert "\t" in (META / "vox1_meta.csv").read_text().splitlines()[1]
    meta = read_vox1_meta(META / "vox1_meta.csv")
    assert len(meta) == 1251 and Counter(meta.values()) == {"dev": 1211, "test": 40}
    assert sorted(s for s, part in meta.items() if part == "test") == VOX1_TEST_SPEAKERS


def test_real_vox2_meta_with_byte_order_mark_and_padded_fields():
    raw = (META / "vox2_meta.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\nid00012 ,n000012 ,m ,dev \n" in raw
    meta = read_vox2_meta(META / "vox2_meta.csv")
    assert len(meta) == 6114 and Counter(meta.values()) == {"dev": 5994, "test": 120}
    assert meta["id00012"] == "dev" and all(len(s) == 7 and s.startswith("id") for s in meta)


def test_real_meta_errors_name_the_line(tmp_path):
    lines = (META / "vox1_meta.csv").read_text().splitlines()
    bad = tmp_path / "vox1_meta.csv"
    bad.write_text("\n".join(lines + [lines[5]]) + "\n")
    with pytest.raises(InputFileError, match=rf"vox1_meta.csv:1253: speaker {lines[5].split()[0]} is listed a second"):
        read_vox1_meta(bad)
    bad.write_text("\n".join(lines[:3] + [lines[3].replace("\t", ",")]) + "\n")  # a comma-separated line
    with pytest.raises(InputFileError, match=r"vox1_meta.csv:4: expected 5 tab-separated fields"):
        read_vox1_meta(bad)
    bad2 = tmp_path / "vox2_meta.csv"
    bad2.write_bytes((META / "vox2_meta.csv").read_bytes() + b"id00012 ,n000012 ,m ,test \n")
    with pytest.raises(InputFileError, match=r"vox2_meta.csv:6116: speaker id00012 is listed a second time"):
        read_vox2_meta(bad2)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_real_veri_test2_any_line_end(tmp_path, newline, final_newline):
    lines = (META / "veri_test2.txt").read_text().splitlines()
    copy = tmp_path / "veri_test2.txt"
    copy.write_bytes((newline.join(lines) + (newline if final_newline else "")).encode())
    known = {utt_id_from_relpath(rel) for line in lines for rel in line.split()[1:]}
    trials = read_vox1_trials(copy, known)
    assert len(trials) == VOX1_O_TRIALS and int(trials.target.sum()) == VOX1_O_TARGETS
    assert len(trials.utts()) == VOX1_O_UTTS
    last = lines[-1].split()
    assert (trials.enrol[-1], trials.test[-1], trials.target[-1]) == (
        utt_id_from_relpath(last[1]), utt_id_from_relpath(last[2]), last[0] == "1")
    assert all(t.split("-")[0] == e.split("-")[0] for e, t, y in zip(trials.enrol, trials.test, trials.target) if y)


def test_voxceleb1_tree_from_the_real_lists(vox1_tree):
    test = prepare_voxceleb1(vox1_tree, "test")
    assert test.speakers() == VOX1_TEST_SPEAKERS and len(test) == VOX1_O_UTTS
    dev = prepare_voxceleb1(vox1_tree, "dev")
    assert len(dev.speakers()) == 3 and len(dev) == 6
    o = voxceleb1_test_dir(prepare_voxceleb1(vox1_tree), vox1_tree / "veri_test2.txt")
    assert len(o.trials) == VOX1_O_TRIALS and int(o.trials.target.sum()) == VOX1_O_TARGETS
    assert len(o) == VOX1_O_UTTS and len(o.enrol) == len(set(o.trials.enrol))
    speakers = np.array([o.utt2spk[u] for u in o.trials.enrol]) == np.array([o.utt2spk[u] for u in o.trials.test])
    np.testing.assert_array_equal(speakers, o.trials.target)
    missing = o.utts()[0]
    spk, (video, seg) = missing[:7], missing[8:].rsplit("-", 1)  # YouTube ids may hold '-'
    (vox1_tree / "wav" / spk / video / f"{seg}.wav").rename(vox1_tree / "aside.wav")
    try:
        with pytest.raises(InputFileError, match=rf"veri_test2.txt:\d+: utterance {spk}/{video}/{seg}.wav is not in"):
            voxceleb1_test_dir(prepare_voxceleb1(vox1_tree), vox1_tree / "veri_test2.txt")
    finally:
        (vox1_tree / "aside.wav").rename(vox1_tree / "wav" / spk / video / f"{seg}.wav")


@pytest.mark.slow
def test_make_voxceleb1_on_the_real_lists_with_crlf(vox1_tree, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    lines = (vox1_tree / "veri_test2.txt").read_text().splitlines()
    (lists / "veri_test2.txt").write_bytes("\r\n".join(lines).encode())  # CRLF, no final newline
    data = tmp_path / "data"
    prep = run_script(LOCAL / "make_voxceleb1.py", "--lists", "O", "--lists-dir", lists, vox1_tree, data)
    assert prep.returncode == 0, prep.stderr
    assert "vox1_O: 37611 trials (18802 target) on 4708 utterances" in prep.stderr
    for name in ("voxceleb1", "vox1_O"):
        proc = run_script(ROOT / "utils" / "validate_data_dir.py", data / name)
        assert proc.returncode == 0, proc.stderr
    trials = read_trials(data / "vox1_O" / "trials")
    assert len(trials) == VOX1_O_TRIALS and int(trials.target.sum()) == VOX1_O_TARGETS


def vox2_tree(root: Path, dev: list[str], test: list[str]) -> Path:
    """VoxCeleb2 with the real vox2_meta.csv and two tiny utterances per speaker (wav inside .m4a)."""
    root.mkdir(parents=True)
    shutil.copy(META / "vox2_meta.csv", root / "vox2_meta.csv")
    for part, speakers in (("dev", dev), ("test", test)):
        for i, spk in enumerate(speakers):
            for k in (1, 2):
                tiny_wav(root / part / "aac" / spk / "21Uxsk56VDQ" / f"0000{k}.m4a", 10 * i + k)
    return root


def test_voxceleb2_tree_from_the_real_meta(tmp_path):
    meta = read_vox2_meta(META / "vox2_meta.csv")
    dev = [s for s, part in meta.items() if part == "dev"][:3]
    test = [s for s, part in meta.items() if part == "test"][:1]
    root = vox2_tree(tmp_path / "vox2", dev, test)
    assert prepare_voxceleb2(root).speakers() == sorted(dev)
    assert prepare_voxceleb2(root, "test").speakers() == test
    (root / "test" / "aac" / test[0]).rename(root / "dev" / "aac" / test[0])  # a test speaker among dev
    with pytest.raises(UserError, match=rf"vox2_meta.csv: 1 speaker\(s\) under .* not listed as 'dev' .*{test[0]}"):
        prepare_voxceleb2(root)


@pytest.mark.slow
def test_make_voxceleb2_on_the_real_meta(tmp_path):
    meta = read_vox2_meta(META / "vox2_meta.csv")
    dev = [s for s, part in meta.items() if part == "dev"][-2:]
    root = vox2_tree(tmp_path / "vox2", dev, [])
    proc = run_script(LOCAL / "make_voxceleb2.py", root, tmp_path / "data" / "train")
    assert proc.returncode == 0, proc.stderr
    proc = run_script(ROOT / "utils" / "validate_data_dir.py", "--no-file-check", tmp_path / "data" / "train")
    assert proc.returncode == 0, proc.stderr
    assert DataDir.load(tmp_path / "data" / "train").speakers() == sorted(dev)
