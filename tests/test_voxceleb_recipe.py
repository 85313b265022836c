"""egs/voxceleb/run.sh on replica corpora: every data stage, features, and a few training iterations
(torchrun's two processes in one $cuda_cmd job)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

import replicas
from dropclass_lib.datadir import DataDir, validate_data_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "voxceleb"


def recipe_workdir(tmp_path: Path, num_aug_utts: int) -> Path:
    """A working directory linking to the recipe (data/ and exp/ land here), with a small augmentation."""
    work = tmp_path / "work"
    (work / "conf").mkdir(parents=True)
    for name in ("run.sh", "path.sh", "cmd.sh", "local"):
        (work / name).symlink_to(RECIPE / name)
    for name in ("steps", "utils"):
        (work / name).symlink_to(ROOT / name)
    for conf in (RECIPE / "conf").iterdir():
        if conf.name != "augment.yaml":
            (work / "conf" / conf.name).symlink_to(conf.resolve())
    text = (RECIPE / "conf" / "augment.yaml").read_text()
    assert "num_aug_utts: 1000000\n" in text
    (work / "conf" / "augment.yaml").write_text(text.replace("num_aug_utts: 1000000\n", f"num_aug_utts: {num_aug_utts}\n"))
    return work


def run(work: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "run.sh", *args], cwd=work, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_help_documents_corpus_paths():
    proc = subprocess.run(["bash", str(RECIPE / "run.sh"), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ("--vox1-root", "--vox2-root", "--sitw-root", "--musan-root", "--rir-root"):
        assert option in proc.stdout
    proc = subprocess.run(["bash", str(RECIPE / "run.sh"), "--stop-stage", "0"], capture_output=True, text=True)
    assert proc.returncode == 1 and "stage 0 needs --vox2-root" in proc.stderr


@pytest.mark.slow
def test_recipe_on_replicas(tmp_path):
    corpora = tmp_path / "corpora"
    replicas.make_voxceleb1(corpora / "vox1", seconds=2.0)
    replicas.make_voxceleb2(corpora / "vox2", seconds=2.0)
    replicas.make_sitw(corpora / "sitw", seconds=2.0)
    replicas.make_musan(corpora / "musan")
    replicas.make_rirs(corpora / "rirs" / "RIRS_NOISES")
    replicas.fake_ffmpeg(tmp_path / "bin")
    env = {**os.environ, "PATH": replicas.path_with(tmp_path / "bin"), "OMP_NUM_THREADS": "1"}
    work = recipe_workdir(tmp_path, num_aug_utts=8)
    roots = ["--vox1-root", str(corpora / "vox1"), "--vox2-root", str(corpora / "vox2"),
             "--sitw-root", str(corpora / "sitw"), "--musan-root", str(corpora / "musan"),
             "--rir-root", str(corpora / "rirs" / "RIRS_NOISES")]
    start = time.monotonic()
    run(work, "--stop-stage", "5", "--nj", "1", "--min-frames", "50", "--min-utts-per-spk", "2", *roots, env=env)
    print(f"stages 0-5: {time.monotonic() - start:.1f} s")
    data = work / "data"
    for d in sorted(data.iterdir()):  # what utils/validate_data_dir.py checks, in-process
        validate_data_dir(d, require_feats=d.name.endswith(("_no_sil", "_enrol", "_filtered", "_backend")))
    clean, aug = DataDir.load(data / "train"), DataDir.load(data / "train_aug")
    assert len(aug) == 8 and all(u.rsplit("-", 1)[0] in clean.utt2spk for u in aug.utts())
    train = DataDir.load(data / "train_filtered")
    assert set(train.utts()) <= set(clean.utts()) | set(aug.utts()) and set(aug.utts()) & set(train.utts())
    for u in set(aug.utts()) & set(train.utts()):  # the clean VAD fits the augmented copy
        assert train.utt2num_frames[u] == train.utt2num_frames[u.rsplit("-", 1)[0]]
    assert min(train.utt2num_frames.values()) >= 50
    assert set(DataDir.load(data / "train_backend").utts()) == set(clean.utts()) & set(train.utts())
    for name in ("vox1_O", "vox1_E", "vox1_H", "sitw_dev", "sitw_eval"):
        enrol = DataDir.load(data / f"{name}_enrol")
        assert enrol.feats is not None and enrol.utts() == enrol.enrol == DataDir.load(data / name).enrol
    start = time.monotonic()
    run(work, "--stage", "6", "--stop-stage", "6", "--systems", "baseline_aam", "--num-gpus", "2", "--train-opts",
        "--set train.num_iters=2 --set data.batch_size=3 --set data.min_frames=50 --set data.max_frames=50 --set data.min_utt_frames=50 "
        "--set data.num_workers=0 --set train.checkpoint_every=1", env=env)
    print(f"stage 6: {time.monotonic() - start:.1f} s")
    assert (work / "exp" / "baseline_aam" / "final.pt").is_file()
    # one $cuda_cmd job (cmd.sh: utils/run.sh) running torchrun's two processes (DDP, gloo on CPU)
    job_log = (work / "exp" / "baseline_aam" / "log" / "train_xvector.log").read_text()
    assert job_log.startswith("# torchrun --standalone --nproc_per_node 2 steps/train_xvector.py ")
    assert "2 process(es) on cpu" in job_log and "# Ended (code 0)" in job_log
    proc = run(work, "--stop-stage", "1", *roots, env=env)
    assert proc.stderr.count("already prepared, skipping") == 12
