"""The MFCC mean+std floor scorer: statistics over voiced frames, cosine, standard outputs."""

import json
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from dropclass_lib.errors import InputFileError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "steps"))
import score_mfcc_floor  # noqa: E402


def make_data(tmp_path, rng):
    """4 speakers x 3 utterances; voiced frames centred on a speaker mean, unvoiced ones loud noise."""
    data = tmp_path / "eval"
    data.mkdir()
    feats, vad, utts = {}, {}, []
    centres = rng.normal(size=(4, 6)) * 3
    for s in range(4):
        for u in range(3):
            utt = f"s{s}-u{u}"
            n = int(rng.integers(40, 80))
            voiced = rng.random(n) < 0.6
            x = centres[s] + rng.normal(size=(n, 6)) * 0.5
            x[~voiced] = rng.normal(size=((~voiced).sum(), 6)) * 40
            feats[utt], vad[utt] = x.astype(np.float32), voiced.astype(np.float32)
            utts.append(utt)
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    kaldiio.save_ark(str(data / "vad.ark"), vad, scp=str(data / "vad.scp"))
    lines = [f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}" for a in utts for b in utts if a < b]
    (data / "trials").write_text("\n".join(lines) + "\n")
    return data, feats, vad


def test_floor_scores_voiced_statistics(tmp_path):
    rng = np.random.default_rng(0)
    data, feats, vad = make_data(tmp_path, rng)
    out = tmp_path / "floor_vad"
    assert score_mfcc_floor.main([str(data), str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["floor"] is True and metrics["trial_set"] == "eval" and metrics["backend"] == "cosine_dm"
    assert metrics["eer"] == 0.0          # voiced statistics separate the speakers
    for name in ("scores", "RESULTS", "det.png", "hist.png"):
        assert (out / name).is_file()
    # One score recomputed from the definition: cosine of mean-subtracted [mean, std] vectors.
    stats = {u: np.concatenate([f[vad[u] > 0].mean(0), f[vad[u] > 0].std(0)]) for u, f in feats.items()}
    mean = np.mean(list(stats.values()), axis=0)
    e, t, s = (out / "scores").read_text().split("\n")[5].split()
    a, b = stats[e] - mean, stats[t] - mean
    assert float(s) == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-5)
    # Without VAD the loud unvoiced frames swamp the statistics.
    assert score_mfcc_floor.main(["--use-vad", "false", str(data), str(tmp_path / "floor_all")]) == 0
    assert json.loads((tmp_path / "floor_all" / "metrics.json").read_text())["eer"] > 10.0


def test_floor_is_redone_when_its_trials_or_options_change(tmp_path):
    data, _, _ = make_data(tmp_path, np.random.default_rng(2))
    out = tmp_path / "floor"
    assert score_mfcc_floor.main([str(data), str(out)]) == 0
    first = json.loads((out / "metrics.json").read_text())
    stamp = (out / "metrics.json").stat().st_mtime_ns
    assert score_mfcc_floor.main([str(data), str(out)]) == 0          # nothing changed: kept
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    lines = (data / "trials").read_text().splitlines()
    (data / "trials").write_text("\n".join(lines[:20]) + "\n")         # fewer trials: redone
    assert score_mfcc_floor.main([str(data), str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["num_trials"] == 20 != first["num_trials"]
    assert score_mfcc_floor.main(["--subtract-mean", "false", "--set-name", "x", str(data), str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["backend"] == "cosine" and m["trial_set"] == "x"


def test_floor_errors_name_the_file_and_line(tmp_path):
    rng = np.random.default_rng(1)
    data, _, _ = make_data(tmp_path, rng)
    with open(data / "trials", "a") as f:
        f.write("s0-u0 nobody nontarget\n")
    with pytest.raises(InputFileError, match=r"trials:67: test utterance 'nobody' is not in .*feats.scp"):
        score_mfcc_floor.main([str(data), str(tmp_path / "o")])
    kaldiio.save_ark(str(data / "vad2.ark"), {"s0-u0": np.ones(3, np.float32)}, scp=str(data / "vad.scp"))
    with pytest.raises(InputFileError, match="VAD decisions|no entry in vad.scp"):
        score_mfcc_floor.main([str(data), str(tmp_path / "o")])
