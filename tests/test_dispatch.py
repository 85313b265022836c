"""--cmd: the parallel steps run their jobs through utils/run.sh or utils/slurm.sh (against a
fake sbatch) as Kaldi's, and write exactly what their local jobs write."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from conftest import ROOT, run_tool
from test_embeddings_cli import write_tiny_model_and_feats
from test_features import make_data_dir
from test_utils_jobs import FAKE_SBATCH, install_fakes


def step(name, *args, cwd):
    p = run_tool(sys.executable, str(ROOT / "steps" / name), *args, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return p


def snapshot(*paths: Path) -> dict[str, bytes]:
    """Every file under ``paths`` (logs and locks aside: they hold times and PIDs), by path."""
    files = {}
    for path in paths:
        for f in sorted(path.rglob("*") if path.is_dir() else [path]):
            if f.is_file() and "log" not in f.relative_to(path.parent).parts[:-1] and f.name != ".lock" \
                    and not f.name.endswith(".log"):
                files[str(f)] = f.read_bytes()
    return files


def remove(*paths: Path) -> None:
    for path in paths:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def local_then_dispatched(run, outputs, cmd, cwd):
    """``run(*extra)`` locally, then again with ``--cmd cmd`` after removing ``outputs``; both snapshots."""
    run()
    local = snapshot(*outputs)
    remove(*outputs)
    run("--cmd", cmd)
    return local, snapshot(*outputs)


def test_run_sh_jobs_write_what_local_jobs_write(tmp_path):
    data = make_data_dir(tmp_path, [8000, 12000, 6000, 16000, 9000])
    run_sh = str(ROOT / "utils" / "run.sh")
    feats = [tmp_path / "mfcc", data / "feats.scp", data / "utt2num_frames", data / "feats_config.yaml"]
    local, dispatched = local_then_dispatched(
        lambda *o: step("make_features.py", "--nj", "2", *o, str(data), str(tmp_path / "mfcc"), cwd=tmp_path),
        feats, run_sh, tmp_path)
    assert len(local) == 11 and dispatched == local  # 2 jobs x (ark, scp, utt2num_frames, record) + 3 lists
    for j in (1, 2):  # the job runner's logs, one per job, ended well
        assert "# Ended (code 0)" in (data / "log" / f"job_raw_mfcc_data.{j}.log").read_text()

    vad = [tmp_path / "vad", data / "vad.scp"]
    local, dispatched = local_then_dispatched(
        lambda *o: step("compute_vad.py", "--nj", "2", *o, str(data), str(tmp_path / "vad"), cwd=tmp_path),
        vad, run_sh, tmp_path)
    assert len(local) == 7 and dispatched == local

    cmn = [tmp_path / "cmn", tmp_path / "data_no_sil"]
    local, dispatched = local_then_dispatched(
        lambda *o: step("prepare_feats_for_egs.py", "--nj", "3", *o, str(data), str(tmp_path / "data_no_sil"),
                        str(tmp_path / "cmn"), cwd=tmp_path), cmn, run_sh, tmp_path)
    assert any(name.endswith("xvector_feats_data_no_sil.3.ark") for name in local) and dispatched == local

    # a re-run through the runner finds every job fresh: nothing is rewritten
    before = {f: Path(f).stat().st_mtime_ns for f in dispatched}
    step("prepare_feats_for_egs.py", "--nj", "3", "--cmd", run_sh, str(data), str(tmp_path / "data_no_sil"),
         str(tmp_path / "cmn"), cwd=tmp_path)
    assert {f: Path(f).stat().st_mtime_ns for f in dispatched} == before


def test_slurm_sh_jobs_run_and_write_what_local_jobs_write(tmp_path, monkeypatch):
    install_fakes(tmp_path, monkeypatch, sbatch=FAKE_SBATCH)
    monkeypatch.setenv("FAKE_SBATCH_ARGS", str(tmp_path / "sbatch.args"))
    data = make_data_dir(tmp_path, [8000, 12000, 6000])
    feats = [tmp_path / "mfcc", data / "feats.scp", data / "utt2num_frames", data / "feats_config.yaml"]
    local, dispatched = local_then_dispatched(
        lambda *o: step("make_features.py", "--nj", "3", *o, str(data), str(tmp_path / "mfcc"), cwd=tmp_path),
        feats, f"{ROOT}/utils/slurm.sh --mem 2G", tmp_path)
    assert dispatched == local
    args = (tmp_path / "sbatch.args").read_text().splitlines()
    assert "--array=1-3" in args and "--mem=2G" in args and "--job-name=job_raw_mfcc_data.array" in args
    script = Path(args[-1]).read_text()
    assert script.count("steps/make_features.py") == 3 and "--job\\ 3/3" in script and "--cmd" not in script


def test_slurm_sh_option_given_again_keeps_its_last_value(tmp_path, monkeypatch):
    """A recipe's "$cuda_cmd --gpu 8 ..." with cuda_cmd="utils/slurm.sh --gpu 1 --mem 16G" asks for 8 GPUs."""
    install_fakes(tmp_path, monkeypatch, sbatch=FAKE_SBATCH)
    monkeypatch.setenv("FAKE_SBATCH_ARGS", str(tmp_path / "sbatch.args"))
    slurm_sh = str(ROOT / "utils" / "slurm.sh")
    p = run_tool(slurm_sh, "--gpu", "1", "--mem", "16G", "--gpu", "8", "--mem=4G", "log/t.log", "true", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    args = (tmp_path / "sbatch.args").read_text().splitlines()
    assert [a for a in args if a.startswith(("--gres", "--mem"))] == ["--gres=gpu:8", "--mem=4G"]
    p = run_tool(slurm_sh, "--gpu", "1", "--gpu=0", "log/t.log", "true", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert not [a for a in (tmp_path / "sbatch.args").read_text().splitlines() if a.startswith("--gres")]


def test_failed_dispatched_job_is_named(tmp_path):
    data = make_data_dir(tmp_path, [8000, 12000])
    (data / "wav.scp").write_text((data / "wav.scp").read_text().replace("u01.wav", "missing.wav"))
    p = run_tool(sys.executable, str(ROOT / "steps" / "make_features.py"), "--nj", "2", "--cmd",
                 str(ROOT / "utils" / "run.sh"), str(data), str(tmp_path / "mfcc"), cwd=tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "1 of 2 jobs failed" in p.stderr and f"see {data}/log/job_raw_mfcc_data.2.log" in p.stderr
    assert "missing.wav" in (data / "log" / "job_raw_mfcc_data.2.log").read_text()
    assert not (data / "feats.scp").exists() and (tmp_path / "mfcc" / "raw_mfcc_data.1.scp").exists()


@pytest.fixture
def model_and_data(tmp_path):
    model, data, _ = write_tiny_model_and_feats(tmp_path, classes=("p", "q"), utts_per_spk=4, max_frames=200)
    return model, data


def test_extraction_jobs_through_run_sh_equal_local_jobs(tmp_path, model_and_data):
    model, data = model_and_data
    out = tmp_path / "xv"
    local, dispatched = local_then_dispatched(
        lambda *o: step("extract_embeddings.py", "--nj", "3", "--device", "cpu", *o, str(model), str(data), str(out),
                        cwd=tmp_path), [out], str(ROOT / "utils" / "run.sh"), tmp_path)
    names = sorted(Path(f).name for f in local)
    assert names == [".made_from.json", "num_utts.ark", "spk_xvector.ark", "spk_xvector.scp",
                     "xvector.ark", "xvector.scp"]  # the jobs' archives are gathered and removed
    assert dispatched == local
    assert sorted(p.name for p in (out / "log").iterdir()) == [f"job_xvector_job.{j}.log" for j in (1, 2, 3)]
    step("extract_embeddings.py", "--device", "cpu", str(model), str(data), str(tmp_path / "xv1"), cwd=tmp_path)
    one = dict(kaldiio.load_scp(str(tmp_path / "xv1" / "xvector.scp")))
    for key, emb in kaldiio.load_scp(str(out / "xvector.scp")).items():
        np.testing.assert_allclose(emb, one[key], rtol=1e-5, atol=1e-6)
