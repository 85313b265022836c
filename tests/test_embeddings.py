"""Embedding extraction: chunking, equal-length batching, padding, speaker means, Kaldi archives."""

import kaldiio
import numpy as np
import pytest
import torch

from dropclass_lib.embeddings import chunk_bounds, embed_utterances, speaker_means
from dropclass_lib.vector_io import read_vectors, write_vectors


class MeanStdNet(torch.nn.Module):
    """(B, T, D) -> (B, 2E): per-frame affine + tanh, then mean and std over time."""

    receptive_field = 4

    def __init__(self, dim=5, emb=3):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(dim, emb)
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        h = torch.tanh(self.lin(x))
        return torch.cat([h.mean(dim=1), h.std(dim=1)], dim=1)


def direct(net, f, chunk_frames, min_frames):
    """The definition, one chunk at a time: length-weighted mean of chunk embeddings."""
    total = 0
    for s, n in chunk_bounds(f.shape[0], chunk_frames):
        x = f[s:s + n]
        if n < min_frames:
            x = np.concatenate([x] * (min_frames // n + 1))[:min_frames]
        with torch.no_grad():
            total = total + n * net(torch.from_numpy(x[None]).float()).double().numpy()[0]
    return total / f.shape[0]


def test_chunk_bounds_cover_the_utterance_in_near_equal_pieces():
    assert chunk_bounds(7, 10) == [(0, 7)]
    assert chunk_bounds(10, 10) == [(0, 10)]
    assert chunk_bounds(11, 10) == [(0, 6), (6, 5)]
    assert chunk_bounds(25, 10) == [(0, 9), (9, 8), (17, 8)]


def test_batched_extraction_equals_one_chunk_at_a_time():
    rng = np.random.default_rng(0)
    lengths = [30, 12, 30, 55, 12, 30, 3, 100, 41]
    feats = [(f"u{i}", rng.normal(size=(n, 5)).astype(np.float32)) for i, n in enumerate(lengths)]
    net = MeanStdNet()
    got = list(embed_utterances(net, feats, chunk_frames=25, batch_size=2, block_utts=4))
    assert [u for u, _ in got] == [u for u, _ in feats]
    for (u, f), (_, e) in zip(feats, got):
        np.testing.assert_allclose(e, direct(net, f, 25, 4), rtol=1e-5, atol=1e-6, err_msg=u)
    # Only equal-length chunks share a batch, and never more than batch_size of them.
    assert all(b <= 2 for b, _, _ in net.calls)
    # Block 1 (30, 12, 30, 55 frames) has four 15-frame chunks (from the 30s) and two of 18 (from 55).
    assert net.calls[:4] == [(1, 12, 5), (2, 15, 5), (2, 15, 5), (2, 18, 5)]
    assert (1, 4, 5) in net.calls                     # the 3-frame utterance padded to the receptive field


def test_batch_size_and_block_size_do_not_change_results():
    rng = np.random.default_rng(1)
    feats = [(f"u{i}", rng.normal(size=(int(n), 5)).astype(np.float32))
             for i, n in enumerate(rng.integers(5, 60, size=20))]
    net = MeanStdNet()
    a = np.stack([e for _, e in embed_utterances(net, feats, chunk_frames=16, batch_size=1, block_utts=1)])
    b = np.stack([e for _, e in embed_utterances(net, feats, chunk_frames=16, batch_size=16, block_utts=64)])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bad_features_are_rejected():
    with pytest.raises(ValueError, match="u1"):
        list(embed_utterances(MeanStdNet(), [("u1", np.zeros((0, 5), np.float32))]))


def test_speaker_means_and_archives(tmp_path):
    keys = ["a1", "a2", "b1"]
    m = np.array([[1, 2], [3, 4], [5, 7]], dtype=np.float32)
    spk, means, counts = speaker_means(keys, m, {"a1": "A", "a2": "A", "b1": "B"})
    assert spk == ["A", "B"]
    np.testing.assert_allclose(means, [[2, 3], [5, 7]])
    assert counts.tolist() == [2, 1]
    scp = write_vectors(tmp_path, "xvector", keys, m)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["xvector.ark", "xvector.scp"]
    loaded = kaldiio.load_scp(str(scp))
    np.testing.assert_array_equal(loaded["b1"], m[2])
    k, mat = read_vectors(scp)
    assert k == keys
    np.testing.assert_array_equal(mat, m)
