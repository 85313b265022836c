"""Speaker-embedding extractors, chosen by name from a registry.

Every extractor maps features ``(batch, frames, feat_dim)`` to embeddings ``(batch, emb_dim)``
and exposes ``emb_dim``, ``receptive_field`` and ``after_step(iteration)`` (a hook the trainer
calls after each optimiser step: the F-TDNN applies its semi-orthogonal constraint there).
Registered: ``tdnn``, ``etdnn``, ``ftdnn`` (unpadded convolutions: an input shorter than the
receptive field is replication-padded to it) and ``ecapa_tdnn``, ``resnet34`` (zero-padded
convolutions: any input of one frame or more goes through as it is).

    build_extractor("tdnn", input_dim=30, frame_dims=[256, 256, 256, 256, 750], emb_dim=256)

The returned module carries ``build_spec = {"name": ..., "kwargs": ...}`` so that
:mod:`dropclass_lib.model_io` can rebuild it from a saved file.
"""

from __future__ import annotations

from torch import nn

from dropclass_lib.registry import Registry

EXTRACTORS = Registry("extractor")
register_extractor = EXTRACTORS.register


def build_extractor(name: str, **kwargs) -> nn.Module:
    return EXTRACTORS.build(name, **kwargs)


from dropclass_lib.models import ecapa, etdnn, ftdnn, resnet, tdnn  # noqa: E402,F401  (registers the extractors)
