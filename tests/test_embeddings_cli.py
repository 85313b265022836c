"""steps/extract_embeddings.py on a saved TDNN model: archives, speaker means, skipping, errors."""

import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from dropclass_lib.embeddings import embed_utterances
from dropclass_lib.errors import InputFileError
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import load_model, save_model
from dropclass_lib.models import build_extractor
from dropclass_lib.tables import read_kv
from dropclass_lib.vector_io import read_vectors

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "steps"))
import extract_embeddings  # noqa: E402


def write_tiny_model_and_feats(root: Path, classes=("A", "B"), utts_per_spk: int = 3,
                               max_frames: int = 70) -> tuple[Path, Path, dict]:
    """A tiny TDNN model ``root/final.pt`` and a data dir ``root/data`` of random 5-dim features,
    speakers p and q with ``utts_per_spk`` utterances of 8..``max_frames`` frames each."""
    torch.manual_seed(0)
    ext = build_extractor("tdnn", input_dim=5, frame_dims=[8, 8, 8, 8, 16], emb_dim=6)
    save_model(root / "final.pt", ext, build_head("softmax", 6, len(classes)), list(classes))
    rng = np.random.default_rng(0)
    data = root / "data"
    data.mkdir()
    feats = {f"{s}-{i}": rng.normal(size=(int(n), 5)).astype(np.float32)
             for s in "pq" for i, n in enumerate(rng.integers(8, max_frames, size=utts_per_spk))}
    kaldiio.save_ark(str(data / "feats.ark"), feats, scp=str(data / "feats.scp"))
    (data / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in sorted(feats)))
    return root / "final.pt", data, feats


@pytest.fixture
def setup(tmp_path):
    _, data, feats = write_tiny_model_and_feats(tmp_path)
    return tmp_path, data, feats


def test_extracts_utterance_and_speaker_embeddings(setup):
    tmp_path, data, feats = setup
    out = tmp_path / "xv"
    assert extract_embeddings.main(["--chunk-frames", "30", "--batch-size", "4", str(tmp_path / "final.pt"),
                                    str(data), str(out)]) == 0
    keys, mat = read_vectors(out / "xvector.scp")
    assert keys == sorted(feats) and mat.shape == (6, 6)
    model = load_model(tmp_path / "final.pt")
    expected = dict(embed_utterances(model.extractor, feats.items(), chunk_frames=30, batch_size=1))
    for k, row in zip(keys, mat):
        np.testing.assert_allclose(row, expected[k], rtol=1e-4, atol=1e-5)
    spk, means = read_vectors(out / "spk_xvector.scp")
    assert spk == ["p", "q"]
    np.testing.assert_allclose(means[0], mat[:3].mean(axis=0), rtol=1e-5)
    assert read_kv(out / "num_utts.ark") == {"p": "3", "q": "3"}
    # Up to date: a rerun with the same model and options does not rewrite
    before = (out / "xvector.ark").stat().st_mtime_ns
    assert extract_embeddings.main(["--chunk-frames", "30", str(tmp_path / "final.pt"), str(data), str(out)]) == 0
    assert (out / "xvector.ark").stat().st_mtime_ns == before


def test_another_chunk_length_or_model_redoes_the_embeddings(setup):
    """The issue's case: extraction with another model or --chunk-frames into the same dir said
    "is up to date: skipping" and kept the old embeddings."""
    tmp_path, data, feats = setup
    out = tmp_path / "xv"
    model = load_model(tmp_path / "final.pt")
    extract_embeddings.main(["--chunk-frames", "30", str(tmp_path / "final.pt"), str(data), str(out)])
    extract_embeddings.main(["--chunk-frames", "10000", str(tmp_path / "final.pt"), str(data), str(out)])
    keys, mat = read_vectors(out / "xvector.scp")
    whole = dict(embed_utterances(model.extractor, feats.items(), chunk_frames=10000, batch_size=1))
    for k, row in zip(keys, mat):
        np.testing.assert_allclose(row, whole[k], rtol=1e-4, atol=1e-5)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    torch.manual_seed(7)
    ext = build_extractor("tdnn", input_dim=5, frame_dims=[8, 8, 8, 8, 16], emb_dim=6)
    save_model(other_dir / "final.pt", ext, build_head("softmax", 6, 2), ["p", "q"])
    extract_embeddings.main([str(other_dir / "final.pt"), str(data), str(out)])
    keys, mat = read_vectors(out / "xvector.scp")
    other = dict(embed_utterances(ext.eval(), feats.items(), chunk_frames=10000, batch_size=1))
    for k, row in zip(keys, mat):
        np.testing.assert_allclose(row, other[k], rtol=1e-4, atol=1e-5)


def test_feature_without_speaker_names_the_line(setup):
    tmp_path, data, feats = setup
    (data / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in sorted(feats) if u != "p-1"))
    with pytest.raises(InputFileError, match=r"feats.scp:2: utterance 'p-1' is not in utt2spk"):
        extract_embeddings.main([str(tmp_path / "final.pt"), str(data), str(tmp_path / "xv")])
