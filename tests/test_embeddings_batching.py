"""Padded, length-bucketed extraction: every embedding equals the utterance's own, alone in its
batch, for the TDNN, ECAPA-TDNN and ResNet34 (tiny sizes, 5-400 frames), and the poolings' masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dropclass_lib.embeddings import embed_utterances, length_batches
from dropclass_lib.models import build_extractor
from dropclass_lib.models.pooling import AttentiveStatsPooling, StatsPooling

TINY = {
    "tdnn": dict(input_dim=6, frame_dims=[8, 8, 8, 8, 12], emb_dim=5),
    "ftdnn": dict(input_dim=6, first_dim=8, layer_dims=[8, 8, 8], bottleneck_dim=4, strides=[1, 3, 0],
                  final_dim=12, emb_dim=5),
    "ecapa_tdnn": dict(input_dim=6, channels=16, emb_dim=5, scale=4, se_channels=4, attention_channels=8,
                       mfa_channels=24),
    "resnet34": dict(input_dim=6, base_channels=2, emb_dim=5),
}


def _randomised(name: str) -> torch.nn.Module:
    """A tiny extractor with non-trivial batch-norm statistics (eval mode uses them)."""
    torch.manual_seed(0)
    model = build_extractor(name, **TINY[name])
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def _utterances(n: int = 40, seed: int = 1):
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([[5, 6, 7, 400], rng.integers(5, 401, size=n - 4)])
    return [(f"u{i:03d}", rng.normal(size=(int(t), 6)).astype(np.float32)) for i, t in enumerate(lengths)]


@pytest.mark.parametrize("name", ["tdnn", "ftdnn", "ecapa_tdnn", "resnet34"])
def test_padded_batches_equal_one_at_a_time(name):
    model = _randomised(name)
    utts = _utterances()
    # min_frames=1: no cyclic padding, so the short utterances exercise the models' own handling
    alone = dict(embed_utterances(model, utts, batch_size=1, chunk_frames=150, min_frames=1))
    batched = list(embed_utterances(model, utts, batch_size=16, chunk_frames=150, min_frames=1, max_batch_frames=3000))
    assert [u for u, _ in batched] == [u for u, _ in utts]
    worst = max(np.abs(e - alone[u]).max() / (np.abs(alone[u]).max() + 1e-6) for u, e in batched)
    assert worst < 1e-4, f"{name}: relative difference {worst:.2e}"
    # the batches really were padded: without the lengths the embeddings differ
    x = torch.zeros(2, 400, 6)
    x[0, :50] = torch.from_numpy(utts[4][1][:50])
    x[1] = torch.from_numpy(utts[3][1])
    with torch.inference_mode():
        masked = model(x, lengths=torch.tensor([50, 400]))[0]
        unmasked = model(x)[0]
        own = model(x[:1, :50])[0]
    torch.testing.assert_close(masked, own, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unmasked, own, rtol=1e-3, atol=1e-4)


def test_default_receptive_field_padding_batched_equals_alone():
    model = _randomised("tdnn")
    utts = _utterances(20, seed=3)
    alone = dict(embed_utterances(model, utts, batch_size=1))
    for u, e in embed_utterances(model, utts, batch_size=8):
        np.testing.assert_allclose(e, alone[u], rtol=1e-4, atol=1e-5)


def test_length_batches_budget_and_size():
    lengths = [5, 5, 10, 20, 30, 30, 100, 500]
    assert length_batches(lengths, 3, 60) == [[0, 1, 2], [3, 4], [5], [6], [7]]  # 2 x 30 fits, 3 x 30 not
    assert length_batches(lengths, 2, 1000) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert length_batches(lengths, 8, None) == [[0, 1], [2], [3], [4, 5], [6], [7]]


def test_stats_pooling_ignores_padding():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10)
    lengths = torch.tensor([4, 10])
    pooled = StatsPooling()(x, lengths)
    torch.testing.assert_close(pooled[0], StatsPooling()(x[:1, :, :4])[0])
    torch.testing.assert_close(pooled[1], StatsPooling()(x[1:])[0])
    att = AttentiveStatsPooling(3, attention_channels=4).eval()
    pooled = att(x, lengths)
    torch.testing.assert_close(pooled[0], att(x[:1, :, :4])[0])
    y = x.clone()
    y[0, :, 4:] = 1e3  # whatever lies in the padding
    torch.testing.assert_close(att(y, lengths), pooled)
