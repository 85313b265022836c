"""The freshness rule: outputs are kept only when their inputs, settings and code are unchanged."""

import hashlib
import json
import os
import sys

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
    src.write_text("cc\n")                                   # its content, same size
    run(out, {"lr": 0.05}, [src], calls)
    assert len(calls) == 4
    (out / "result").unlink()                                # an output gone
    run(out, {"lr": 0.05}, [src], calls)
    assert len(calls) == 5
    other = tmp_path / "other.txt"
    other.write_text("x")
    run(out, {"lr": 0.05}, [src, other], calls)              # another input
    assert len(calls) == 6


def test_a_small_input_written_again_unchanged_is_the_same_a_large_one_is_not(tmp_path, monkeypatch):
    """A list deleted and written again with the same lines (a data directory rebuilt) keeps what
    was made from it; an input too large to read at every check is known by its size and time."""
    small, large = tmp_path / "feats.scp", tmp_path / "feats.ark"
    small.write_text("u1 feats.ark:5\n")
    large.write_bytes(b"x" * 64)
    out, calls = tmp_path / "out", []
    monkeypatch.setattr(provenance, "DIGESTED_INPUT_BYTES", 32)
    run(out, {}, [small, large], calls)
    small.unlink()
    small.write_text("u1 feats.ark:5\n")
    os.utime(small, ns=(1, 1))
    run(out, {}, [small, large], calls)
    assert len(calls) == 1
    os.utime(large, ns=(1, 1))
    run(out, {}, [small, large], calls)
    assert len(calls) == 2


def test_an_unchanged_input_is_not_read_again(tmp_path, monkeypatch):
    src = tmp_path / "wav.scp"
    src.write_text("u1 a.wav\n")
    out, calls = tmp_path / "out", []
    run(out, {}, [src], calls)
    read = []
    real_digest = provenance.hashlib.file_digest
    monkeypatch.setattr(provenance.hashlib, "file_digest", lambda f, name: read.append(f.name) or real_digest(f, name))
    run(out, {}, [src], calls)
    assert calls == [1] and read == []
    os.utime(src, ns=(1, 1))                                 # another time: read, same content
    run(out, {}, [src], calls)
    assert calls == [1] and read == [str(src)]


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


def test_other_code_redoes_the_work_and_a_strict_stage_names_the_files(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.write_text("1")
    code = {"dropclass_lib/features.py": "aaaa", "dropclass_lib/vad.py": "bbbb"}
    monkeypatch.setattr(provenance, "code_identity", lambda: dict(code))
    out, calls = tmp_path / "out", []
    run(out, {"k": 1}, [src], calls)
    run(out, {"k": 1}, [src], calls)
    assert len(calls) == 1
    code["dropclass_lib/features.py"] = "cccc"                  # a fixed bug in the library
    run(out, {"k": 1}, [src], calls)
    assert len(calls) == 2
    code["steps/make_features.py"] = "dddd"                     # made by another script
    run(out, {"k": 1}, [src], calls)
    assert len(calls) == 3

    strict = tmp_path / "exp"
    run(strict, {"k": 1}, [src], [], strict=True)
    code["dropclass_lib/vad.py"] = "eeee"
    with pytest.raises(UserError, match=r"other inputs, settings or code \(code changed: dropclass_lib/vad\.py\)"):
        run(strict, {"k": 1}, [src], [], strict=True)
    record = json.loads((strict / provenance.RECORD).read_text())
    del record["code"]                                           # a record of an earlier version
    (strict / provenance.RECORD).write_text(json.dumps(record))
    with pytest.raises(UserError, match="code not recorded"):
        run(strict, {"k": 1}, [src], [], strict=True)


def test_code_identity_is_the_library_and_the_project_script_being_run(monkeypatch, tmp_path):
    identity = provenance.code_identity.__wrapped__
    lib = identity()
    own = provenance.PROJECT / "dropclass_lib" / "provenance.py"
    assert lib["dropclass_lib/provenance.py"] == hashlib.sha256(own.read_bytes()).hexdigest()[:16]
    assert all(p.startswith("dropclass_lib/") for p in lib)      # pytest's own main is no part of it

    main = type(sys)("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    main.__file__ = str(provenance.PROJECT / "steps" / "score_trials.py")
    assert set(identity()) - set(lib) == {"steps/score_trials.py"}
    for elsewhere in (tmp_path / "my_script.py", provenance.PROJECT / "tests" / "test_provenance.py"):
        main.__file__ = str(elsewhere)
        assert identity() == lib
