"""DropAdapt: unsupervised adaptation of a trained extractor towards the enrolment speakers.

Starting from a trained extractor + head, each round

1. runs the (unlabelled) enrolment utterances through extractor and head (no margin, only the
   head rows still in play) and averages the softmax outputs: ``p_avg``, one value per row;
2. ranks the training classes that still have data by ``p_avg`` and removes the ``num_drop``
   least probable ones *permanently*;
3. fine-tunes extractor and head for ``its_per_drop`` iterations on the reduced problem, through
   the ordinary trainer (:func:`dropclass_lib.training.trainer.train`) with a
   :class:`~dropclass_lib.training.dropclass.ClassState` that encodes what has been removed.

Variants (``adapt.variant``):

* ``standard``: removed classes lose their data and their head rows;
* ``random``: as standard, but the classes to remove are drawn at random (the control);
* ``uniform_agg``: as standard, but ``p_avg`` is averaged over an enrolment subset balanced per
  enrolment speaker (the same number of utterances of each; speaker ids from ``utt2spk``);
* ``only_data``: removed classes lose their data but keep their rows in the softmax; with
  ``adapt.only_data_ranking: cumulative`` (default) the removals add up over the rounds, with
  ``each_round`` (the authors' code) every round ranks all classes again and only its own
  ``num_drop`` classes are without data;
* ``combine``: removed classes are merged: with ``adapt.combine_into: other_class`` (default)
  into one extra "other" row (created at the first round, initialised with the mean of the
  merged rows), their data trained towards it, each merged speaker still a sampling unit of its
  own; with ``least_probable_kept`` (the authors' code) into the kept class of lowest p_avg,
  chosen once per round, whose sampling unit and label their utterances join.

How p_avg is computed: ``adapt.p_avg_logits`` ``scaled`` (default; the head's no-margin logits,
e.g. ``s cos θ``) or ``cosine`` (raw ``cos θ``, the authors' code); ``adapt.p_avg_inputs``
``utterances`` (default; whole utterances) or ``crops`` (one random crop of
``adapt.p_avg_crop_frames`` frames per utterance, zero-padded when shorter, fresh each round: the
authors' code). ``adapt.optimizer``: ``per_round`` (default; a new optimiser and learning-rate
schedule per round) or ``continuous`` (one SGD run: momentum buffers and the absolute schedule
carry over from round to round, through each round's ``optimizer.pt``). docs/METHOD.md gives the
reasons for the defaults and what each choice measured.

Per round ``r`` the experiment directory holds ``round<r>/p_avg.tsv`` (class, p_avg, whether it
was removed this round, sorted by p_avg), ``round<r>/remaining.txt`` (the training classes that
still have data after the round's removal), the fine-tuning run itself (``train.log``,
``final.pt``, ...), and at the top ``p_avg.png`` (sorted p_avg over the training classes from the
enrolment data and from training data: the paper's class-mismatch picture) and ``final.pt``,
the adapted model.

The whole directory is a strict stage (:mod:`dropclass_lib.provenance`): it records the
DropAdapt configuration and the identity of the model, training and enrolment data, and a
re-run with any of them changed is an error naming the differences (``overwrite=True`` clears
the rounds and adapts again). Each round's fine-tuning is recorded too, with the class state it
starts from, so a round made under other settings is never reused. An interrupted run with the
same settings keeps its finished rounds and resumes the interrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dropclass_lib.atomic import atomic_open, atomic_path
from dropclass_lib.config import from_dict, save_config
from dropclass_lib.datadir import read_utt_list, read_utt_table
from dropclass_lib.dropadapt_config import DropAdaptConfig, open_adapt_dir
from dropclass_lib.embeddings import embed_utterances
from dropclass_lib.errors import UserError
from dropclass_lib.heads import build_head
from dropclass_lib.model_io import TrainedModel, load_model
from dropclass_lib.training.config import DropClassConfig, ModelConfig, TrainConfig
from dropclass_lib.training.data import FeatIndex
from dropclass_lib.training.dropclass import ClassState
from dropclass_lib.training.record import OPTIMIZER_FILE
from dropclass_lib.training.trainer import train
from dropclass_lib.vector_io import iter_scp

log = logging.getLogger("dropclass.dropadapt")

OTHER_CLASS = "<other>"
CROP_STREAM = 0xC209  # separates the p_avg crops' generator from the others


def round_train_config(cfg: DropAdaptConfig, model_cfg: dict, rnd: int) -> TrainConfig:
    """The fine-tuning configuration of round ``rnd``: no random drops on top of the removals."""
    model = from_dict(ModelConfig, model_cfg.get("model", {}), "the model's training config")
    run = dataclasses.replace(cfg.train, num_iters=cfg.adapt.its_per_drop, seed=cfg.adapt.seed * 1000 + rnd)
    return TrainConfig(model=model, data=cfg.data, optim=cfg.optim, dropclass=DropClassConfig(num_drop=0), train=run)


# --------------------------------------------------------------------------- p_avg


def posteriors_mean(model: TrainedModel, feats, rows: torch.Tensor, chunk_frames: int,
                    device: torch.device, scaled: bool = True) -> np.ndarray:
    """Average no-margin softmax over ``rows`` of the utterances in ``feats`` ((utt, matrix) pairs);
    ``scaled=False``: of the unscaled logits (raw ``cos θ`` for cosine heads)."""
    total, count = torch.zeros(len(rows), dtype=torch.float64), 0
    head = model.head.to(device).eval()
    embs = [e for _, e in embed_utterances(model.extractor, feats, chunk_frames=chunk_frames, device=device)]
    if not embs:
        raise UserError("no utterances to compute p_avg on")
    with torch.inference_mode():
        for b in range(0, len(embs), 256):
            e = torch.from_numpy(np.stack(embs[b:b + 256])).to(device)
            total += head.posteriors(e, rows.to(device), scaled=scaled).double().sum(0).cpu()
            count += e.shape[0]
    return (total / count).numpy()


def random_crops(feats, frames: int, rng: np.random.Generator):
    """One random crop of ``frames`` frames of each ``(utt, matrix)``; a shorter matrix is
    zero-padded at its end (the authors' fixed-length p_avg inputs)."""
    for utt, mat in feats:
        if len(mat) >= frames:
            start = int(rng.integers(0, len(mat) - frames + 1))
            yield utt, mat[start:start + frames]
        else:
            padded = np.zeros((frames, mat.shape[1]), dtype=mat.dtype)
            padded[:len(mat)] = mat
            yield utt, padded


def balanced_subset(utts: list[str], utt2spk: dict[str, str], per_spk: int, seed: int) -> list[str]:
    """``per_spk`` utterances of each speaker (0: as many as the smallest speaker has), seeded."""
    by_spk: dict[str, list[str]] = {}
    for u in utts:
        by_spk.setdefault(utt2spk[u], []).append(u)
    n = per_spk or min(len(v) for v in by_spk.values())
    short = [s for s, v in by_spk.items() if len(v) < n]
    if short:
        raise UserError(f"uniform_agg: {len(short)} enrolment speakers have fewer than {n} utterances (e.g. {short[0]})")
    rng = np.random.default_rng(seed)
    return sorted(u for s in sorted(by_spk) for u in rng.choice(sorted(by_spk[s]), n, replace=False))


def choose_removals(p_avg: np.ndarray, candidates: np.ndarray, num_drop: int, variant: str,
                    rng: np.random.Generator) -> np.ndarray:
    """Data-class ids to remove among ``candidates``: the ``num_drop`` lowest ``p_avg`` (ties by
    class id), or random ones for the ``random`` variant. ``p_avg`` is indexed by data class."""
    if variant == "random":
        return np.sort(rng.choice(candidates, num_drop, replace=False))
    order = np.lexsort((candidates, p_avg[candidates]))
    return np.sort(candidates[order[:num_drop]])


def least_probable_kept(p_avg: np.ndarray, candidates: np.ndarray, removed: np.ndarray) -> int:
    """The candidate not in ``removed`` with the lowest ``p_avg`` (ties by class id): where
    ``combine_into: least_probable_kept`` merges the removed classes."""
    kept = candidates[~np.isin(candidates, removed)]
    return int(kept[np.lexsort((kept, p_avg[kept]))[0]])


def remove_classes(state: ClassState, removed: np.ndarray, variant: str, into: int | None = None,
                   cumulative: bool = True) -> ClassState:
    """The class state after removing data classes ``removed`` (see the module docstring).

    ``into``: the data class that ``combine`` merges them into (``combine_into:
    least_probable_kept``); ``None`` merges them into the "other" row. ``cumulative=False``
    (``only_data_ranking: each_round``): only ``removed`` is without data afterwards.
    """
    data_mask = state.data_mask.copy() if cumulative or variant != "only_data" else np.ones(state.num_classes, bool)
    data_mask[removed] = False
    row_mask, label_map, names = state.row_mask.copy(), state.label_map.copy(), list(state.row_names)
    merged_into = state.merged_into
    if variant == "combine" and into is not None:
        merged_into = np.arange(state.num_classes) if merged_into is None else merged_into.copy()
        follow = np.isin(merged_into, removed)  # the removed classes and those merged into them before
        row_mask[label_map[removed]] = False
        merged_into[follow] = into
        label_map[follow] = label_map[into]
    elif variant == "combine":
        if names[-1] != OTHER_CLASS:
            names.append(OTHER_CLASS)
            row_mask = np.append(row_mask, True)
        row_mask[label_map[removed]] = False
        label_map[removed] = len(names) - 1
        data_mask[removed] = True          # their data stays, labelled "other"
    elif variant != "only_data":
        row_mask[label_map[removed]] = False
    return ClassState(state.num_classes, data_mask, label_map, row_mask, names, merged_into)


def grow_head(model: TrainedModel, merged_rows: np.ndarray) -> None:
    """Give the head one more row (the "other" class), initialised as the mean of ``merged_rows``."""
    old = model.head
    spec = old.build_spec
    new = build_head(spec["name"], old.emb_dim, old.num_classes + 1, **spec["kwargs"])
    state = {}
    for name, value in old.state_dict().items():
        if value.ndim >= 1 and value.shape[0] == old.num_classes:
            value = torch.cat([value, value[torch.as_tensor(merged_rows)].mean(0, keepdim=True)])
        state[name] = value
    new.load_state_dict(state)
    model.head = new.to(next(old.parameters()).device)


# --------------------------------------------------------------------------- driver


def class_state_digest(state: ClassState) -> str:
    """A short fingerprint of what a round starts from: which classes were removed or merged."""
    digest = hashlib.sha1()
    for array in (state.data_mask, state.label_map, state.row_mask):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\n".join(state.row_names).encode("utf-8"))
    if state.merged_into is not None:
        digest.update(np.ascontiguousarray(state.merged_into, dtype=np.int64).tobytes())
    return digest.hexdigest()


@dataclass
class RoundRecord:
    p_avg: np.ndarray        # per head row in play
    rows: np.ndarray         # those rows
    removed: np.ndarray      # data-class ids removed in this round


class DropAdapt:
    def __init__(self, cfg: DropAdaptConfig, model_path: str, train_dir: str, enrol_dir: str, exp_dir: str,
                 device: str = "cpu", overwrite: bool = False):
        self.cfg, self.exp_dir, self.overwrite = cfg, Path(exp_dir), overwrite
        self.train_dir, self.enrol_dir = Path(train_dir), Path(enrol_dir)
        self.model_path = model_path
        self.device = torch.device(device)
        self.model = load_model(model_path, self.device)
        self.index = FeatIndex.from_data_dir(train_dir, cfg.data.min_utt_frames)
        if self.model.classes != self.index.classes:
            raise UserError(f"{model_path} was trained on {len(self.model.classes)} classes that are not the "
                            f"{len(self.index.classes)} speakers of {train_dir}: adapt with the training data dir")
        enrol_list = self.enrol_dir / "enrol.list"
        self.enrol_utts = read_utt_list(enrol_list)
        self.enrol_utt2spk = read_utt_table(self.enrol_dir / "utt2spk", "utt2spk")

    def enrol_feats(self, utts: list[str]):
        wanted = set(utts)
        seen = 0
        for _, key, mat, _ in iter_scp(self.enrol_dir / "feats.scp", wanted):
            seen += 1
            yield key, mat
        if seen != len(wanted):
            raise UserError(f"{self.enrol_dir / 'feats.scp'} lacks {len(wanted) - seen} utterances of "
                            f"{self.enrol_dir / 'enrol.list'}")

    def train_feats(self, n: int):
        rng = np.random.default_rng(self.cfg.adapt.seed)
        keys = {k.decode() for k in rng.choice(self.index.utt_ids, min(n, len(self.index)), replace=False)}
        for _, key, mat, _ in iter_scp(self.train_dir / "feats.scp", keys):
            yield key, mat

    def mean_posteriors(self, feats, rows: torch.Tensor, rnd: int) -> np.ndarray:
        """p_avg over ``feats`` as ``adapt.p_avg_logits`` / ``p_avg_inputs`` say (crops drawn per round)."""
        a = self.cfg.adapt
        chunk = a.chunk_frames
        if a.p_avg_inputs == "crops":
            chunk = a.p_avg_crop_frames or self.cfg.data.max_frames
            feats = random_crops(feats, chunk, np.random.default_rng([a.seed, CROP_STREAM, rnd]))
        return posteriors_mean(self.model, feats, rows, chunk, self.device, scaled=a.p_avg_logits == "scaled")

    def p_avg(self, state: ClassState, utts: list[str], rnd: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rows = torch.from_numpy(np.flatnonzero(state.row_mask))
        return rows.numpy(), self.mean_posteriors(self.enrol_feats(utts), rows, rnd)

    def run(self) -> Path:
        cfg, a = self.cfg, self.cfg.adapt
        final = self.exp_dir / "final.pt"
        st = open_adapt_dir(cfg, self.model_path, self.train_dir, self.enrol_dir, self.exp_dir,
                            overwrite=self.overwrite)
        if st.fresh:
            return final
        if st.redo:  # made under other settings: its rounds must not be resumed
            for old in self.exp_dir.glob("round*"):
                shutil.rmtree(old)
            final.unlink(missing_ok=True)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.exp_dir / "config.yaml")
        utts = (balanced_subset(self.enrol_utts, self.enrol_utt2spk, a.utts_per_enrol_spk, a.seed)
                if a.variant == "uniform_agg" else self.enrol_utts)
        with atomic_open(self.exp_dir / "adapt_utts.txt", "w", encoding="utf-8") as f:
            f.writelines(f"{u}\n" for u in utts)
        state = ClassState.full(self.index.classes)
        rng = np.random.default_rng([a.seed, 0xADA])
        last = self.model_path
        for rnd in range(a.num_rounds):
            round_dir = self.exp_dir / f"round{rnd}"
            own_row = state.label_map == np.arange(state.num_classes)
            re_rank = a.variant == "only_data" and a.only_data_ranking == "each_round"
            candidates = np.flatnonzero(own_row if re_rank else state.data_mask & own_row)
            num_drop = min(a.num_drop, len(candidates) - a.min_remaining)
            if num_drop <= 0:
                log.info(f"round {rnd}: only {len(candidates)} classes left (min_remaining {a.min_remaining}); stopping")
                break
            rows, p = self.p_avg(state, utts, rnd)
            p_by_class = np.full(state.num_classes, np.inf)
            own = rows < state.num_classes
            p_by_class[rows[own]] = p[own]
            removed = choose_removals(p_by_class, candidates, num_drop, a.variant, rng)
            if rnd == 0:
                self.plot_mismatch(state, rows, p)
            into = None
            if a.variant == "combine" and a.combine_into == "least_probable_kept":
                into = least_probable_kept(p_by_class, candidates, removed)
            elif a.variant == "combine" and state.row_names[-1] != OTHER_CLASS:
                grow_head(self.model, state.label_map[removed])
            start_digest = class_state_digest(state)
            state = remove_classes(state, removed, a.variant, into, cumulative=not re_rank)
            self.write_round(round_dir, state, rows, p, removed)
            log.info(f"round {rnd}: removed {len(removed)} classes "
                     f"(p_avg {p_by_class[removed].max():.3g} and below); {self.num_with_data(state)} remain")
            made_from = {"dropadapt_round": rnd, "variant": a.variant, "starts_from": start_digest,
                         "class_state": class_state_digest(state)}
            inputs, continuous = [last], {}
            if a.optimizer == "continuous":  # one SGD run: the previous round's optimiser state and clock
                state_file = self.exp_dir / f"round{rnd - 1}" / OPTIMIZER_FILE if rnd else None
                continuous = {"optimizer_state": torch.load(state_file, weights_only=True) if state_file else None,
                              "lr_offset": rnd * a.its_per_drop, "save_optimizer": True}
                made_from["optimizer"] = "continuous"
                inputs += [state_file] if state_file else []
            result = train(round_train_config(cfg, self.model.config, rnd), self.train_dir, round_dir,
                           init_model=self.model, class_state=state, resume=True, overwrite=self.overwrite,
                           made_from=made_from, inputs=tuple(inputs), **continuous)
            last = result.final
            self.model = load_model(last, self.device)
        if last == self.model_path:
            raise UserError(f"DropAdapt made no round: {len(self.index.classes)} classes, "
                            f"adapt.min_remaining={a.min_remaining}")
        with atomic_path(final) as tmp:
            shutil.copyfile(last, tmp)
        st.finish()
        return final

    @staticmethod
    def num_with_data(state: ClassState) -> int:
        return int((state.data_mask & (state.label_map == np.arange(state.num_classes))).sum())

    def write_round(self, round_dir: Path, state: ClassState, rows: np.ndarray, p: np.ndarray,
                    removed: np.ndarray) -> None:
        round_dir.mkdir(parents=True, exist_ok=True)
        removed_rows = set(removed.tolist())  # a class still in play owns the head row of its own index
        names = state.row_names
        with atomic_open(round_dir / "p_avg.tsv", "w", encoding="utf-8") as f:
            f.write("class\tp_avg\tremoved\n")
            for i in np.argsort(p, kind="stable"):
                f.write(f"{names[rows[i]]}\t{p[i]:.6g}\t{int(rows[i] in removed_rows)}\n")
        with atomic_open(round_dir / "remaining.txt", "w", encoding="utf-8") as f:
            for c in np.flatnonzero(state.data_mask & (state.label_map == np.arange(state.num_classes))):
                f.write(f"{self.index.classes[c]}\n")

    def plot_mismatch(self, state: ClassState, rows: np.ndarray, p_enrol: np.ndarray) -> None:
        from dropclass_lib.plots import plot_p_avg

        curves = {"enrolment data": p_enrol}
        if self.cfg.adapt.train_utts_for_plot:
            t = self.mean_posteriors(self.train_feats(self.cfg.adapt.train_utts_for_plot), torch.from_numpy(rows), 0)
            curves["training data"] = t
        plot_p_avg(curves, self.exp_dir / "p_avg.png")
