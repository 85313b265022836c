"""Sliding-window cepstral mean normalisation and voiced-frame selection: the two steps of
Kaldi's prepare_feats_for_egs.sh (apply-cmvn-sliding --norm-vars=false --center=true,
then select-voiced-frames), and the stage that applies them to a data directory.

Window placement (Kaldi's centred mode): frame t uses frames [t - W//2, t - W//2 + W); a window
that would start before frame 0 or end after the last frame is shifted to lie inside the
utterance, so the first and last frames use the first and last W frames; an utterance shorter
than W uses all of its frames for every frame.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dropclass_lib.atomic import atomic_open, regenerating
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.parallel import ArkJob, Dispatch, Progress, merge_ark_jobs, run_ark_jobs, split_contiguous
from dropclass_lib.provenance import data_inputs, scp_archives
from dropclass_lib.tables import read_key_rest, read_kv, write_table
from dropclass_lib.trials import Trials, read_trials, write_trials
from dropclass_lib.vector_io import OpenArchives, load_matrix

log = logging.getLogger(__name__)


def sliding_window_cmn(feats: np.ndarray, window: int = 300) -> np.ndarray:
    """Subtract from each frame the mean of its centred window of ``window`` frames (float32)."""
    if window < 1:
        raise UserError(f"the CMN window must be at least 1 frame, got {window}")
    x = np.asarray(feats, dtype=np.float64)
    num_frames = x.shape[0]
    cum = np.zeros((num_frames + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=cum[1:])
    start = np.clip(np.arange(num_frames) - window // 2, 0, max(num_frames - window, 0))
    end = np.minimum(start + window, num_frames)
    mean = (cum[end] - cum[start]) / (end - start)[:, None]
    return (x - mean).astype(np.float32)


def select_voiced_frames(feats: np.ndarray, vad: np.ndarray, utt: str = "") -> np.ndarray:
    """Keep the rows whose VAD value is non-zero (Kaldi's select-voiced-frames)."""
    vad = np.asarray(vad).reshape(-1)
    if len(vad) != feats.shape[0]:
        raise UserError(f"utterance {utt!r}: {feats.shape[0]} feature frames but {len(vad)} VAD decisions")
    return feats[vad != 0]


def _restrict_table(src: Path, dst: Path, keep: set[str]) -> None:
    """Copy ``key rest`` lines of ``src`` whose key is kept (other fields verbatim)."""
    table = read_key_rest(src)
    write_table(dst, {k: v for k, v in table.items() if k in keep})


def _write_data_dir(data_in: Path, data_out: Path, kept: set[str]) -> dict[str, int]:
    """utt2spk, spk2utt, wav.scp, utt2aug, trials and enrol.list of ``data_in`` restricted to ``kept``."""
    counts = {}
    utt2spk = read_kv(data_in / "utt2spk")
    utt2spk = {u: s for u, s in utt2spk.items() if u in kept}
    write_table(data_out / "utt2spk", utt2spk)
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk, key=lambda u: u.encode()):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    write_table(data_out / "spk2utt", spk2utt)
    for audio in ("wav.scp", "utt2aug"):  # the audio: files/commands, or rendered (augmentation)
        if (data_in / audio).is_file():
            _restrict_table(data_in / audio, data_out / audio, kept)
    if (data_in / "trials").is_file():
        trials = read_trials(data_in / "trials")
        mask = np.array([e in kept and t in kept for e, t in zip(trials.enrol, trials.test)], dtype=bool)
        counts["trials_dropped"] = int((~mask).sum())
        if not mask.any():
            raise UserError(f"{data_in}/trials: every trial uses an utterance without voiced frames")
        write_trials(data_out / "trials", Trials(trials.enrol[mask], trials.test[mask], trials.target[mask]))
    if (data_in / "enrol.list").is_file():
        enrol = [line.split()[0] for line in open(data_in / "enrol.list", encoding="utf-8") if line.strip()]
        with atomic_open(data_out / "enrol.list", "w", encoding="utf-8") as f:
            f.writelines(f"{u}\n" for u in enrol if u in kept)
    return counts


