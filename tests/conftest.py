"""Shared fixtures: tiny, valid Kaldi data directories with real (short) audio files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from dropclass_lib.tables import write_table

ROOT = Path(__file__).resolve().parents[1]


def write_wav(path: Path, seconds: float, rate: int = 16000, seed: int = 0) -> Path:
    """A mono 16-bit WAV of low-level noise."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate, subtype="PCM_16")
    return path


def make_data_dir(root: Path, speakers: dict[str, int], seconds: float = 0.2, rate: int = 16000,
                  utt_prefix: str = "") -> Path:
    """Write ``root/data`` with ``speakers[spk]`` utterances per speaker (``spk-uttN``),
    their WAV files under ``root/wav``, and wav.scp/utt2spk/spk2utt/utt2dur."""
    data = root / "data"
    utt2spk, wav, utt2dur = {}, {}, {}
    for i, (spk, n) in enumerate(sorted(speakers.items())):
        for j in range(n):
            utt = f"{utt_prefix}{spk}-utt{j}"
            dur = seconds + 0.01 * j
            utt2spk[utt] = spk
            wav[utt] = str(write_wav(root / "wav" / f"{utt}.wav", dur, rate, seed=100 * i + j))
            utt2dur[utt] = round(int(dur * rate) / rate, 6)
    write_table(data / "utt2spk", utt2spk)
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    write_table(data / "spk2utt", spk2utt)
    write_table(data / "wav.scp", wav)
    write_table(data / "utt2dur", utt2dur)
    return data


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A valid data directory: speakers spkA (3 utterances), spkB (2), spkC (1)."""
    return make_data_dir(tmp_path, {"spkA": 3, "spkB": 2, "spkC": 1})


def run_tool(*args: str, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run a project command (``utils/foo.py``, ``bash utils/run.sh``) as a user would, with
    path.sh's environment; returns the completed process (text stdout/stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), LC_ALL="C", OMP_NUM_THREADS="1",
               PATH=f"{ROOT / 'utils'}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    cmd = [str(ROOT / args[0]) if args[0].startswith("utils/") else args[0], *args[1:]]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=check)


def load_script(relpath: str):
    """Import a script (``utils/validate_data_dir.py``) as a module, to call its ``main``."""
    import importlib.util

    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(relpath: str, *argv: str) -> tuple[int, str]:
    """Run a script's ``main`` in-process through ``run_main``, as its ``__main__`` block does;
    returns ``(exit status, stderr)``."""
    import contextlib
    import io

    from dropclass_lib.cli import run_main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        run_main(load_script(relpath).main, list(argv))
    return exit_info.value.code, err.getvalue()


def assert_line_error(code: int, stderr: str, path: Path, lineno: int, text: str, *fragments: str) -> None:
    """A user error: exit status 1, one ERROR line naming ``path:lineno`` and the line's text."""
    assert code == 1, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("ERROR ("), stderr
    assert f"{path}:{lineno}:" in stderr, stderr
    assert repr(text) in stderr, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


def pytest_collection_modifyitems(config, items):
    """The ``minutes`` tests first: pytest-xdist hands its first tests out in turn, so each of the
    two workers starts one of the longest runs at once instead of one worker finishing the
    suite alone with a run of several minutes collected last."""
    items.sort(key=lambda item: item.get_closest_marker("minutes") is None)
