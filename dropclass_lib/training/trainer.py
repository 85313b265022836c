"""The training loop: one code path for the baseline (``num_drop: 0``) and DropClass.

Command line: ``steps/train_xvector.py``. Library use (DropAdapt fine-tunes through this)::

    from dropclass_lib.training.trainer import train
    from dropclass_lib.training.dropclass import ClassState
    result = train(cfg, "data/train", "exp/dropadapt/round1",
                   init_model=load_model("exp/baseline/final.pt"),   # start from these weights
                   class_state=state)                                # classes removed/merged so far
    result.final    # exp/.../final.pt (None if stopped early with stop_at)

``cfg`` is a :class:`~dropclass_lib.training.config.TrainConfig`; ``cfg.train.num_iters``
iterations are run. ``init_model.head`` must have ``class_state.num_rows`` rows (rebuild it
with one more row for ``combine``); the data classes are the speakers of ``data_dir``
(``FeatIndex.classes``, LC_ALL=C order), which must match ``class_state.num_classes``.
``final.pt`` records ``class_state.row_names`` as its classes.

One SGD run over several calls (DropAdapt's ``adapt.optimizer: continuous``): ``save_optimizer``
writes the optimiser's final state (momentum buffers) to ``optimizer.pt`` beside ``final.pt``;
the next call passes it as ``optimizer_state`` (used when the run does not resume from a
checkpoint of its own) and ``lr_offset``, the iterations done before it, so that warm-up and
``lr_halve_at`` follow one absolute schedule.

Written into the experiment dir (rank 0 only under DDP): ``config.yaml`` (resolved config),
``drop_schedule.tsv``, ``train.log``, ``tensorboard/``, ``checkpoint_<iter>.pt`` (every
``train.checkpoint_every`` iterations, the newest ``keep_checkpoints`` kept) and ``final.pt``.
The directory follows the strict freshness rule (:mod:`dropclass_lib.provenance`): its
``.made_from.json`` records the configuration (less the keys that only say how to run:
``OPERATIONAL_KEYS`` of :mod:`dropclass_lib.training.record`) and the training data's identity
before the first iteration. A finished directory made so is kept; one made or started with
another configuration or other data is an error naming the differing keys (``overwrite=True``
clears it and trains again); an interrupted one with the same settings continues with
``resume=True``. A non-finite loss stops training with
:class:`TrainingDiverged`, naming the iteration and the last good checkpoint.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from dropclass_lib.atomic import atomic_path
from dropclass_lib.config import save_config, to_dict
from dropclass_lib.errors import UserError
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import TrainedModel, load_weights, save_model
from dropclass_lib.models import build_extractor
from dropclass_lib.training import distributed
from dropclass_lib.training.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint, set_rng_state
from dropclass_lib.training.config import TrainConfig
from dropclass_lib.training.data import CropDataset, FeatIndex
from dropclass_lib.training.dropclass import ClassState, DropSchedule
from dropclass_lib.training.record import FINAL_MODEL, OPTIMIZER_FILE, open_training_dir
from dropclass_lib.training.sampler import BatchSampler

log = logging.getLogger("dropclass.train")

# Keys that may differ between a checkpoint's config and the resuming run's.
RESUMABLE_CHANGES = {("train", "num_iters"), ("train", "checkpoint_every"), ("train", "keep_checkpoints"),
                     ("train", "log_every"), ("train", "device"), ("data", "num_workers"), ("data", "prefetch_batches")}


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class _UserErrorsAsBatches(torch.utils.data.Dataset):
    """A dataset whose :class:`UserError` (an unreadable archive) comes back as a batch
    ``{"user_error": message}``, so that the training loop raises it with its own message: a
    DataLoader worker's exception would reach the user with the worker's traceback inside the
    message (or as a RuntimeError, for exceptions it cannot rebuild from a string)."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset

    def __getitem__(self, spec) -> dict:
        try:
            return self.dataset[spec]
        except UserError as err:
            return {"user_error": str(err)}


