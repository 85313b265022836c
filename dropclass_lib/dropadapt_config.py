"""The DropAdapt configuration and the freshness check of its experiment directory, without torch.

:func:`open_adapt_dir` is the check :meth:`dropclass_lib.dropadapt.DropAdapt.run` makes before
its first round. ``steps/dropadapt.py`` makes it first with ``write=False``, so that a re-run
that finds its adaptation done (or refuses a changed setting) ends before torch is loaded: a
recipe re-run starts one such process per adapted system and seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dropclass_lib import provenance
from dropclass_lib.training.config import DataConfig, OptimConfig, RunConfig, TrainConfig
from dropclass_lib.training.record import FINAL_MODEL, provenance_settings

VARIANTS = ("standard", "combine", "uniform_agg", "random", "only_data")
P_AVG_LOGITS = ("scaled", "cosine")
P_AVG_INPUTS = ("utterances", "crops")
ADAPT_OPTIMIZERS = ("per_round", "continuous")
COMBINE_INTO = ("other_class", "least_probable_kept")
ONLY_DATA_RANKINGS = ("cumulative", "each_round")


@dataclass
class AdaptOptions:
    variant: str = "standard"        # standard | combine | uniform_agg | random | only_data
    num_rounds: int = 5              # rounds of (rank, remove, fine-tune)
    num_drop: int = 10               # training classes removed per round (paper, VoxCeleb2: 2000 of 5994)
    its_per_drop: int = 100          # fine-tuning iterations per round (paper: 500)
    min_remaining: int = 2           # stop removing once this few classes with data would remain
    utts_per_enrol_spk: int = 0      # uniform_agg: enrolment utterances per speaker (0: the smallest speaker's count)
    train_utts_for_plot: int = 1000  # training utterances whose p_avg is plotted beside the enrolment one
    chunk_frames: int = 10000        # full-utterance embedding: chunk length of long utterances
    seed: int = 0                    # random variant, uniform_agg subset, p_avg crops, fine-tuning seeds
    p_avg_logits: str = "scaled"     # scaled: softmax of the head's no-margin logits (s cos θ); cosine: of raw cos θ
    p_avg_inputs: str = "utterances"  # utterances: whole; crops: one random crop each, zero-padded when shorter
    p_avg_crop_frames: int = 0       # crops: crop length in frames (0: data.max_frames)
    optimizer: str = "per_round"     # per_round: a new optimiser and LR schedule per round; continuous: one SGD run
    combine_into: str = "other_class"  # combine: other_class (an extra "<other>" row) or least_probable_kept
    only_data_ranking: str = "cumulative"  # only_data: cumulative removals, or each_round (all classes re-ranked)


@dataclass
class DropAdaptConfig:
    adapt: AdaptOptions = field(default_factory=AdaptOptions)
    data: DataConfig = field(default_factory=DataConfig)      # fine-tuning batches (as in training)
    optim: OptimConfig = field(default_factory=OptimConfig)   # fine-tuning optimiser (lr_halve_at counts per round)
    train: RunConfig = field(default_factory=RunConfig)       # num_iters is ignored: adapt.its_per_drop per round

    def validate(self) -> None:
        a = self.adapt
        if a.variant not in VARIANTS:
            raise ValueError(f"adapt.variant must be one of {VARIANTS}, got {a.variant!r}")
        if a.num_rounds < 1 or a.num_drop < 1 or a.its_per_drop < 1 or a.min_remaining < 1:
            raise ValueError("adapt.num_rounds, num_drop, its_per_drop and min_remaining must be >= 1")
        if a.utts_per_enrol_spk < 0 or a.train_utts_for_plot < 0 or a.chunk_frames < 1 or a.p_avg_crop_frames < 0:
            raise ValueError("adapt.utts_per_enrol_spk, train_utts_for_plot and p_avg_crop_frames must be >= 0, "
                             "chunk_frames >= 1")
        for key, allowed in (("p_avg_logits", P_AVG_LOGITS), ("p_avg_inputs", P_AVG_INPUTS),
                             ("optimizer", ADAPT_OPTIMIZERS), ("combine_into", COMBINE_INTO),
                             ("only_data_ranking", ONLY_DATA_RANKINGS)):
            if getattr(a, key) not in allowed:
                raise ValueError(f"adapt.{key} must be one of {allowed}, got {getattr(a, key)!r}")
        TrainConfig(data=self.data, optim=self.optim, train=self.train).validate()


def adapt_inputs(model_path: str | os.PathLike, train_dir: str | os.PathLike,
                 enrol_dir: str | os.PathLike) -> list[Path]:
    """The files a DropAdapt directory is made from: the model, the training data dir, and the
    enrolment dir's features, speakers and enrolment list."""
    enrol = Path(enrol_dir)
    return [Path(model_path), *provenance.data_inputs(train_dir),
            *provenance.data_inputs(enrol, "feats.scp", "utt2spk", "enrol.list"),
            *provenance.scp_archives(enrol / "feats.scp")]


def open_adapt_dir(cfg: DropAdaptConfig, model_path: str | os.PathLike, train_dir: str | os.PathLike,
                   enrol_dir: str | os.PathLike, exp_dir: str | os.PathLike, *, overwrite: bool = False,
                   write: bool = True) -> provenance.Stage:
    """The strict freshness rule on ``exp_dir`` for DropAdapt of ``cfg`` (recorded without its
    how-to-run keys); ``write=False`` only reads."""
    return provenance.open_stage(exp_dir, provenance_settings(cfg), adapt_inputs(model_path, train_dir, enrol_dir),
                                 outputs=(FINAL_MODEL,), strict=True, overwrite=overwrite,
                                 what=f"DropAdapt {exp_dir}", write=write, partial=("round*",))
