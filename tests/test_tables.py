"""Kaldi text tables: line-accurate errors, C-locale order, atomic writing."""

from __future__ import annotations

import os

import pytest

from dropclass_lib.atomic import atomic_open, regenerating
from dropclass_lib.errors import InputFileError
from dropclass_lib.tables import c_sorted, iter_table, read_key_list, read_key_rest, read_kv, write_table


def test_c_sorted_is_byte_order():
    assert c_sorted(["b", "B", "a_1", "a-1", "a1", "é", "z"]) == ["B", "a-1", "a1", "a_1", "b", "z", "é"]


def test_readers(tmp_path):
    p = tmp_path / "t"
    p.write_text("u1 cat /x y.wav |\n\nu2  /a.wav \r\n")
    assert read_key_rest(p) == {"u1": "cat /x y.wav |", "u2": "/a.wav"}
    p.write_text("s1 u1 u2\ns2 u3\n")
    assert read_key_list(p) == {"s1": ["u1", "u2"], "s2": ["u3"]}
    with pytest.raises(InputFileError, match=r"t:1: expected at most 2 fields, got 3: 's1 u1 u2'"):
        read_kv(p)


@pytest.mark.parametrize("text, kwargs, message", [
    ("a 1\na 2\n", {}, r":2: duplicate key 'a': 'a 2'"),
    ("b 1\na 2\n", {"check_sorted": True}, r":2: not sorted .*: 'a 2'"),
    ("a 1\n b 2\n", {}, r":2: line starts with whitespace: ' b 2'"),
    ("a 1\nb\n", {}, r":2: expected at least 2 fields, got 1: 'b'"),
])
def test_line_errors(tmp_path, text, kwargs, message):
    (tmp_path / "t").write_text(text)
    with pytest.raises(InputFileError, match=message) as err:
        list(iter_table(tmp_path / "t", **kwargs))
    assert err.value.lineno == 2


def test_non_utf8_line_number_beyond_the_read_buffer(tmp_path):
    good = b"".join(b"utt%05d spk\n" % i for i in range(3000))  # ~45 kB: several read buffers
    (tmp_path / "t").write_bytes(good + b"bad\xff spk\n")
    with pytest.raises(InputFileError, match=r"t:3001: not valid UTF-8 text: b'bad\\xff spk'"):
        list(iter_table(tmp_path / "t"))


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="nope: file does not exist"):
        read_kv(tmp_path / "nope")


def test_write_table_sorted_and_atomic(tmp_path):
    p = tmp_path / "sub" / "t"
    write_table(p, {"b": [1, 2], "B": "x", "a": 0.5})
    assert p.read_text() == "B x\na 0.5\nb 1 2\n"
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("half")
            raise RuntimeError("crash")
    assert p.read_text() == "B x\na 0.5\nb 1 2\n"
    assert [q.name for q in p.parent.iterdir()] == ["t"]


def test_rewriting_the_same_content_keeps_the_file_and_its_mtime(tmp_path):
    p = tmp_path / "t"
    write_table(p, {"a": 1, "b": 2})
    os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    write_table(p, {"b": 2, "a": 1})                 # same bytes: untouched
    assert p.stat().st_mtime_ns == 1_000_000_000
    write_table(p, {"a": 1, "b": 3})                 # new content: replaced
    assert p.stat().st_mtime_ns != 1_000_000_000 and p.read_text() == "a 1\nb 3\n"
    assert [q.name for q in tmp_path.iterdir()] == ["t"]


def test_regenerating_puts_identical_files_back_and_leaves_none_on_failure(tmp_path):
    same, changed = tmp_path / "same", tmp_path / "changed"
    for p in (same, changed):
        p.write_text("old\n")
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    with regenerating(same, changed):
        assert not same.exists() and not changed.exists()   # out of the way meanwhile
        same.write_text("old\n")
        changed.write_text("new\n")
    assert same.stat().st_mtime_ns == 1_000_000_000 and same.read_text() == "old\n"
    assert changed.read_text() == "new\n" and changed.stat().st_mtime_ns != 1_000_000_000
    with pytest.raises(RuntimeError):
        with regenerating(same):
            raise RuntimeError("job failed")
    assert not same.exists()                                 # no stale list after a failure
    assert sorted(q.name for q in tmp_path.iterdir()) == ["changed"]