@dataclass
class TrainStats:
    """Throughput of one ``train`` call, the first iteration (worker start-up) excluded."""
    iterations: int = 0
    frames: int = 0            # feature frames through the network, all processes together
    seconds: float = 0.0
    data_wait_s: float = 0.0   # time the training loop waited for a batch
    max_wait_s: float = 0.0
    startup_s: float = 0.0     # the first iteration, including DataLoader start-up

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def wait_fraction(self) -> float:
        return self.data_wait_s / self.seconds if self.seconds else 0.0


@dataclass
class TrainResult:
    final: Path | None
    stats: TrainStats = field(default_factory=TrainStats)


class Net(nn.Module):
    """Extractor + head as one module (what DDP wraps); the head always runs in float32."""

    def __init__(self, extractor: nn.Module, head: nn.Module, autocast_dtype: torch.dtype | None):
        super().__init__()
        self.extractor, self.head = extractor, head
        self.autocast_dtype = autocast_dtype

    def forward(self, feats, labels, active):
        with torch.autocast(feats.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                            enabled=self.autocast_dtype is not None):
            emb = self.extractor(feats)
        return self.head(emb.float(), labels, active)


def lr_factor(cfg: TrainConfig, offset: int = 0):
    """Multiplier of the base learning rate at each iteration: linear warm-up, then halvings;
    the schedule's clock is ``offset + iteration``."""
    warmup, halve_at = cfg.optim.warmup_iters, sorted(cfg.optim.lr_halve_at)

    def factor(iteration: int) -> float:
        iteration += offset
        w = min(1.0, (iteration + 1) / warmup) if warmup else 1.0
        return w * 0.5 ** sum(iteration >= h for h in halve_at)

    return factor


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load another run's optimiser state, refusing one whose parameters have other shapes."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    saved = state.get("state", {})
    for i, p in enumerate(params):
        for name, value in saved.get(i, {}).items():
            if torch.is_tensor(value) and value.ndim and value.shape != p.shape:
                raise UserError(f"the optimiser state to continue from has {name} of shape {tuple(value.shape)} "
                                f"for a parameter of shape {tuple(p.shape)}: it belongs to another model")
    optimizer.load_state_dict(copy.deepcopy(state))  # torch keeps the given tensors and updates them in place


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def config_differences(saved: dict, current: dict, prefix=()) -> list[str]:
    diffs = []
    for key in sorted(set(saved) | set(current)):
        path = prefix + (key,)
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and len(path) == 1:
            diffs += config_differences(a, b, path)
        elif a != b and path not in RESUMABLE_CHANGES:
            diffs.append(f"{'.'.join(path)}: {a!r} -> {b!r}")
    return diffs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(cfg: TrainConfig, data_dir, exp_dir, *, resume: bool = False, stop_at: int | None = None,
          init_model: TrainedModel | None = None, class_state: ClassState | None = None,
          overwrite: bool = False, made_from: dict | None = None, inputs: tuple = (),
          optimizer_state: dict | None = None, lr_offset: int = 0, save_optimizer: bool = False) -> TrainResult:
    """Train into ``exp_dir``; see the module docstring. ``made_from`` (settings) and ``inputs``
    (files) are what the run depends on besides the configuration and the data, e.g. the model
    ``init_model`` was loaded from and the classes ``class_state`` removed (DropAdapt);
    ``optimizer_state``, ``lr_offset`` and ``save_optimizer`` continue one optimiser run over
    several calls (module docstring)."""
    exp_dir = Path(exp_dir)
    final = exp_dir / FINAL_MODEL
    writer = int(os.environ.get("RANK", "0")) == 0  # under torchrun rank 0 writes the record
    st = open_training_dir(cfg, data_dir, exp_dir, made_from=made_from, inputs=inputs, save_optimizer=save_optimizer,
                           overwrite=overwrite, write=writer)
    if st.fresh:
        return TrainResult(final)
    if st.redo and writer:
        for _, path in list_checkpoints(exp_dir):
            path.unlink()
        final.unlink(missing_ok=True)
    env = distributed.setup(cfg.train.device)
    try:
        run = _Run(cfg, Path(data_dir), exp_dir, env, init_model, class_state, optimizer_state, lr_offset)
        result = run.run(resume, stop_at, save_optimizer)
    finally:
        distributed.cleanup(env)
    if result.final is not None:
        st.finish()
    return result


