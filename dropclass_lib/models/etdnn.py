"""The extended TDNN (E-TDNN; Snyder et al., ICASSP 2019, "Speaker recognition for multi-speaker
conversations using x-vectors"): the x-vector TDNN made deeper by interleaving 1-frame dense
layers with the context layers and widening the context to a dilation-4 layer.

Default layer list (units / context frames / dilation): 512/5/1, 512/1/1, 512/3/2, 512/1/1,
512/3/3, 512/1/1, 512/3/4, 512/1/1, 1500/1/1, then mean+std pooling and a 512 embedding.
It reuses the TDNN frame stack, only the layer list differs.
"""

from __future__ import annotations

from typing import Sequence

from dropclass_lib.models import register_extractor
from dropclass_lib.models.tdnn import TDNN

ETDNN_DIMS = (512, 512, 512, 512, 512, 512, 512, 512, 1500)
ETDNN_CONTEXTS = (5, 1, 3, 1, 3, 1, 3, 1, 1)
ETDNN_DILATIONS = (1, 1, 2, 1, 3, 1, 4, 1, 1)


@register_extractor("etdnn")
def extended_tdnn(input_dim: int = 30, frame_dims: Sequence[int] = ETDNN_DIMS,
                  contexts: Sequence[int] = ETDNN_CONTEXTS, dilations: Sequence[int] = ETDNN_DILATIONS,
                  emb_dim: int = 512) -> TDNN:
    return TDNN(input_dim, frame_dims, contexts, dilations, emb_dim)
