"""The freshness rule: outputs are kept only when their inputs and settings are unchanged."""

import json
import os

import pytest

from dropclass_lib import provenance
from dropclass_lib.errors import UserError


def run(out, settings, inputs, calls, **kw):
    with provenance.stage(out, settings, inputs, outputs=("result",), **kw) as st:
        if not st.fresh:
            calls.append(1)
            out.mkdir(parents=True, exist_ok=True)
            (out / "result").write_text(json.dumps(settings))
    return st


def test_kept_when_nothing_changed_redone_when_anything_does(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("a\n")
    out, calls = tmp_path / "out", []
    run(out, {"lr": 0.1}, [src], calls)
    run(out, {"lr": 0.1}, [src], calls)
    assert len(calls) == 1
    run(out, {"lr": 0.05}, [src], calls)                    # a setting
    assert len(calls) == 2
    src.write_text("bb\n")                                   # an input's content (size)
    run(out, {"lr": 0.05}, [src], calls)
    assert len(calls) == 3
    os.utime(src, ns=(1, 1))                                 # an input's time
    run(out, {"lr": 0.05}, [src], calls)
    assert len(calls) == 4
    (out / "result").unlink()                                # an output gone
    run(out, {"lr": 0.05}, [src], calls)
    assert len(calls) == 5
    other = tmp_path / "other.txt"
    other.write_text("x")
    run(out, {"lr": 0.05}, [src, other], calls)              # another input
    assert len(calls) == 6


def test_a_failed_run_is_never_fresh(tmp_path):
    src = tmp_path / "in"
    src.write_text("1")
    out = tmp_path / "out"
    run(out, {"k": 1}, [src], [])
    with pytest.raises(RuntimeError):
        with provenance.stage(out, {"k": 2}, [src], outputs=("result",)) as st:
            assert not st.fresh
            raise RuntimeError("crash half-way")
    assert not (out / provenance.RECORD).exists()
    calls = []
    run(out, {"k": 2}, [src], calls)
    assert calls == [1]


def test_strict_stage_names_what_differs_and_overwrite_proceeds(tmp_path):
    src = tmp_path / "data.scp"
    src.write_text("u1 x\n")
    out = tmp_path / "exp"
    run(out, {"optim": {"lr": 0.1, "momentum": 0.9}}, [src], [], strict=True)
    with pytest.raises(UserError, match=r"settings\.optim\.lr \(0\.1 -> 0\.05\).*--overwrite"):
        run(out, {"optim": {"lr": 0.05, "momentum": 0.9}}, [src], [], strict=True)
    src.write_text("u1 x\nu2 y\n")
    with pytest.raises(UserError, match="input changed: .*data.scp"):
        run(out, {"optim": {"lr": 0.1, "momentum": 0.9}}, [src], [], strict=True)
    calls = []
    run(out, {"optim": {"lr": 0.05, "momentum": 0.9}}, [src], calls, strict=True, overwrite=True)
    assert calls == [1]


def test_a_missing_input_is_an_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="nowhere.scp does not exist"):
        run(tmp_path / "o", {}, [tmp_path / "nowhere.scp"], [])
