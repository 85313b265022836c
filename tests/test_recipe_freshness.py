"""The default recipe (egs/synthetic/run.sh), reduced to seconds: a second run redoes nothing, and
one configuration change redoes exactly the stages downstream of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "synthetic"
OPTIONS = ["--nj", "1", "--min-frames", "50", "--min-utts-per-spk", "2", "--lda-dim", "4", "--backend-adapt", "mean plda"]
TINY_MODEL = {"extractor": "tdnn", "extractor_opts": {"frame_dims": [24, 24, 24, 24, 48], "emb_dim": 16}}
TINY_DATA = {"batch_size": 6, "min_frames": 40, "max_frames": 60, "min_utt_frames": 40, "num_workers": 0}
TINY = {  # per conf file: the keys set below the recipe's own values
    "synthetic_corpus.yaml": {"num_train_speakers": 10, "utts_per_train_speaker": 3, "num_test_speakers": 5,
                              "utts_per_test_speaker": 3, "duration_s": [1.2, 2.0],
                              "trials": {"nontargets_per_enrol": 6}},
    "train_baseline.yaml": {"model": TINY_MODEL, "data": TINY_DATA,
                            "optim": {"lr_halve_at": [], "warmup_iters": 0},
                            "train": {"num_iters": 8, "checkpoint_every": 4, "log_every": 4}},
    "train_dropclass.yaml": {"model": TINY_MODEL, "data": TINY_DATA,
                             "optim": {"lr_halve_at": [], "warmup_iters": 0},
                             "dropclass": {"num_drop": 2, "its_per_drop": 4},
                             "train": {"num_iters": 8, "checkpoint_every": 4, "log_every": 4}},
    "dropadapt.yaml": {"adapt": {"num_rounds": 1, "num_drop": 2, "its_per_drop": 4, "min_remaining": 4,
                                 "train_utts_for_plot": 10},
                       "data": TINY_DATA, "train": {"checkpoint_every": 4, "log_every": 4}},
}


def _merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) and key != "model" else value
    return out


def _write_conf(work: Path, name: str, changes: dict) -> None:
    base = yaml.safe_load((RECIPE / "conf" / name).read_text())
    (work / "conf" / name).write_text(yaml.safe_dump(_merge(base, changes), sort_keys=False))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A working directory linking to the recipe, with tiny configurations; data/ and exp/ go here."""
    work = tmp_path_factory.mktemp("synthetic")
    (work / "conf").mkdir()
    for name in ("run.sh", "path.sh", "cmd.sh", "local", "steps", "utils"):
        (work / name).symlink_to(RECIPE / name)
    for conf in (RECIPE / "conf").iterdir():
        if conf.name in TINY:
            _write_conf(work, conf.name, TINY[conf.name])
        else:
            (work / "conf" / conf.name).symlink_to(conf)
    return work


def _run(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "run.sh", *OPTIONS, *args], cwd=work, env=env, capture_output=True, text=True)
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


RUNNER_LOGS = ("train_xvector.log", "dropadapt.log", "adapt_model.log")  # the recipe's single jobs, run on every run


def _state(work: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under data/, mfcc/, corpus/ and exp/, records included, except
    the job runner's logs of the training, DropAdapt and back-end adaptation jobs: the recipe runs
    those steps as one job each on every run (they find themselves fresh), and the runner rewrites
    their log as Kaldi's."""
    return {str(p.relative_to(work)): (p.stat().st_size, p.stat().st_mtime_ns)
            for top in ("data", "mfcc", "corpus", "exp") for p in (work / top).rglob("*")
            if p.is_file() and not (p.parent.name == "log" and p.name in RUNNER_LOGS)}


@pytest.mark.minutes
@pytest.mark.slow
def test_rerun_redoes_nothing_and_a_change_redoes_what_follows(work):
    _run(work)
    first = _state(work)
    assert (work / "exp" / "RESULTS.md").is_file()
    assert any(k.endswith(".made_from.json") for k in first)
    for system in ("baseline", "dropclass", "dropadapt", "backend_mean", "backend_plda"):
        assert (work / "exp" / system / "seed0" / "scores_test_plda" / "metrics.json").is_file()
    for how in ("mean", "plda"):
        adaptation = yaml.safe_load((work / "exp" / f"backend_{how}" / "seed0" / "adaptation.yaml").read_text())
        assert adaptation["backend_adapt"] == how and not adaptation["dropadapt"]
        assert adaptation["adaptation_utterances"] == len((work / "data" / "test" / "enrol.list").read_text().split())
    assert "backend_plda" in (work / "exp" / "RESULTS.md").read_text()

    _run(work)
    second = _state(work)
    assert second == first, {k: (first.get(k), second.get(k)) for k in set(first) | set(second)
                             if first.get(k) != second.get(k)}

    # One change in the DropClass configuration: a trained system made otherwise is an error naming
    # the key; with --overwrite true exactly the DropClass system is redone (training, package,
    # scores) and the results table, nothing upstream and no other system.
    _write_conf(work, "train_dropclass.yaml", _merge(TINY["train_dropclass.yaml"], {"dropclass": {"its_per_drop": 2}}))
    proc = _run(work, check=False)
    assert proc.returncode == 1 and "settings.config.dropclass.its_per_drop (4 -> 2)" in proc.stderr, proc.stderr[-2000:]
    _run(work, "--overwrite", "true")
    third = _state(work)
    changed = {k for k in set(first) | set(third) if first.get(k) != third.get(k)}
    assert changed, "nothing was redone"
    outside = sorted(k for k in changed if not k.startswith("exp/dropclass/") and not k.startswith("exp/RESULTS"))
    assert not outside, outside
    assert "exp/dropclass/seed0/final.pt" in changed
    assert "exp/dropclass/seed0/scores_test_plda/scores" in changed
