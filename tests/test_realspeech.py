"""egs/realspeech/run.sh: skips cleanly without the shared corpora; a reduced run end to end with them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "realspeech"
SHARED = ROOT.parent / "shared" / "data"


def _run(*args, cwd=ROOT):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(RECIPE / "run.sh"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_skips_with_a_message_when_the_data_root_is_absent(tmp_path):
    proc = _run("--data-root", tmp_path / "nowhere", "--work-dir", tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    assert "skipping the real-speech recipe" in proc.stdout
    assert f"{tmp_path}/nowhere/arabic_speech_commands" in proc.stdout
    assert f"{tmp_path}/nowhere/dspspeech20" in proc.stdout
    assert not (tmp_path / "work").exists()


def test_names_the_one_missing_corpus_relative_to_the_callers_folder(tmp_path):
    (tmp_path / "root" / "dspspeech20").mkdir(parents=True)
    proc = _run("--data-root", "root", "--work-dir", tmp_path / "work", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"not found: {tmp_path}/root/arabic_speech_commands (" in proc.stdout
    assert "dspspeech20 (" not in proc.stdout.split("not found:")[1].split("(")[0]


def test_bad_option_fails(tmp_path):
    proc = _run("--with-synthetic", "maybe", "--data-root", tmp_path)
    assert proc.returncode != 0 and "true or false" in proc.stderr


def _subset_corpora(dest: Path, words: int) -> None:
    """The shared corpora's layout with the first ``words`` words of every speaker (file symlinks)."""
    asc, dsp = SHARED / "arabic_speech_commands", SHARED / "dspspeech20"
    (dest / "arabic_speech_commands" / "dataset").mkdir(parents=True)
    for csv in ("train.csv", "val.csv", "test.csv"):
        os.symlink(asc / csv, dest / "arabic_speech_commands" / csv)
    for kw in sorted(p.name for p in (asc / "dataset").iterdir())[:words]:
        (dest / "arabic_speech_commands" / "dataset" / kw).mkdir()
        for f in (asc / "dataset" / kw).iterdir():
            os.symlink(f, dest / "arabic_speech_commands" / "dataset" / kw / f.name)
    for spk in (dsp / "speech_data").iterdir():
        out = dest / "dspspeech20" / "speech_data" / spk.name
        out.mkdir(parents=True)
        for f in sorted(spk.iterdir()):
            if int(f.name.split("-")[1]) < words:
                os.symlink(f, out / f.name)


def _tiny(conf: str, out: Path, **changes) -> Path:
    """A recipe config with small network and few iterations (``section.key`` changes)."""
    cfg = yaml.safe_load((RECIPE / "conf" / conf).read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    out.write_text(yaml.safe_dump(cfg))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent: the shared real corpora are needed")
def test_reduced_run_end_to_end(tmp_path):
    _subset_corpora(tmp_path / "corpora", words=2)
    small = dict(model__extractor_opts={"frame_dims": [32, 32, 32, 32, 64], "emb_dim": 16},
                 train__num_iters=20, train__checkpoint_every=20, optim__warmup_iters=0, optim__lr_halve_at=[],
                 data__batch_size=16, data__num_workers=0)
    base = _tiny("train_baseline.yaml", tmp_path / "b.yaml", **small)
    drop = _tiny("train_dropclass.yaml", tmp_path / "d.yaml", dropclass__its_per_drop=5, **small)
    adapt = _tiny("dropadapt.yaml", tmp_path / "a.yaml", adapt__its_per_drop=5, adapt__num_drop=4,
                  adapt__min_remaining=16, data__batch_size=16, data__num_workers=0, train__checkpoint_every=5)
    work = tmp_path / "work"
    proc = _run("--data-root", tmp_path / "corpora", "--work-dir", work, "--seeds", 1, "--lda-dim", 8,
                "--baseline-conf", base, "--dropclass-conf", drop, "--dropadapt-conf", adapt)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Trials stay within a corpus; every test set is scored by every system with both back-ends.
    for c in ("asc", "dsp"):
        for line in (work / "data" / f"{c}_test_no_sil" / "trials").read_text().splitlines():
            enrol, test, _ = line.split()
            assert enrol.startswith(f"{c}-") and test.startswith(f"{c}-")
    train_spks = (work / "data" / "train_real" / "spk2utt").read_text().split("\n")
    assert {s.split("-")[0] for s in train_spks if s} == {"asc", "dsp"}
    results = json.loads((work / "exp" / "real" / "RESULTS.json").read_text())
    text = json.dumps(results)
    for needle in ("asc_test", "dsp_test", "baseline", "dropclass", "dropadapt", "mfcc_floor", "plda", "cosine"):
        assert needle in text, needle
    for c in ("asc", "dsp"):
        assert (work / "exp" / "real" / "dropadapt_models" / f"{c}_seed1" / "final.pt").is_file()
    # The front end is recorded beside each model, for steps/score_corpus.py.
    front = yaml.safe_load((work / "exp" / "real" / "baseline" / "seed1" / "frontend.yaml").read_text())
    assert front["feats"]["num_ceps"] == 30 and front["cmn_window"] == 300
    assert front["vad"] == yaml.safe_load((RECIPE / "conf" / "vad.yaml").read_text())

    # A second run finds every model, embedding and score done: nothing is recomputed.
    outputs = [p for p in (work / "exp").rglob("*") if p.suffix in (".pt", ".ark", ".npz") or p.name == "metrics.json"]
    mtimes = {p: p.stat().st_mtime_ns for p in outputs}
    proc = _run("--data-root", tmp_path / "corpora", "--work-dir", work, "--seeds", 1, "--lda-dim", 8,
                "--baseline-conf", base, "--dropclass-conf", drop, "--dropadapt-conf", adapt, "--stop-stage", 4)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in outputs} == mtimes
