"""Sliding-window CMN (Kaldi's centred window placement) against a direct per-frame
computation, voiced-frame selection, and the prepare_feats_for_egs step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from dropclass_lib.cmn import prepare_feats_for_egs, select_voiced_frames, sliding_window_cmn
from dropclass_lib.errors import UserError
from dropclass_lib.trials import read_trials

ROOT = Path(__file__).resolve().parent.parent


def direct_cmn(x: np.ndarray, window: int) -> np.ndarray:
    """Each frame minus the mean of its window: [t - W//2, t - W//2 + W) shifted into the utterance."""
    n = len(x)
    out = np.empty_like(x, dtype=np.float64)
    for t in range(n):
        start = t - window // 2
        end = start + window
        if start < 0:
            end -= start
            start = 0
        if end > n:
            start = max(start - (end - n), 0)
            end = n
        out[t] = x[t] - x[start:end].astype(np.float64).mean(axis=0)
    return out


@pytest.mark.parametrize("n", [1, 2, 50, 299, 300, 301, 1000])
@pytest.mark.parametrize("window", [300, 7, 8])
def test_sliding_cmn_matches_direct(n, window):
    x = np.random.default_rng(n * window).normal(5, 3, (n, 4)).astype(np.float32)
    got = sliding_window_cmn(x, window)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.allclose(got, direct_cmn(x, window), atol=1e-4)


def test_edge_frames_use_first_and_last_window():
    x = np.arange(1000, dtype=np.float32)[:, None]
    got = sliding_window_cmn(x, 300)[:, 0]
    assert got[0] == pytest.approx(0 - 149.5) and got[149] == pytest.approx(149 - 149.5)
    assert got[500] == pytest.approx(500 - np.mean(np.arange(350, 650)))
    assert got[-1] == pytest.approx(999 - np.mean(np.arange(700, 1000)))
    short = sliding_window_cmn(x[:10], 300)[:, 0]
    assert np.allclose(short, np.arange(10) - 4.5)


def test_select_voiced_frames():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert np.array_equal(select_voiced_frames(x, np.array([1, 0, 0, 1, 1, 0], np.float32)), x[[0, 3, 4]])
    assert select_voiced_frames(x, np.zeros(6)).shape == (0, 2)
    with pytest.raises(UserError, match="'u1': 6 feature frames but 5 VAD decisions"):
        select_voiced_frames(x, np.ones(5), "u1")


def make_dir(tmp_path: Path) -> tuple[Path, dict, dict]:
    rng = np.random.default_rng(0)
    d = tmp_path / "in"
    d.mkdir()
    feats, vads = {}, {}
    lengths = {"a1": 350, "a2": 120, "b1": 700, "b2": 40, "c1": 90}
    for utt, n in lengths.items():
        feats[utt] = rng.normal(0, 1, (n, 5)).astype(np.float32) + np.linspace(0, 9, n)[:, None].astype(np.float32)
        vads[utt] = (rng.random(n) > 0.4).astype(np.float32)
    vads["b2"][:] = 0  # no voiced frame: dropped
    kaldiio.save_ark(str(tmp_path / "f.ark"), feats, scp=str(d / "feats.scp"))
    kaldiio.save_ark(str(tmp_path / "v.ark"), vads, scp=str(d / "vad.scp"))
    (d / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in lengths))
    (d / "spk2utt").write_text("a a1 a2\nb b1 b2\nc c1\n")
    (d / "wav.scp").write_text("".join(f"{u} /x/{u}.wav\n" for u in lengths))
    (d / "trials").write_text("a1 b1 nontarget\na1 a2 target\nb2 b1 target\nc1 b2 nontarget\nc1 a2 nontarget\n")
    (d / "enrol.list").write_text("a1\nb2\nc1\n")
    return d, feats, vads


@pytest.mark.parametrize("nj", [1, 2])
def test_prepare_feats_for_egs(tmp_path, nj):
    d, feats, vads = make_dir(tmp_path)
    out = tmp_path / "out"
    prepare_feats_for_egs(d, out, tmp_path / "x", nj=nj)
    got = kaldiio.load_scp(str(out / "feats.scp"))
    assert sorted(got) == ["a1", "a2", "b1", "c1"]
    for utt in got:
        expected = direct_cmn(feats[utt], 300)[vads[utt] != 0]
        assert np.allclose(got[utt], expected, atol=1e-4)
    n2f = dict(line.split() for line in (out / "utt2num_frames").read_text().splitlines())
    assert {u: int(n) for u, n in n2f.items()} == {u: got[u].shape[0] for u in got}
    assert (out / "utt2spk").read_text() == "a1 a\na2 a\nb1 b\nc1 c\n"
    assert (out / "spk2utt").read_text() == "a a1 a2\nb b1\nc c1\n"
    assert "b2" not in (out / "wav.scp").read_text()
    trials = read_trials(out / "trials")
    assert len(trials) == 3 and "b2" not in set(trials.enrol) | set(trials.test)
    assert (out / "enrol.list").read_text() == "a1\nc1\n"
    # re-running reuses the finished jobs
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "x").glob("*.ark")}
    prepare_feats_for_egs(d, out, tmp_path / "x", nj=nj)
    assert mtimes == {p: p.stat().st_mtime_ns for p in (tmp_path / "x").glob("*.ark")}


def test_rerun_with_other_nj(tmp_path):
    """The reported bug: a re-run with another --nj took the old job 1 (a subset of the new
    job 1's utterances, as jobs may drop some) for finished and wrote a partial data dir. Now
    every job is recorded with its utterances: another split redoes them, a killed job is redone."""
    d, feats, vads = make_dir(tmp_path)
    out, x = tmp_path / "out", tmp_path / "x"
    prepare_feats_for_egs(d, out, x, nj=2)
    full = {k: v.tolist() for k, v in kaldiio.load_scp(str(out / "feats.scp")).items()}

    def got():
        return {k: v.tolist() for k, v in kaldiio.load_scp(str(out / "feats.scp")).items()}

    for nj in (1, 3, 2):
        prepare_feats_for_egs(d, out, x, nj=nj)
        assert got() == full and sorted(full) == ["a1", "a2", "b1", "c1"]
    (x / "xvector_feats_out.2.scp").unlink()  # job 2 "killed"
    prepare_feats_for_egs(d, out, x, nj=2)
    assert got() == full
    assert sorted(p.name for p in x.glob("xvector_feats_out.*.scp")) == ["xvector_feats_out.1.scp",
                                                                        "xvector_feats_out.2.scp"]


def test_another_cmn_window_redoes_the_archives(tmp_path):
    d, feats, vads = make_dir(tmp_path)
    out, x = tmp_path / "out", tmp_path / "x"
    prepare_feats_for_egs(d, out, x, nj=1, cmn_window=300)
    prepare_feats_for_egs(d, out, x, nj=1, cmn_window=3)
    got = kaldiio.load_scp(str(out / "feats.scp"))
    for utt in got:
        assert np.allclose(got[utt], direct_cmn(feats[utt], 3)[vads[utt] != 0], atol=1e-4)


def test_missing_vad_entry_is_an_error(tmp_path):
    d, _, _ = make_dir(tmp_path)
    lines = (d / "vad.scp").read_text().splitlines()
    (d / "vad.scp").write_text("\n".join(lines[1:]) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "steps" / "prepare_feats_for_egs.py"), str(d), str(tmp_path / "o"),
                        str(tmp_path / "x")], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "vad.scp: no entry for 1 utterance(s) of utt2spk, e.g. 'a1'" in r.stderr
