"""Reading scp entries: archives kept open between entries, key filtering, errors naming the line."""

import kaldiio
import numpy as np
import pytest

from dropclass_lib import vector_io
from dropclass_lib.errors import InputFileError
from dropclass_lib.vector_io import iter_scp, read_vectors, write_vectors


@pytest.fixture
def opened(monkeypatch):
    """Every file kaldiio opens to read an entry, in order."""
    files = []
    real = kaldiio.matio.open_like_kaldi

    def counting(name, mode="r"):
        f = real(name, mode)
        files.append(f)
        return f

    monkeypatch.setattr(kaldiio.matio, "open_like_kaldi", counting)
    return files


def vectors(n, dim=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_an_archive_is_opened_once_for_all_its_entries_and_closed_after(tmp_path, opened):
    x = vectors(50)
    scp = write_vectors(tmp_path, "xvector", [f"u{i:02d}" for i in range(50)], x)
    keys, got = read_vectors(scp)
    assert keys == [f"u{i:02d}" for i in range(50)] and np.array_equal(got, x)
    assert len(opened) == 1 and opened[0].closed


def test_interleaved_archives_beyond_the_open_limit_read_right_and_close(tmp_path, opened, monkeypatch):
    monkeypatch.setattr(vector_io, "MAX_OPEN_ARKS", 2)
    parts = {name: vectors(4, seed=i) for i, name in enumerate(["a", "b", "c"])}
    lines = {name: write_vectors(tmp_path, name, [f"{name}{j}" for j in range(4)], x).read_text().splitlines()
             for name, x in parts.items()}
    scp = tmp_path / "all.scp"
    scp.write_text("".join(f"{lines[name][j]}\n" for j in range(4) for name in "abc"))  # a0 b0 c0 a1 ...
    for lineno, key, v, line in iter_scp(scp):
        assert np.array_equal(v, parts[key[0]][int(key[1])]) and line.startswith(key + " ")
        assert sum(not f.closed for f in opened) <= 2
    assert all(f.closed for f in opened)


def test_keys_filter_and_line_numbers_are_those_of_the_scp(tmp_path):
    x = vectors(6)
    scp = write_vectors(tmp_path, "xvector", [f"u{i}" for i in range(6)], x)
    got = [(lineno, key) for lineno, key, v, line in iter_scp(scp, keys={"u1", "u4"})]
    assert got == [(2, "u1"), (5, "u4")]


def test_an_entry_without_offset_is_read_from_the_start_even_after_an_entry_of_its_file(tmp_path):
    x = vectors(1)[0]
    matrix_file = tmp_path / "one.vec"
    kaldiio.save_mat(str(matrix_file), x)  # a lone binary object, no key: "one.vec" reads it
    scp = tmp_path / "v.scp"
    scp.write_text(f"at_offset {matrix_file}:0\nwhole_file {matrix_file}\n")
    arrays = {key: v for _, key, v, _ in iter_scp(scp)}
    assert np.array_equal(arrays["at_offset"], x) and np.array_equal(arrays["whole_file"], x)


@pytest.mark.parametrize("bad", ["{ark}:999999", "{ark}x:5"])
def test_a_bad_entry_names_the_scp_line_and_closes_the_archives(tmp_path, opened, bad):
    x = vectors(3)
    scp = write_vectors(tmp_path, "xvector", ["u0", "u1", "u2"], x)
    text = scp.read_text().splitlines()
    text[1] = "u1 " + bad.format(ark=tmp_path / "xvector.ark")
    scp.write_text("\n".join(text) + "\n")
    with pytest.raises(InputFileError, match=rf"xvector.scp:2: cannot read the entry of 'u1'") as info:
        read_vectors(scp)
    assert info.value.lineno == 2 and info.value.line.startswith("u1 ")
    assert all(f.closed for f in opened)


def test_stopping_early_closes_the_archive(tmp_path, opened):
    scp = write_vectors(tmp_path, "xvector", ["u0", "u1", "u2"], vectors(3))
    entries = iter_scp(scp)
    next(entries)
    assert not opened[0].closed
    entries.close()
    assert opened[0].closed


def test_training_reads_of_compressed_matrices_use_the_open_archive(tmp_path, opened):
    from dropclass_lib.training.data import MatrixReader

    mats = {f"u{i}": vectors(40, dim=6, seed=i) for i in range(3)}
    ark, scp = tmp_path / "feats.ark", tmp_path / "feats.scp"
    kaldiio.save_ark(str(ark), mats, scp=str(scp), compression_method=2)
    offsets = [int(line.rsplit(":", 1)[1]) for line in scp.read_text().splitlines()]
    expected = [kaldiio.load_mat(f"{ark}:{off}") for off in offsets]  # decoded (lossy) as kaldiio decodes them
    opened.clear()
    reader = MatrixReader([str(ark)])
    for off, mat in zip(offsets, expected):
        assert reader.shape(0, off) == (40, 6)
        assert np.array_equal(reader.rows(0, off, 5, 10), mat[5:15])
    assert opened == []  # kaldiio decoded from the reader's own file: nothing reopened per read
    reader.close()