@dataclass(frozen=True)
class _CmnVadJob:
    """One job of :func:`prepare_feats_for_egs`: CMN and voiced frames of the utterances of its
    chunk (utterance -> ``(feats rxfile, vad rxfile)``), and a log line naming those dropped."""

    cmn_window: int
    log_dir: Path
    name: str

    def __call__(self, job: ArkJob, entries: dict[str, tuple[str, str]], progress: Progress) -> None:
        start, dropped = time.time(), []

        def items():
            for utt, (feats_rx, vad_rx) in entries.items():
                voiced = select_voiced_frames(sliding_window_cmn(load_matrix(feats_rx, arks), self.cmn_window),
                                              load_matrix(vad_rx, arks), utt)
                progress(1)
                if voiced.shape[0] == 0:
                    dropped.append(utt)
                    continue
                yield utt, voiced

        arks = OpenArchives()
        try:
            n = job.write(items())
        finally:
            arks.close()
        with atomic_open(self.log_dir / f"xvector_feats_{self.name}.{job.job}.log", "w", encoding="utf-8") as f:
            f.write(f"{n} utterances kept, {len(dropped)} without voiced frames dropped"
                    f"{': ' + ' '.join(dropped) if dropped else ''}; {time.time() - start:.2f} s\n")


def prepare_feats_for_egs(data_in: str | os.PathLike, data_out: str | os.PathLike, feat_dir: str | os.PathLike,
                          nj: int = 1, cmn_window: int = 300, dispatch: Dispatch | None = None) -> None:
    """Sliding CMN then voiced-frame selection for every utterance of ``data_in`` (which needs
    feats.scp and vad.scp); archives ``feat_dir/xvector_feats_<name>.JOB.{ark,scp}``, and a new
    data dir ``data_out`` with feats.scp, utt2num_frames and the other files restricted to the
    utterances that kept at least one frame (the others are dropped with a warning).
    ``dispatch``: where the jobs run (:class:`dropclass_lib.parallel.Dispatch`)."""
    data_in, data_out, feat_dir = Path(data_in), Path(data_out), Path(feat_dir)
    if data_in.resolve() == data_out.resolve():
        raise UserError(f"the output data dir must differ from the input ({data_in})")
    feats_scp, vad_scp = data_in / "feats.scp", data_in / "vad.scp"
    utts = list(read_kv(data_in / "utt2spk", check_sorted=True))
    feats_keys, vad_keys = read_kv(feats_scp), read_kv(vad_scp)
    for path, keys in ((feats_scp, feats_keys), (vad_scp, vad_keys)):
        missing = [u for u in utts if u not in keys]
        if missing:
            raise InputFileError(path, None, f"no entry for {len(missing)} utterance(s) of utt2spk, e.g. {missing[0]!r}")
    name = data_out.resolve().name
    (feat_dir / "log").mkdir(parents=True, exist_ok=True)
    settings = {"cmn_window": cmn_window, "center": True, "norm_vars": False, "data_in": str(data_in.resolve())}
    chunks = [{utt: (feats_keys[utt], vad_keys[utt]) for utt in chunk} for chunk in split_contiguous(utts, nj)]

    def run_jobs():
        return run_ark_jobs(feat_dir / f"xvector_feats_{name}", chunks, _CmnVadJob(cmn_window, feat_dir / "log", name),
                            desc=f"cmn+vad {data_in.name}", settings=settings,
                            inputs=data_inputs(data_in, "feats.scp") + [vad_scp] + scp_archives(vad_scp),
                            dispatch=dispatch, log_dir=feat_dir / "log")

    if dispatch is not None and dispatch.is_job:  # one dispatched job: its archive, no data dir
        run_jobs()
        return
    data_out.mkdir(parents=True, exist_ok=True)
    with regenerating(data_out / "feats.scp", data_out / "utt2num_frames"):  # a failed run leaves no stale list
        jobs, _ = run_jobs()
        kept = set()
        for job in jobs:
            kept.update(job.read_scp())
        if not kept:
            raise UserError(f"{data_in}: no utterance has any voiced frame")
        counts = _write_data_dir(data_in, data_out, kept)
        merge_ark_jobs(jobs, data_out / "feats.scp", data_out / "utt2num_frames")
    if len(kept) < len(utts):
        log.warning("%d of %d utterances of %s had no voiced frames and were dropped (see %s/log)",
                    len(utts) - len(kept), len(utts), data_in, feat_dir)
    if counts.get("trials_dropped"):
        log.warning("%d trials of %s/trials use a dropped utterance and were removed", counts["trials_dropped"], data_in)
    log.info("%d utterances with CMN'd voiced frames -> %s", len(kept), data_out)
