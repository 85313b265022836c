"""Kaldi's energy voice-activity detection (``compute-vad``), vectorised with numpy.

Frame t is voiced when, among the frames t-c..t+c that exist (c = ``vad_frames_context``),
at least the proportion ``vad_proportion_threshold`` have a log energy above

    vad_energy_threshold + vad_energy_mean_scale * (mean log energy of the utterance).

The log energy is column 0 of the features: for Kaldi's MFCC (and fbank with use_energy) that
is the frame's raw log energy. Plain fbank features have no energy column; for them
(``log_mel_sum``) we use the log of the summed mel-filterbank power minus log(FFT size / 2),
log(sum_m exp(fbank_m)) - log(N/2): by Parseval, the energy of the pre-emphasised, windowed
frame within low_freq..high_freq. It follows the raw log energy to within a few nats (less for
speech-like, low-frequency-heavy frames after pre-emphasis), so Kaldi's thresholds work on it,
but decisions near the threshold can differ from MFCC's.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dropclass_lib.atomic import atomic_open, regenerating
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.features import fft_size_of, read_feats_config
from dropclass_lib.parallel import ArkJob, Dispatch, Progress, merge_ark_jobs, run_ark_jobs, split_contiguous
from dropclass_lib.provenance import data_inputs
from dropclass_lib.tables import iter_table
from dropclass_lib.vector_io import OpenArchives, load_matrix

log = logging.getLogger(__name__)
ENERGY_SOURCES = ("auto", "c0", "log_mel_sum")


@dataclass
class VadConfig:
    vad_energy_threshold: float = 5.5
    """Constant term of the energy threshold."""
    vad_energy_mean_scale: float = 0.5
    """The utterance's mean log energy, times this, is added to the threshold."""
    vad_frames_context: int = 2
    """Frames on each side that take part in a frame's decision."""
    vad_proportion_threshold: float = 0.12
    """Proportion of the context frames that must be above the threshold."""
    energy_source: str = "auto"
    """c0: column 0 of the features; log_mel_sum: log of the summed fbank power; auto: c0 unless
    the data dir's feats_config.yaml says plain fbank (no energy column)."""

    def validate(self) -> None:
        if self.vad_energy_mean_scale < 0:
            raise ValueError(f"vad_energy_mean_scale must be >= 0, got {self.vad_energy_mean_scale}")
        if self.vad_frames_context < 0:
            raise ValueError(f"vad_frames_context must be >= 0, got {self.vad_frames_context}")
        if not 0 < self.vad_proportion_threshold < 1:
            raise ValueError(f"vad_proportion_threshold must be in (0, 1), got {self.vad_proportion_threshold}")
        if self.energy_source not in ENERGY_SOURCES:
            raise ValueError(f"energy_source must be one of {ENERGY_SOURCES}, got {self.energy_source!r}")


def frame_log_energy(feats: np.ndarray, energy_source: str, fft_size: int = 512) -> np.ndarray:
    """Per-frame log energy of a (frames x dims) matrix; ``energy_source`` is c0 or log_mel_sum
    (for log-mel fbank computed with a ``fft_size``-point FFT)."""
    if energy_source == "c0":
        return feats[:, 0].astype(np.float64)
    x = feats.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))[:, 0] - np.log(fft_size / 2)


def energy_vad(log_energy: np.ndarray, cfg: VadConfig) -> np.ndarray:
    """Kaldi's compute-vad decision for one utterance: float32 vector of 0/1, one per frame."""
    e = np.asarray(log_energy, dtype=np.float64)
    num_frames = len(e)
    threshold = cfg.vad_energy_threshold + cfg.vad_energy_mean_scale * e.mean()
    above = np.concatenate([[0], np.cumsum(e > threshold)])
    t = np.arange(num_frames)
    lo = np.maximum(t - cfg.vad_frames_context, 0)
    hi = np.minimum(t + cfg.vad_frames_context + 1, num_frames)
    return ((above[hi] - above[lo]) >= (hi - lo) * cfg.vad_proportion_threshold).astype(np.float32)


def resolve_energy_source(cfg: VadConfig, data_dir: str | os.PathLike) -> tuple[str, int]:
    """``(energy source, FFT size)`` for the features of ``data_dir``, from its feats_config.yaml
    (without one, ``auto`` is an error and the FFT size is the 16 kHz / 25 ms default, 512)."""
    record = read_feats_config(data_dir)
    fft_size = fft_size_of(record) if record else 512
    if cfg.energy_source != "auto":
        return cfg.energy_source, fft_size
    if record is None:
        raise UserError(f"{data_dir}/feats_config.yaml (written by steps/make_features.py) is missing, so the "
                        "kind of features is unknown: set energy_source (c0 or log_mel_sum) in the VAD config")
    plain_fbank = record.get("feat_type") == "fbank" and not record.get("use_energy")
    return ("log_mel_sum" if plain_fbank else "c0"), fft_size


