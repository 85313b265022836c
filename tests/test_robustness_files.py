"""Results that stay true on disk: output modes follow the umask, a full disk is one clear line,
one writer per output directory, and a killed run leaves neither orphan workers nor temporary
files that the next run does not remove."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, make_data_dir, run_cli
from dropclass_lib import atomic
from dropclass_lib.atomic import atomic_open, atomic_path, remove_dead_temps
from dropclass_lib.dirlock import lock_output_dirs
from dropclass_lib.errors import UserError
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import save_model
from dropclass_lib.models import build_extractor
from dropclass_lib.parallel import ArkJob
from dropclass_lib.tables import write_table
from test_training import TINY
from test_training_data import make_feats_dir


def one_error_line(code: int, stderr: str) -> str:
    """The error a command ended with: exit status 1, no traceback, and one ERROR line that is
    the last line of stderr (a message spread over several lines would not be)."""
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith("ERROR ("), stderr
    return last


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), LC_ALL="C", OMP_NUM_THREADS="1")


def tiny_model(path: Path, input_dim: int = 6) -> Path:
    torch.manual_seed(0)
    ext = build_extractor("tdnn", input_dim=input_dim, frame_dims=[8, 8, 8, 8, 16], emb_dim=6)
    save_model(path, ext, build_head("softmax", 6, 2), ["A", "B"])
    return path


def tiny_config(path: Path, **data) -> Path:
    cfg = {k: dict(v) for k, v in TINY.items()}
    cfg["data"].update(data)
    cfg["train"].update({"num_iters": 4, "checkpoint_every": 4})
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------------------------- umask
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_open(tmp_path / "text") as f:
            f.write("x\n")
        write_table(tmp_path / "utt2spk", {"u": "s"})
        tiny_model(tmp_path / "final.pt")
        ArkJob(tmp_path / "raw", 1).write([("u", np.zeros((3, 2), np.float32))])
        with atomic_path(tmp_path / "sub" / "plain") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(old)
    for name in ("text", "utt2spk", "final.pt", "raw.1.ark", "raw.1.scp", "raw.1.utt2num_frames", "sub/plain"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# --------------------------------------------------------------------------------- disk full
@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk(fragment)``: temporary files for targets whose name holds ``fragment`` are
    /dev/full, so writing them fails in the kernel with ENOSPC as on a full file system."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    make_temp = atomic._temp_beside

    def arm(fragment: str):
        def temp_on_full_disk(path: Path) -> Path:
            tmp = make_temp(path)
            if fragment in path.name:
                tmp.unlink()
                tmp.symlink_to("/dev/full")
            return tmp

        monkeypatch.setattr(atomic, "_temp_beside", temp_on_full_disk)

    return arm


def test_disk_full_in_training(tmp_path, full_disk):
    data = make_feats_dir(tmp_path / "train")
    exp = tmp_path / "exp"
    full_disk("checkpoint_")
    line = one_error_line(*run_cli("steps/train_xvector.py", "--config", str(tiny_config(tmp_path / "c.yaml")),
                                   "--dir", str(exp), str(data)))
    assert f"no space left on device while writing {exp / 'checkpoint_0000004.pt'}" in line
    assert not [p for p in exp.iterdir() if p.name.endswith(".tmp")]


_FULL_DISK_SITECUSTOMIZE = """
from pathlib import Path
from dropclass_lib import atomic
make_temp = atomic._temp_beside
def temp_on_full_disk(path):
    tmp = make_temp(path)
    if {fragment!r} in Path(path).name:
        tmp.unlink()
        tmp.symlink_to("/dev/full")
    return tmp
atomic._temp_beside = temp_on_full_disk
"""


def test_disk_full_in_features(tmp_path):
    """The archive is written in a job process, which a monkeypatch of the test's own process
    does not reach: every interpreter of the run gets /dev/full through sitecustomize."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_FULL_DISK_SITECUSTOMIZE.format(fragment=".ark"))
    data = make_data_dir(tmp_path, {"spkA": 2})
    feat = tmp_path / "mfcc"
    run = subprocess.run([sys.executable, str(ROOT / "steps/make_features.py"), "--nj", "1", str(data), str(feat)],
                         env=dict(env(), PYTHONPATH=f"{site}{os.pathsep}{ROOT}"), capture_output=True, text=True)
    line = one_error_line(run.returncode, run.stderr)
    assert f"no space left on device while writing {feat / 'raw_mfcc_data.1.ark'}" in line
    assert not (data / "feats.scp").exists()


def test_disk_full_in_extraction(tmp_path, full_disk):
    data = make_feats_dir(tmp_path / "test", num_spk=2, utts_per_spk=2)
    model = tiny_model(tmp_path / "final.pt")
    out = tmp_path / "xv"
    full_disk("xvector.ark")
    line = one_error_line(*run_cli("steps/extract_embeddings.py", str(model), str(data), str(out)))
    assert f"no space left on device while writing {out / 'xvector.ark'}" in line
    assert not (out / "xvector.scp").exists()


