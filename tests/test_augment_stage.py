"""steps/augment_data_dir.py under the freshness rule: an augmented dir is kept, with the features
computed on it since, while its settings and sources are unchanged, and rewritten otherwise."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT
from dropclass_lib.augment import AUGMENT_RECORD
from dropclass_lib.tables import read_kv, write_table
from test_augment import write_clean_dir

STEP = ROOT / "steps" / "augment_data_dir.py"


def _augment(*args):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(STEP), *map(str, args)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def _times(d):
    return {p.name: p.stat().st_mtime_ns for p in d.iterdir() if p.is_file()}


def test_kept_when_unchanged_redone_when_settings_or_sources_change(tmp_path):
    clean = write_clean_dir(tmp_path, speakers=3, per_spk=2)
    out = tmp_path / "aug"
    _augment("--set", "num_aug_utts=4", clean, out)
    assert len(read_kv(out / "utt2spk")) == 4 and (out / AUGMENT_RECORD).is_file()
    (out / "feats.scp").write_text("made by the features that follow\n")  # as make_features leaves it
    before = _times(out)
    proc = _augment("--set", "num_aug_utts=4", clean, out)
    assert "up to date" in proc.stderr
    assert _times(out) == before  # nothing rewritten: the features stay

    # Another setting: the dir is made again, and the features of the old copies go with it.
    proc = _augment("--set", "num_aug_utts=5", clean, out)
    assert "settings.config.num_aug_utts (4 -> 5)" in proc.stderr
    assert len(read_kv(out / "utt2spk")) == 5 and not (out / "feats.scp").exists()

    # A source table changed (an utterance fewer), the settings the same: redone, without it.
    for name in ("utt2spk", "wav.scp", "utt2dur", "vad.scp"):
        table = read_kv(clean / name)
        del table["s02-u1"]
        write_table(clean / name, table)
    write_table(clean / "spk2utt", {"s00": "s00-u0 s00-u1", "s01": "s01-u0 s01-u1", "s02": "s02-u0"})
    proc = _augment("--set", "num_aug_utts=5", clean, out)
    assert f"input changed: {(clean / 'utt2spk').resolve()}" in proc.stderr
    assert len(read_kv(out / "utt2spk")) == 5 and not any(u.startswith("s02-u1") for u in read_kv(out / "utt2spk"))
