"""The training configuration: ``conf/train_*.yaml`` maps onto :class:`TrainConfig`.

Sections: ``model``, ``data``, ``optim``, ``dropclass``, ``train``. Every key is documented
below and in the YAML files; an unknown key is an error naming the key, file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLERS = ("balanced", "random")
SHORT_UTTS = ("shorten", "repeat")
OPTIMIZERS = ("sgd", "adam")
RESET_HEAD_LAYERS = ("all", "final")
RESET_HEAD_OPTIMIZER = ("clear", "keep")


@dataclass
class ModelConfig:
    extractor: str = "tdnn"          # registry name: tdnn, etdnn, ftdnn
    extractor_opts: dict[str, Any] = field(default_factory=dict)  # extractor kwargs; input_dim comes from the features
    head: str = "softmax"            # registry name: softmax, xvector, l2softmax, amsoftmax, aamsoftmax, sphereface, adacos
    head_opts: dict[str, Any] = field(default_factory=dict)       # head kwargs (s, m, hidden_dim, ...)


@dataclass
class DataConfig:
    sampler: str = "balanced"        # balanced: batch_size distinct classes, one utterance each; random: random utterances
    batch_size: int = 64             # the global batch: under DDP split across the W processes (rank r takes
                                     # positions r*B//W .. (r+1)*B//W - 1); at least W; balanced: <= sampleable classes
    min_frames: int = 200            # crop length is drawn uniformly in [min_frames, max_frames] per batch
    max_frames: int = 200            # upper end of that range
    min_utt_frames: int = 200        # utterances with fewer frames are not used for training (Kaldi v2 filters at 400)
    short_utts: str = "shorten"      # a chosen utterance shorter than the crop: shorten (the batch's crops are cut
                                     # to it, as Kaldi's egs) or repeat (it is tiled to the crop length, as WeSpeaker)
    num_workers: int = 2             # DataLoader worker processes (0: read in the training process)
    prefetch_batches: int = 4        # batches each worker reads ahead


@dataclass
class OptimConfig:
    name: str = "sgd"                # sgd or adam
    lr: float = 0.2                  # paper: 0.2
    momentum: float = 0.5            # SGD momentum; paper: 0.5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam betas
    weight_decay: float = 0.0
    lr_halve_at: list[int] = field(default_factory=list)  # iterations at which the learning rate is halved
    warmup_iters: int = 0            # linear warm-up from lr/warmup_iters to lr over this many iterations
    grad_clip: float = 0.0           # max gradient norm; 0 = no clipping


@dataclass
class DropClassConfig:
    num_drop: int = 0                # classes dropped per period; 0 = the baseline
    its_per_drop: int = 1000         # iterations between fresh random drops
    drop_per_batch: bool = False     # softmax only over the classes in each batch (ignores num_drop/its_per_drop)
    reset_head_each_drop: bool = False  # re-initialise the head at every new drop (needs periodic drops:
                                        # an error with drop_per_batch, which has no drops to reset at)
    reset_head_layers: str = "all"   # what a reset re-initialises: all (hidden layers too) or final (the class
                                     # rows and bias only, as the authors' code)
    reset_head_optimizer: str = "clear"  # the head's optimiser state (momentum) at a reset: clear or keep
                                         # (the authors' code keeps it)


@dataclass
class RunConfig:
    num_iters: int = 1000            # optimiser steps in total
    checkpoint_every: int = 100      # write exp/NAME/checkpoint_<iter>.pt every this many iterations
    keep_checkpoints: int = 2        # older checkpoints are deleted
    log_every: int = 10              # iterations between train.log / tensorboard lines
    seed: int = 0                    # seeds initialisation, sampling and DropClass
    device: str = "auto"             # auto (cuda if available), cpu, cuda
    amp: bool = True                 # bfloat16 autocast of the extractor on GPU
    cpu_amp: bool = False            # the same autocast on CPU too (needs amp): faster on CPUs with native
                                     # bf16 (AVX512-BF16, AMX; bench/bench_extractors.py --cpu-amp), slower
                                     # elsewhere; it changes the numbers, so it is off unless a recipe asks


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    dropclass: DropClassConfig = field(default_factory=DropClassConfig)
    train: RunConfig = field(default_factory=RunConfig)

    def validate(self) -> None:
        d, o, dc, t = self.data, self.optim, self.dropclass, self.train
        checks = [
            (d.sampler in SAMPLERS, f"data.sampler must be one of {SAMPLERS}, got {d.sampler!r}"),
            (d.batch_size >= 1, "data.batch_size must be >= 1"),
            (1 <= d.min_frames <= d.max_frames, "need 1 <= data.min_frames <= data.max_frames"),
            (d.min_utt_frames >= 1, "data.min_utt_frames must be >= 1"),
            (d.short_utts in SHORT_UTTS, f"data.short_utts must be one of {SHORT_UTTS}, got {d.short_utts!r}"),
            (d.num_workers >= 0 and d.prefetch_batches >= 1, "data.num_workers must be >= 0, data.prefetch_batches >= 1"),
            (o.name in OPTIMIZERS, f"optim.name must be one of {OPTIMIZERS}, got {o.name!r}"),
            (o.lr > 0 and o.weight_decay >= 0 and o.grad_clip >= 0 and o.warmup_iters >= 0,
             "optim.lr must be > 0; weight_decay, grad_clip, warmup_iters >= 0"),
            (len(o.betas) == 2, "optim.betas must have two values"),
            (dc.num_drop >= 0 and dc.its_per_drop >= 1, "dropclass.num_drop must be >= 0, its_per_drop >= 1"),
            (not (dc.reset_head_each_drop and dc.drop_per_batch),
             "dropclass.reset_head_each_drop and dropclass.drop_per_batch contradict: drop_per_batch has no "
             "drops to reset the head at (it would silently do nothing)"),
            (dc.reset_head_layers in RESET_HEAD_LAYERS,
             f"dropclass.reset_head_layers must be one of {RESET_HEAD_LAYERS}, got {dc.reset_head_layers!r}"),
            (dc.reset_head_optimizer in RESET_HEAD_OPTIMIZER,
             f"dropclass.reset_head_optimizer must be one of {RESET_HEAD_OPTIMIZER}, got {dc.reset_head_optimizer!r}"),
            (t.num_iters >= 1 and t.checkpoint_every >= 1 and t.log_every >= 1 and t.keep_checkpoints >= 1,
             "train.num_iters, checkpoint_every, log_every, keep_checkpoints must be >= 1"),
            (t.device in ("auto", "cpu", "cuda"), f"train.device must be auto, cpu or cuda, got {t.device!r}"),
            (t.amp or not t.cpu_amp, "train.cpu_amp needs train.amp: cpu_amp extends the autocast amp turns on"),
            (isinstance(self.model.extractor_opts, dict) and isinstance(self.model.head_opts, dict),
             "model.extractor_opts and model.head_opts must be mappings"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
