"""bench/bench_scale.py's made-up VoxCeleb2 metadata, and bench/gpu_train_extract.py run on the
CPU with tiny sizes, so that the GPU check is known to work before a GPU machine runs it."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_scale  # noqa: E402


def test_vox2_metadata_has_voxceleb2_dev_size_and_lengths():
    ids, spk, seconds = bench_scale.vox2_metadata()
    assert len(ids) == len(set(ids)) == 1_092_009 and len(seconds) == len(ids)
    counts = np.bincount(spk)
    assert len(counts) == 5_994 and counts.min() >= 8
    assert 7.6 < seconds.mean() < 8.0 and seconds.min() >= 4.0
    assert ids == sorted(ids, key=str.encode)
    assert all(re.fullmatch(r"id\d{5}-[\w-]{11}-\d{5}", u) and u[:7] == f"id{s:05d}"
               for u, s in zip(ids[::997], spk[::997]))


@pytest.mark.slow
def test_gpu_train_extract_runs_on_cpu(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench/gpu_train_extract.py"), "--device", "cpu",
                           "--iters", "4", "--batch-size", "8", "--frames", "20", "--num-spk", "12",
                           "--utt-frames", "30", "--frame-dims", "8,8,8,8,16", "--emb-dim", "8",
                           "--extract-utts", "3", "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = dict(re.findall(r"^figure: (\S+) (\S+) ", proc.stdout, re.M))
    assert sorted(figures) == ["extract_x_realtime[cpu]", "train_data_wait_fraction[cpu]",
                               "train_frames_per_s[cpu]", "train_it_per_s[cpu]"]
    assert all(float(v) > 0 for k, v in figures.items() if "wait" not in k)
    assert 0 <= float(figures["train_data_wait_fraction[cpu]"]) < 1
    assert "3 utterances of 800 frames" in proc.stdout and "8-dim embeddings" in proc.stdout