class _Run:
    def __init__(self, cfg: TrainConfig, data_dir: Path, exp_dir: Path, env: distributed.DistEnv,
                 init_model: TrainedModel | None, class_state: ClassState | None,
                 optimizer_state: dict | None = None, lr_offset: int = 0):
        self.cfg, self.exp_dir, self.env = cfg, exp_dir, env
        self.index = FeatIndex.from_data_dir(data_dir, cfg.data.min_utt_frames)
        self.state = class_state or ClassState.full(self.index.classes)
        if self.state.num_classes != len(self.index.classes):
            raise UserError(f"class state has {self.state.num_classes} data classes, {data_dir} has {len(self.index.classes)}")
        try:
            self.state.validate()
            self.index = self.state.sampling_index(self.index)
            self.schedule = DropSchedule(cfg.dropclass, self.state, cfg.train.seed)
            self.sampler = BatchSampler(self.index, self.schedule, cfg.data.sampler, cfg.data.batch_size,
                                        cfg.data.min_frames, cfg.data.max_frames, cfg.train.seed,
                                        env.rank, env.world_size, cfg.data.short_utts)
        except ValueError as err:
            raise UserError(str(err)) from None
        seed_everything(cfg.train.seed)
        if init_model is not None:
            self.extractor, self.head = init_model.extractor, init_model.head
        else:
            opts = dict(cfg.model.extractor_opts)
            if opts.setdefault("input_dim", self.index.feat_dim) != self.index.feat_dim:
                raise UserError(f"model.extractor_opts.input_dim={opts['input_dim']} but the features have {self.index.feat_dim} dims")
            self.extractor = build_extractor(cfg.model.extractor, **opts)
            self.head = build_head(cfg.model.head, self.extractor.emb_dim, self.state.num_rows, **cfg.model.head_opts)
        if self.head.num_classes != self.state.num_rows:
            raise UserError(f"the head has {self.head.num_classes} rows, the class state {self.state.num_rows}")
        amp = cfg.train.amp and (env.device.type == "cuda" or cfg.train.cpu_amp)
        self.net = Net(self.extractor, self.head, torch.bfloat16 if amp else None).to(env.device)
        self.optimizer = make_optimizer(cfg, self.net.parameters())
        if optimizer_state is not None:  # before the scheduler, which then sets the learning rate
            load_optimizer_state(self.optimizer, optimizer_state)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(cfg, lr_offset))
        self.label_map = torch.from_numpy(self.state.label_map)
        self.last_checkpoint: tuple[int, Path] | None = None
        self.sampler_state: dict | None = None  # the sampler's state after the last trained iteration

    # ----------------------------------------------------------------- resume
    def restore(self) -> int:
        found = list_checkpoints(self.exp_dir)
        if not found:
            log.info(f"no checkpoint in {self.exp_dir}: starting from scratch")
            return 0
        done, path = found[-1]
        ckpt = load_checkpoint(path)
        diffs = config_differences(ckpt["config"], to_dict(self.cfg))
        if diffs:
            raise UserError(f"cannot resume from {path}: the configuration changed ({'; '.join(diffs)})")
        if ckpt["dropclass"] != self.schedule.state_dict():
            raise UserError(f"cannot resume from {path}: the class state / DropClass settings differ")
        if ckpt["world_size"] != self.env.world_size:
            raise UserError(f"cannot resume from {path}: written by {ckpt['world_size']} processes, now {self.env.world_size}")
        load_weights(self.extractor, ckpt["extractor"], path, "extractor")
        load_weights(self.head, ckpt["head"], path, "head")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.sampler.load_state_dict(ckpt["sampler"])
        set_rng_state(ckpt["rng"])
        self.last_checkpoint = (done, path)
        log.info(f"resuming from {path} (iteration {done})")
        return done

    def checkpoint(self, done: int) -> None:
        if self.env.is_main:
            payload = {"extractor": self.extractor.state_dict(), "head": self.head.state_dict(),
                       "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                       "sampler": self.sampler_state, "dropclass": self.schedule.state_dict(),
                       "config": to_dict(self.cfg), "world_size": self.env.world_size}
            path = save_checkpoint(self.exp_dir, done, payload, self.cfg.train.keep_checkpoints)
            self.last_checkpoint = (done, path)
        else:
            self.last_checkpoint = (done, self.exp_dir / f"checkpoint_{done:07d}.pt")
        distributed.barrier(self.env)

    def diverged(self, done: int, value: float) -> TrainingDiverged:
        if self.last_checkpoint:
            last = f"the last good checkpoint is {self.last_checkpoint[1]} (iteration {self.last_checkpoint[0]})"
        else:
            last = "no checkpoint was written before it"
        return TrainingDiverged(f"training diverged: loss is {value} at iteration {done}; {last}. "
                                "Lower optim.lr (or enable optim.grad_clip) or check the features for inf/NaN, "
                                "then rerun (with --resume to continue from that checkpoint)")

    # ------------------------------------------------------------------- loop
    def run(self, resume: bool, stop_at: int | None, save_optimizer: bool = False) -> TrainResult:
        cfg, env = self.cfg, self.env
        if not resume and list_checkpoints(self.exp_dir):
            raise UserError(f"{self.exp_dir} holds checkpoints of an unfinished training: "
                            "continue it with --resume, or remove the directory")
        start = self.restore() if resume else 0
        if stop_at is not None and stop_at <= start:
            raise UserError(f"cannot stop at iteration {stop_at}: training is already at iteration {start}")
        net = self.net
        if env.distributed:
            net = DistributedDataParallel(self.net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        writer, handler = self.open_logs(start)
        loader = torch.utils.data.DataLoader(
            _UserErrorsAsBatches(CropDataset(self.index)), batch_size=None, sampler=self.sampler,
            num_workers=cfg.data.num_workers,
            prefetch_factor=cfg.data.prefetch_batches if cfg.data.num_workers else None,
            pin_memory=env.device.type == "cuda", generator=torch.Generator())
        end = cfg.train.num_iters if stop_at is None else min(stop_at, cfg.train.num_iters)
        stats = TrainStats()
        try:
            self.loop(net, iter(loader), start, end, stats, writer)
            if end < cfg.train.num_iters:
                if self.last_checkpoint is None or self.last_checkpoint[0] != end:
                    self.checkpoint(end)
                log.info(f"stopped after iteration {end} as asked; continue with --resume")
                return TrainResult(None, stats)
            final = self.exp_dir / FINAL_MODEL
            if env.is_main:
                if save_optimizer:
                    with atomic_path(self.exp_dir / OPTIMIZER_FILE) as tmp:
                        torch.save(self.optimizer.state_dict(), tmp)
                save_model(final, self.extractor, self.head, self.state.row_names, to_dict(cfg))
                log.info(f"wrote {final}; {stats.frames_per_s:.0f} frames/s, "
                         f"data wait {100 * stats.wait_fraction:.1f}% of the time (max {stats.max_wait_s:.3f} s)")
            distributed.barrier(env)
            return TrainResult(final, stats)
        finally:
            if writer is not None:
                writer.close()
            if handler is not None:
                log.removeHandler(handler)
                handler.close()

    def open_logs(self, start: int):
        if not self.env.is_main:
            return None, None
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.exp_dir / "config.yaml")
        self.schedule.write_plan(self.exp_dir / "drop_schedule.tsv", self.cfg.train.num_iters, self.index.classes)
        handler = logging.FileHandler(self.exp_dir / "train.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where it is used

        writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=start)
        ix = self.index
        log.info(f"training {self.cfg.model.extractor} + {self.cfg.model.head} on {len(ix)} utterances of "
                 f"{len(ix.classes)} speakers ({ix.num_skipped_short} shorter than {self.cfg.data.min_utt_frames} "
                 f"frames left out), {ix.feat_dim}-dim features, {sum(p.numel() for p in self.net.parameters())} "
                 f"parameters, {self.env.world_size} process(es) on {self.env.device}"
                 f"{' under bfloat16 autocast' if self.net.autocast_dtype is not None else ''}, "
                 f"iterations {start}..{self.cfg.train.num_iters}")
        return writer, handler

    def loop(self, net: nn.Module, batches, start: int, end: int, stats: TrainStats, writer) -> None:
        cfg, env, schedule = self.cfg, self.env, self.schedule
        bar = tqdm(total=end, initial=start, desc="train", unit="it", disable=None if env.is_main else True)
        window_loss = torch.zeros((), device=env.device)
        window_acc = torch.zeros((), device=env.device)
        window_n, t_start = 0, time.perf_counter()
        try:
            for it in range(start, end):
                t0 = time.perf_counter()
                batch = next(batches)
                if "user_error" in batch:
                    raise UserError(batch["user_error"])
                t1 = time.perf_counter()
                if batch["iteration"] != it:
                    raise RuntimeError(f"batch for iteration {batch['iteration']} arrived at iteration {it}")
                self.sampler_state = self.sampler.state_after(it)
                if cfg.dropclass.reset_head_each_drop and schedule.starts_period(it):
                    self.reset_head()
                classes = batch["classes"]
                active = schedule.active_rows(it, self.sampler.batch_classes(it))  # the global batch's
                feats = batch["feats"].to(env.device, non_blocking=True)
                labels = self.label_map[classes].to(env.device, non_blocking=True)
                net.train()
                logits, target = net(feats, labels, None if active is None else active.to(env.device))
                loss = F.cross_entropy(logits, target)
                finite = bool(torch.isfinite(loss).item())
                if not distributed.all_ranks_true(finite, env):
                    raise self.diverged(it + 1, loss.item() if not finite else math.nan)
                self.optimizer.zero_grad(set_to_none=True)
                (loss * self.sampler.rank_loss_weight).backward()  # DDP's mean over ranks: the global batch mean
                if cfg.optim.grad_clip > 0:
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.extractor.after_step(it + 1)
                done = it + 1
                window_loss += loss.detach()
                window_acc += (logits.detach().argmax(1) == target).float().mean()
                window_n += 1
                t2 = time.perf_counter()
                if it == start:
                    stats.startup_s = t2 - t0
                else:
                    stats.iterations += 1
                    stats.frames += len(self.sampler.batch_classes(it)) * feats.shape[1]
                    stats.seconds += t2 - t0
                    stats.data_wait_s += t1 - t0
                    stats.max_wait_s = max(stats.max_wait_s, t1 - t0)
                bar.update(1)
                if done % cfg.train.log_every == 0 or done == end:
                    self.log_progress(done, window_loss.item() / window_n, window_acc.item() / window_n,
                                      stats, bar, writer, time.perf_counter() - t_start)
                    window_loss.zero_(), window_acc.zero_()
                    window_n = 0
                if done % cfg.train.checkpoint_every == 0:
                    self.checkpoint(done)
        finally:
            bar.close()

    def reset_head(self) -> None:
        """DropClass ``reset_head_each_drop``: fresh head weights (all layers, or the class rows
        only) and, unless ``reset_head_optimizer: keep``, no optimiser memory of the old ones."""
        dc = self.cfg.dropclass
        if dc.reset_head_layers == "final":
            self.head.reset_final_layer()
        else:
            self.head.reset_parameters()
        if dc.reset_head_optimizer == "clear":
            for p in self.head.parameters():
                self.optimizer.state.pop(p, None)

    def log_progress(self, done, loss, acc, stats, bar, writer, elapsed) -> None:
        if not self.env.is_main:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.2f}")
        log.info(f"iter {done}/{self.cfg.train.num_iters} loss {loss:.4f} acc {acc:.3f} lr {lr:.4g} "
                 f"{stats.frames_per_s:.0f} frames/s data-wait {100 * stats.wait_fraction:.1f}% elapsed {elapsed:.1f}s")
        for name, value in (("loss", loss), ("accuracy", acc), ("lr", lr), ("frames_per_s", stats.frames_per_s),
                            ("data_wait_fraction", stats.wait_fraction)):
            writer.add_scalar(f"train/{name}", value, done)
