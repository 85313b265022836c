#!/usr/bin/env python3
"""Score DATA_DIR/trials with a pretrained speaker encoder from outside the project (a "peer").

The reference a user would otherwise pick, on the same trial list: every utterance the trials
use is read from DATA_DIR/wav.scp with the project's audio reader (or, for an augmented copy,
rendered from its DATA_DIR/utt2aug record as the feature step renders it), embedded by the peer's
encoder through its public API, and the trials are scored by cosine similarity. OUT_DIR gets
the outputs of steps/score_trials.py (scores, metrics.json, RESULTS, det.png, hist.png);
metrics.json says "peer": NAME, so steps/make_results_table.py shows the result as a
"(pretrained peer)" row below the project's systems when OUT_DIR is EXP/<system>/scores*.
It prints the time taken and how many times faster than real time the audio was embedded
(reading and decoding included). It always recomputes: the run time is part of its result.

Peers:
  resemblyzer   Resemblyzer's VoiceEncoder (a GE2E encoder that ships inside its wheel):
                preprocess_wav on the samples at their own rate, then embed_utterance.

The peer is not a dependency of the project. Either add it to the project's environment
  . ./path.sh && pip install resemblyzer 'setuptools<81'
(its voice-activity detector imports pkg_resources, which setuptools 81 removed), or make a
separate environment with the project and the peer:
  python3 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install -e . resemblyzer 'setuptools<81'
  /tmp/peer-venv/bin/python bench/score_pretrained_peer.py data/test exp/resemblyzer/scores_test

Example:
  python bench/score_pretrained_peer.py --peer resemblyzer data/so_test exp/resemblyzer/scores_so_test
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dropclass_lib.atomic import regenerating  # noqa: E402
from dropclass_lib.audio import read_audio  # noqa: E402
from dropclass_lib.augment import SAMPLE_RATE, Renderer  # noqa: E402
from dropclass_lib.backends.cosine import CosineBackend  # noqa: E402
from dropclass_lib.backends.trial_scoring import (OUTPUT_FILES, score_trial_list, trial_indices,  # noqa: E402
                                                  write_scoring_outputs)
from dropclass_lib.cli import ArgumentParser, run_main  # noqa: E402
from dropclass_lib.datadir.utt2aug import AugRecord  # noqa: E402
from dropclass_lib.dirlock import lock_output_dirs  # noqa: E402
from dropclass_lib.errors import UserError  # noqa: E402
from dropclass_lib.features import read_audio_entries  # noqa: E402
from dropclass_lib.metrics import results_line  # noqa: E402
from dropclass_lib.trials import read_trials  # noqa: E402

log = logging.getLogger("score_pretrained_peer")

#: An encoder maps one utterance's mono float32 samples and their sample rate to an embedding.
Encoder = Callable[[np.ndarray, int], np.ndarray]

PROGRESS_EVERY = 250  # utterances between progress lines


class NoSpeechError(Exception):
    """The peer's own preprocessing left nothing of an utterance to embed."""


def load_resemblyzer(device: str) -> Encoder:
    """Resemblyzer's encoder on ``device``; a missing package is a :class:`UserError` saying
    what to install."""
    try:
        with warnings.catch_warnings():
            # its VAD package imports pkg_resources, which warns about its own deprecation
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError as err:
        if err.name == "pkg_resources":
            raise UserError("resemblyzer needs pkg_resources, which setuptools 81 removed: "
                            "pip install 'setuptools<81' into this environment") from None
        raise UserError(f"the resemblyzer peer is not installed ({err}): pip install resemblyzer 'setuptools<81' "
                        f"into this environment ({sys.prefix})") from None
    encoder = VoiceEncoder(device=device, verbose=False)

    def embed(samples: np.ndarray, rate: int) -> np.ndarray:
        wav = preprocess_wav(samples, source_sr=rate)
        if wav.size == 0:
            raise NoSpeechError("Resemblyzer's preprocessing (silence trimming) left no audio")
        return encoder.embed_utterance(wav)

    return embed


PEERS: dict[str, Callable[[str], Encoder]] = {"resemblyzer": load_resemblyzer}


