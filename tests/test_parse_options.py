"""utils/parse_options.sh, exercised from a real bash script."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROOT

SCRIPT = f"""#!/usr/bin/env bash
set -euo pipefail
nj=4
use_gpu=false
out_name="a b"
help_message="Usage: demo.sh [--nj N] <dir>"
. {ROOT}/utils/parse_options.sh
echo "nj=$nj use_gpu=$use_gpu out_name=$out_name"
for a in "$@"; do echo "arg=$a"; done
"""


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "demo.sh"
    path.write_text(SCRIPT)

    def run(*args):
        return subprocess.run(["bash", str(path), *args], capture_output=True, text=True, cwd=tmp_path)
    return run


def test_options_set_existing_variables(demo):
    p = demo("--nj", "8", "--use-gpu=true", "--out_name", "x  y", "pos 1", "--nj", "3")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["nj=8 use_gpu=true out_name=x  y", "arg=pos 1", "arg=--nj", "arg=3"]


def test_double_dash_ends_options(demo):
    p = demo("--", "--nj", "3")
    assert p.stdout.splitlines() == ["nj=4 use_gpu=false out_name=a b", "arg=--nj", "arg=3"]


def test_help_prints_help_message(demo):
    for flag in ("--help", "-h"):
        p = demo("--nj", "2", flag, "x")
        assert p.returncode == 0 and p.stdout == "Usage: demo.sh [--nj N] <dir>\n"


@pytest.mark.parametrize("args, message", [
    (["--nproc", "3"], "invalid option --nproc"),
    (["--nj"], "option --nj needs a value"),
    (["--use-gpu", "yes"], "option --use-gpu takes true or false, got 'yes'"),
    (["--bad!name=1"], "invalid option --bad!name"),
])
def test_bad_options(demo, args, message):
    p = demo(*args)
    assert p.returncode == 1 and p.stdout == ""
    assert message in p.stderr


def test_config_file_is_read_first(demo, tmp_path):
    (tmp_path / "c.conf").write_text("# defaults for the cluster\nnj=10\n\nuse_gpu=true\nout_name='from conf'\n")
    p = demo("--nj", "2", "--config", "c.conf", "d")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["nj=2 use_gpu=true out_name=from conf", "arg=d"]
    p = demo("--config=c.conf")
    assert p.stdout.splitlines() == ["nj=10 use_gpu=true out_name=from conf"]


def test_bad_config_files(demo, tmp_path):
    (tmp_path / "c.conf").write_text("nj=3\nnum_jobs=3\n")
    p = demo("--config", "c.conf")
    assert p.returncode == 1 and "c.conf:2: unknown option 'num_jobs': 'num_jobs=3'" in p.stderr
    (tmp_path / "c.conf").write_text("nj 3\n")
    p = demo("--config", "c.conf")
    assert p.returncode == 1 and "c.conf:1: expected name=value: 'nj 3'" in p.stderr
    p = demo("--config", "missing.conf")
    assert p.returncode == 1 and "config file missing.conf (given with --config) does not exist" in p.stderr