def _read_matrix(feats_scp: Path, lineno: int, line: str, utt: str, rx: str, arks: OpenArchives) -> np.ndarray:
    """The features an scp line points to; a missing or truncated archive is an error naming the line."""
    def unreadable(why: str) -> InputFileError:
        return InputFileError(feats_scp, lineno, f"cannot read the features of {utt!r} ({why}): archive missing "
                              "or truncated? Recompute the features", line)

    ark, _, offset = rx.rpartition(":")
    try:
        if offset.isdigit() and not ark.endswith("|") and int(offset) >= os.path.getsize(ark):
            raise unreadable(f"{ark} ends before byte {offset}")  # kaldiio would fail an assertion
        mat = load_matrix(rx, arks)
    except (OSError, ValueError, EOFError, struct.error) as err:  # what kaldiio raises for a missing or cut archive
        raise unreadable(str(err) or type(err).__name__) from None
    if mat.ndim != 2 or mat.shape[0] == 0:
        raise InputFileError(feats_scp, lineno, f"features of {utt!r} are empty or not a matrix (shape {mat.shape})", line)
    return mat


@dataclass(frozen=True)
class _VadJob:
    """One job of :func:`compute_vad_dir`: the decisions for the utterances of its chunk
    (utterance -> ``(lineno, line, rxfile)`` of feats.scp), and a log line."""

    feats_scp: Path
    cfg: VadConfig
    source: str
    fft_size: int | None
    log_dir: Path
    name: str

    def __call__(self, job: ArkJob, entries: dict[str, tuple[int, str, str]], progress: Progress) -> None:
        start, voiced, total = time.time(), 0, 0

        def items():
            nonlocal voiced, total
            for utt, (lineno, line, rx) in entries.items():
                mat = _read_matrix(self.feats_scp, lineno, line, utt, rx, arks)
                decision = energy_vad(frame_log_energy(mat, self.source, self.fft_size), self.cfg)
                voiced += int(decision.sum())
                total += len(decision)
                progress(1)
                yield utt, decision

        arks = OpenArchives()
        try:
            n = job.write(items(), write_num_frames=False)
        finally:
            arks.close()
        with atomic_open(self.log_dir / f"vad_{self.name}.{job.job}.log", "w", encoding="utf-8") as f:
            f.write(f"{n} utterances, proportion of voiced frames {voiced / max(total, 1):.3f} "
                    f"(energy: {self.source}), {time.time() - start:.2f} s\n")


def compute_vad_dir(data_dir: str | os.PathLike, vad_dir: str | os.PathLike, cfg: VadConfig, nj: int = 1,
                    dispatch: Dispatch | None = None) -> None:
    """Energy VAD for every utterance of ``data_dir/feats.scp`` in ``nj`` jobs:
    ``vad_dir/vad_<name>.JOB.{ark,scp}``, then ``data_dir/vad.scp``. A job is kept only when its
    utterances, feats.scp and the options are unchanged (:mod:`dropclass_lib.provenance`).
    ``dispatch``: where the jobs run (:class:`dropclass_lib.parallel.Dispatch`)."""
    data_dir, vad_dir = Path(data_dir), Path(vad_dir)
    feats_scp = data_dir / "feats.scp"
    entries = {utt: (lineno, line, fields[0])
               for lineno, utt, fields, line in iter_table(feats_scp, max_fields=2, check_sorted=True)}
    utts = list(entries)
    if not utts:
        raise UserError(f"{feats_scp} is empty")
    source, fft_size = resolve_energy_source(cfg, data_dir)
    name = data_dir.resolve().name
    (vad_dir / "log").mkdir(parents=True, exist_ok=True)
    settings = {**vars(cfg), "energy_source": source, "fft_size": fft_size}
    chunks = [{utt: entries[utt] for utt in chunk} for chunk in split_contiguous(utts, nj)]

    def run_jobs():
        return run_ark_jobs(vad_dir / f"vad_{name}", chunks, _VadJob(feats_scp, cfg, source, fft_size, vad_dir / "log", name),
                            desc=f"vad {data_dir.name}",
                            settings=settings, inputs=data_inputs(data_dir, "feats.scp"), dispatch=dispatch,
                            log_dir=vad_dir / "log")

    if dispatch is not None and dispatch.is_job:  # one dispatched job: its archive, no merged list
        run_jobs()
        return
    with regenerating(data_dir / "vad.scp"):  # a failed run leaves no stale list
        jobs, ran = run_jobs()
        n = merge_ark_jobs(jobs, data_dir / "vad.scp")
    log.info("VAD for %d utterances of %s (%s) -> %s/vad.scp", n, data_dir,
             "computed" if ran else "up to date", data_dir)