def embed_utterances(wav_scp: Mapping[str, str | AugRecord], utts: Sequence[str], encoder: Encoder
                     ) -> tuple[list[str], np.ndarray, float]:
    """Embed ``utts`` (each must have an entry in ``wav_scp``: a wav.scp value or an utt2aug
    record, :func:`dropclass_lib.features.read_audio_entries`) with ``encoder``.

    ``encoder`` is any :data:`Encoder`: :func:`load_resemblyzer`'s, or another peer's. Returns
    the embedded utterance ids, their embeddings (one row each, float64) and the seconds of
    audio read. Audio that cannot be read, has no samples, or leaves the encoder nothing to
    embed is an error naming the utterance; so is an embedding that is not a finite vector of
    the same size as the others.
    """
    keys, rows, audio_seconds = [], [], 0.0
    renderer = Renderer()
    start = time.perf_counter()
    for n, utt in enumerate(utts, 1):
        entry = wav_scp[utt]
        if isinstance(entry, str):
            samples, rate = read_audio(entry, utt)
        else:
            samples, rate = renderer.audio(entry, utt), SAMPLE_RATE
        label = f"utterance {utt!r} ({entry if isinstance(entry, str) else 'rendered from ' + str(entry.source)})"
        if samples.size == 0:
            raise UserError(f"{label}: the audio has no samples")
        try:
            vector = np.asarray(encoder(samples, rate), dtype=np.float64)
        except NoSpeechError as err:
            raise UserError(f"{label}: {err}; remove it from the trials or the data directory") from None
        if vector.ndim != 1 or not np.isfinite(vector).all() or (rows and vector.shape != rows[0].shape):
            raise UserError(f"{label}: the encoder returned an embedding of shape {vector.shape}"
                            + ("" if vector.ndim != 1 or np.isfinite(vector).all() else " with non-finite values")
                            + (f", the others have {rows[0].shape}" if rows else ""))
        keys.append(utt)
        rows.append(vector)
        audio_seconds += samples.size / rate
        if n % PROGRESS_EVERY == 0 or n == len(utts):
            elapsed = time.perf_counter() - start
            log.info("embedded %d/%d utterances, %.0f s of audio, %.1f x real time",
                     n, len(utts), audio_seconds, audio_seconds / max(elapsed, 1e-9))
    return keys, np.asarray(rows, dtype=np.float64).reshape(len(rows), -1), audio_seconds


def score_with_peer(data_dir: Path, out_dir: Path, peer: str, encoder: Encoder) -> dict:
    """Embed the trial utterances of ``data_dir`` with ``encoder``, score its trials by cosine and
    write the scoring directory ``out_dir``; return its metrics."""
    wav_path, trials_path = data_dir / "wav.scp", data_dir / "trials"
    if not trials_path.is_file():
        raise UserError(f"{trials_path} does not exist")
    trials = read_trials(trials_path)
    # wav.scp values and parsed utt2aug records, read as the feature step reads them
    wav_scp = {utt: entry for utt, (_, _, entry) in read_audio_entries(data_dir, ()).items()}
    # before any embedding: a trial utterance without audio is an error naming the trials line
    for side, utts in (("enrol", trials.enrol), ("test", trials.test)):
        trial_indices(utts, list(wav_scp), trials_path, side, str(wav_path))
    start = time.perf_counter()
    keys, vectors, audio_seconds = embed_utterances(wav_scp, trials.utts(), encoder)
    embed_seconds = time.perf_counter() - start
    scores = score_trial_list(CosineBackend(None), trials, trials_path, (keys, vectors), (keys, vectors),
                              str(wav_path), str(wav_path))
    info = {"backend": "cosine", "trial_set": data_dir.resolve().name, "peer": peer,
            "representation": f"{peer} pretrained encoder", "trials": str(trials_path), "wav_scp": str(wav_path),
            "num_utts": len(keys), "embedding_dim": int(vectors.shape[1]), "audio_seconds": round(audio_seconds, 3),
            "embed_seconds": round(embed_seconds, 3), "x_real_time": round(audio_seconds / max(embed_seconds, 1e-9), 2)}
    return write_scoring_outputs(out_dir, trials, scores, info,
                                 title=f"{info['trial_set']}: {peer} (pretrained peer), cosine")


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", choices=sorted(PEERS), default="resemblyzer", help="the pretrained encoder")
    p.add_argument("--device", default="cpu", help="torch device the peer runs on (cpu, cuda, cuda:1)")
    p.add_argument("data_dir", help="data directory with wav.scp and trials")
    p.add_argument("out_dir", help="scoring directory to write (EXP/<system>/scores_<set> for the results table)")
    args = p.parse_args(argv)
    start = time.perf_counter()
    encoder = PEERS[args.peer](args.device)
    load_seconds = time.perf_counter() - start
    out = Path(args.out_dir)
    with lock_output_dirs(out), regenerating(*(out / n for n in OUTPUT_FILES)):
        metrics = score_with_peer(Path(args.data_dir), out, args.peer, encoder)
    total = time.perf_counter() - start
    print(f"{args.peer} on {metrics['trial_set']}: {results_line(metrics)}")
    print(f"{metrics['num_utts']} utterances, {metrics['audio_seconds']:.1f} s of audio embedded in "
          f"{metrics['embed_seconds']:.1f} s ({metrics['x_real_time']:.1f} x real time); "
          f"model loaded in {load_seconds:.1f} s; {total:.1f} s elapsed in all")
    return 0


if __name__ == "__main__":
    run_main(main)