def test_other_write_errors_keep_their_traceback(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_path(tmp_path / "x"):
            raise PermissionError(13, "Permission denied")


# ----------------------------------------------------------------------- one writer per dir
@pytest.fixture(scope="module")
def held_dir(tmp_path_factory):
    """A directory whose lock another process holds; yields ``(dir, holder pid)``."""
    locked = tmp_path_factory.mktemp("locked") / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom dropclass_lib.dirlock import lock_output_dirs\n"
         "with lock_output_dirs(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n", str(locked)],
        stdout=subprocess.PIPE, text=True, env=env())
    assert holder.stdout.readline().strip() == "held"
    yield locked, holder.pid
    holder.kill()
    holder.wait()


CONF = ROOT / "conf"
# Each step with its output directory as OUT; the inputs need not exist, the lock comes first.
STEPS = {
    "features": ("steps/make_features.py", "DATA", "OUT"),
    "features-data": ("steps/make_features.py", "OUT", "FEATS"),
    "vad": ("steps/compute_vad.py", "DATA", "OUT"),
    "cmn": ("steps/prepare_feats_for_egs.py", "DATA", "OUT", "FEATS"),
    "training": ("steps/train_xvector.py", "--config", str(CONF / "train_baseline.yaml"), "--dir", "OUT", "DATA"),
    "extraction": ("steps/extract_embeddings.py", "MODEL", "DATA", "OUT"),
    "dropadapt": ("steps/dropadapt.py", "--config", str(CONF / "dropadapt.yaml"), "MODEL", "DATA", "DATA", "OUT"),
    "plda": ("steps/train_plda.py", "SCP", "UTT2SPK", "OUT"),
    "scoring": ("steps/score_trials.py", "TRIALS", "SCP", "SCP", "OUT"),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_second_writer_stops_at_once(tmp_path, held_dir, step):
    locked, pid = held_dir
    script, *args = STEPS[step]
    args = [str(locked) if a == "OUT" else str(tmp_path / a.lower()) if a.isupper() else a for a in args]
    start = time.monotonic()
    line = one_error_line(*run_cli(script, *args))
    assert f"{locked} is locked by PID {pid}" in line
    assert time.monotonic() - start < 10


def test_lock_is_released_when_its_holder_dies(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom dropclass_lib.dirlock import lock_output_dirs\n"
         "with lock_output_dirs(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n", str(out)],
        stdout=subprocess.PIPE, text=True, env=env())
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"is locked by PID {holder.pid}"):
        with lock_output_dirs(out):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with lock_output_dirs(out, out / ".." / "out"):  # the same directory twice is one lock
        assert (out / ".lock").read_text().split()[0] == str(os.getpid())
    assert not (out / ".lock").exists()


# -------------------------------------------------------------------------------- killed runs
def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_temporary_files_of_dead_processes_are_removed(tmp_path):
    dead = f".feats.scp.{atomic._HOST}-{_dead_pid()}-abcdefgh.tmp"
    live = f".feats.scp.{atomic._HOST}-{os.getpid()}-abcdefgh.tmp"
    other_host = f".feats.scp.otherhost{atomic._HOST}-{_dead_pid()}-abcdefgh.tmp"
    helper = f".xvector.ark.{atomic._HOST}-{_dead_pid()}-abcdefgh.tmp.scp"
    for name in (dead, live, other_host, helper, "feats.scp"):
        (tmp_path / name).write_text("x")
    assert sorted(p.name for p in remove_dead_temps(tmp_path)) == sorted([dead, helper])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live, other_host, "feats.scp"])
    # the names atomic_path gives are the ones recognised
    with atomic_path(tmp_path / "y") as tmp:
        assert atomic._TEMP_NAME.match(tmp.name).group("pid") == str(os.getpid())


def _descendants(pid: int) -> list[int]:
    """Children, their children and so on (the jobs are children of a fork server)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []
    return children + [d for c in children for d in _descendants(c)]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reparented orphan that died may wait unreaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_killed_feature_run_leaves_no_orphans_and_the_next_run_cleans_up(tmp_path):
    data = make_data_dir(tmp_path, {"spkA": 3, "spkB": 3})
    wav = data / "wav.scp"
    # Slow commands, so the run is killed while its jobs write their archives.
    wav.write_text("".join(f"{u} sleep 0.4; cat {p} |\n" for u, p in
                           (line.split() for line in wav.read_text().splitlines())))
    feat = tmp_path / "mfcc"
    cmd = [sys.executable, str(ROOT / "steps/make_features.py"), "--nj", "2", str(data), str(feat)]
    run = subprocess.Popen(cmd, env=env(), stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline:
        workers = _descendants(run.pid)
        temps = [p for p in feat.glob(".*.tmp")] if feat.is_dir() else []
        if len(temps) >= 2:  # both jobs are writing
            break
        time.sleep(0.05)
    else:
        run.kill()
        pytest.fail("the feature jobs did not start")
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_running, workers)), "worker processes outlived the killed run"
    assert list(feat.glob(".*.tmp")), "the killed jobs' half-written archives should still be there"
    rerun = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert (data / "feats.scp").is_file()
    leftovers = [p.name for d in (feat, data) for p in d.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
