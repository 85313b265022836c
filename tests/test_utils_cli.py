"""Every utils/ command: executable, documented by --help, user errors without traceback."""

from __future__ import annotations

import contextlib
import io
import os

import pytest

from conftest import ROOT, assert_line_error, load_script, run_tool

PY_TOOLS = sorted(p.name for p in (ROOT / "utils").glob("*.py"))
EXPECTED = {"validate_data_dir.py", "fix_data_dir.py", "subset_data_dir.py", "combine_data.py", "filter_data_dir.py",
            "copy_data_dir.py", "utt2spk_to_spk2utt.py", "spk2utt_to_utt2spk.py", "data_dir_to_lhotse.py",
            "lhotse_to_data_dir.py"}


def test_expected_tools_exist():
    assert EXPECTED <= set(PY_TOOLS)


@pytest.mark.parametrize("tool", PY_TOOLS)
def test_help_documents_the_tool(tool):
    path = ROOT / "utils" / tool
    assert os.access(path, os.X_OK) and path.read_text().startswith("#!/usr/bin/env python3\n")
    module = load_script(f"utils/{tool}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert out.getvalue().startswith("usage: ") and module.__doc__.split()[0] in out.getvalue()


def test_real_process_user_error_has_no_traceback(data_dir):
    rows = (data_dir / "utt2spk").read_text().splitlines()
    (data_dir / "utt2spk").write_text("\n".join([rows[1], rows[0], *rows[2:]]) + "\n")
    p = run_tool("utils/validate_data_dir.py", str(data_dir))
    assert_line_error(p.returncode, p.stderr, data_dir / "utt2spk", 2, rows[0], "not sorted")
    assert p.stderr.startswith("ERROR (validate_data_dir.py): ") and p.stderr.count("\n") == 1


def test_real_process_ok_and_bad_option(data_dir):
    p = run_tool("utils/validate_data_dir.py", "--no_file_check", str(data_dir))
    assert p.returncode == 0 and "OK (6 utterances, 3 speakers)" in p.stderr
    p = run_tool("utils/validate_data_dir.py", "--no-such-option", str(data_dir))
    assert p.returncode == 2 and "unrecognized arguments: --no-such-option" in p.stderr
