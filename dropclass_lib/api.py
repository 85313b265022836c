"""Using a trained system from Python: ``load_model(package)`` and its ``embed``/``score``.

A *model package* is the directory a recipe leaves per trained system (``exp/X/seed1/``):
``final.pt`` (:mod:`dropclass_lib.model_io`), ``frontend.yaml`` (the front end the model was
trained with: ``feats``, the training data's feature settings; ``vad``, the energy-VAD
options; ``cmn_window``, the sliding-CMN window; written by ``steps/make_model_package.py``) and,
optionally, ``plda/plda.npz`` (``steps/train_plda.py``).

The audio goes through the recipe's own stages, by the same functions:
:class:`~dropclass_lib.features.FeatureExtractor` with the recorded settings
(``steps/make_features.py``), Kaldi's energy VAD (``steps/compute_vad.py``), sliding CMN and
voiced-frame selection (``steps/prepare_feats_for_egs.py``), then
:func:`~dropclass_lib.embeddings.embed_utterances` with ``steps/extract_embeddings.py``'s
defaults. The one thing the recipe has that a bare waveform lacks is its utterance id, which
seeds the dither noise; ``utt_id`` gives one (with ``dither: 0`` it does not matter).

Audio at another sampling rate than the model's is resampled with
``scipy.signal.resample_poly`` (polyphase FIR, Kaiser window, ``up/down`` reduced by their
gcd), the usual choice for offline audio: linear phase, no wrap-around as with FFT resampling.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np
import torch

from dropclass_lib.audio import read_audio
from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.scoring import ScoringSpace, pair_scores
from dropclass_lib.cmn import select_voiced_frames, sliding_window_cmn
from dropclass_lib.config import from_dict
from dropclass_lib.embeddings import embed_utterances
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.features import CONFIG_TYPES, FeatConfig, FeatureExtractor, config_record, fft_size_of
from dropclass_lib.model_io import TrainedModel, extractor_input_dim
from dropclass_lib.model_io import load_model as load_model_file
from dropclass_lib.package import FRONTEND_FILE, open_package
from dropclass_lib.vad import VadConfig, energy_vad, frame_log_energy

Audio = Union[str, os.PathLike, np.ndarray]


@dataclass
class Frontend:
    """The front end a model was trained with, as ``frontend.yaml`` records it."""

    feats: FeatConfig
    vad: VadConfig
    cmn_window: int
    energy_source: str   # c0 or log_mel_sum, with the VAD's ``auto`` resolved as compute_vad.py does
    fft_size: int


def frontend_settings(record: dict, path: str | os.PathLike) -> Frontend:
    """The front end of a package's ``frontend.yaml`` record (read by
    :func:`~dropclass_lib.package.open_package`); a bad value is an error naming ``path``."""
    for key in ("feats", "vad"):
        if not isinstance(record.get(key), dict):
            raise InputFileError(path, None, f"no {key} section (a mapping) in the front-end record")
    feats = dict(record["feats"])
    feat_type = feats.get("feat_type", "mfcc")
    if feat_type not in CONFIG_TYPES:
        raise InputFileError(path, None, f"feats.feat_type must be one of {sorted(CONFIG_TYPES)}, got {feat_type!r}")
    feat_cfg = from_dict(CONFIG_TYPES[feat_type], feats, f"{path} (feats)")
    vad_cfg = from_dict(VadConfig, record["vad"], f"{path} (vad)")
    cmn_window = record["cmn_window"]
    if not isinstance(cmn_window, int) or isinstance(cmn_window, bool) or cmn_window < 1:
        raise InputFileError(path, None, f"cmn_window must be a positive integer, got {cmn_window!r}")
    # compute_vad.py resolves ``auto`` from the data dir's feats_config.yaml, which is this record.
    source = vad_cfg.energy_source
    if source == "auto":
        plain_fbank = feat_cfg.feat_type == "fbank" and not feat_cfg.use_energy
        source = "log_mel_sum" if plain_fbank else "c0"
    return Frontend(feat_cfg, vad_cfg, cmn_window, source, fft_size_of(config_record(feat_cfg)))


class SpeakerModel:
    """A trained system ready to embed audio and score pairs (see the module docstring).

    ``extractor`` is the torch module: features ``(batch, frames, feat_dim)`` to embeddings
    ``(batch, emb_dim)``; ``frontend`` the settings it expects its features computed with;
    ``backend`` the scoring back-end (PLDA when the package has ``plda/plda.npz``, else cosine);
    ``model`` the :class:`~dropclass_lib.model_io.TrainedModel` (head, class names, training
    configuration).
    """

    def __init__(self, model: TrainedModel, frontend: Frontend, backend, device: torch.device, source: str):
        self.model = model
        self.extractor = model.extractor
        self.frontend = frontend
        self.backend = backend
        self.device = device
        self.sample_rate = frontend.feats.sample_frequency
        self._features = FeatureExtractor(frontend.feats)
        dim = extractor_input_dim(model.extractor)
        if dim is not None and dim != self._features.dim:
            raise UserError(f"{source}: the extractor takes {dim}-dimensional features but {FRONTEND_FILE} describes "
                            f"{self._features.dim}-dimensional ones: the package mixes two systems")

    # ------------------------------------------------------------------ audio
    def _samples(self, audio: Audio, sample_rate: int | None) -> np.ndarray:
        """Mono float32 samples in [-1, 1] at the model's rate."""
        if isinstance(audio, (str, os.PathLike)):
            if sample_rate is not None:
                raise UserError(f"{audio}: sample_rate is given for an audio file; the file's own rate is used")
            samples, rate = read_audio(os.fspath(audio), channel=self.frontend.feats.channel)
        else:
            samples = np.asarray(audio)
            if samples.ndim != 1:
                raise UserError(f"audio array of shape {samples.shape}: expected a 1-D array of samples (mono)")
            if sample_rate is None:
                raise UserError("an audio array needs its sample_rate")
            if not np.issubdtype(samples.dtype, np.floating):
                raise UserError(f"audio array of dtype {samples.dtype}: expected float samples in [-1, 1]")
            rate = int(sample_rate)
        if rate != self.sample_rate:
            from scipy.signal import resample_poly

            g = math.gcd(rate, self.sample_rate)
            samples = resample_poly(samples.astype(np.float64), self.sample_rate // g, rate // g)
        return np.asarray(samples, dtype=np.float32)

    def features(self, audio: Audio, sample_rate: int | None = None, utt_id: str | None = None) -> np.ndarray:
        """The extractor's input for ``audio``: features, sliding CMN, voiced frames only."""
        samples = self._samples(audio, sample_rate)
        name = self._name(audio, utt_id)
        if self._features.num_frames(len(samples)) == 0:
            raise UserError(f"{name}: too short for one frame ({len(samples)} samples at {self.sample_rate} Hz)")
        feats = self._features(samples, "" if utt_id is None else utt_id)
        fe = self.frontend
        vad = energy_vad(frame_log_energy(feats, fe.energy_source, fe.fft_size), fe.vad)
        voiced = select_voiced_frames(sliding_window_cmn(feats, fe.cmn_window), vad, name)
        if voiced.shape[0] == 0:
            raise UserError(f"{name}: no voiced frame (energy VAD), so no embedding: silent or very quiet audio?")
        return voiced

    @staticmethod
    def _name(audio: Audio, utt_id: str | None) -> str:
        if isinstance(audio, (str, os.PathLike)):
            return os.fspath(audio)
        return f"utterance {utt_id!r}" if utt_id else "audio array"

    # ------------------------------------------------------------- embedding
    def embed(self, audio: Audio, sample_rate: int | None = None, utt_id: str | None = None) -> np.ndarray:
        """Embedding (float32, ``(emb_dim,)``) of one utterance: a file path (its own rate) or a
        1-D float array with ``sample_rate``. ``utt_id`` seeds the dither as the recipe does
        (default: the empty id)."""
        return self.embed_batch([audio], sample_rate, [utt_id])[0]

    def embed_batch(self, audios: Sequence[Audio], sample_rate: int | None = None,
                    utt_ids: Sequence[str | None] | None = None) -> np.ndarray:
        """Embeddings ``(len(audios), emb_dim)`` of several utterances; ``sample_rate`` applies to
        the arrays among them; equal-length inputs share a forward pass."""
        audios = list(audios)
        if not audios:
            raise UserError("embed_batch: no audio given")
        utt_ids = list(utt_ids) if utt_ids is not None else [None] * len(audios)
        if len(utt_ids) != len(audios):
            raise UserError(f"embed_batch: {len(utt_ids)} utterance ids for {len(audios)} inputs")

        def feats() -> Iterable[tuple[str, np.ndarray]]:
            for i, (audio, utt) in enumerate(zip(audios, utt_ids)):
                rate = None if isinstance(audio, (str, os.PathLike)) else sample_rate
                yield str(i), self.features(audio, rate, utt)

        return np.stack([e for _, e in embed_utterances(self.extractor, feats(), device=self.device)])

    # --------------------------------------------------------------- scoring
    def _space(self, x: Audio | np.ndarray) -> ScoringSpace:
        """One side of a pair in the back-end's scoring space: an embedding, or a file embedded."""
        if isinstance(x, np.ndarray):
            if x.shape != (self.extractor.emb_dim,):
                raise UserError(f"score() takes embeddings of shape ({self.extractor.emb_dim},) or audio file paths, "
                                f"got an array of shape {x.shape} (for an audio array call embed(array, sample_rate) first)")
            emb = x
        else:
            emb = self.embed(x)
        return self.backend.transform(np.asarray(emb, dtype=np.float64)[None])

    def score(self, a: Audio | np.ndarray, b: Audio | np.ndarray) -> float:
        """Score of the pair: PLDA log-likelihood ratio when the package has a PLDA back-end,
        else the cosine similarity. ``a``/``b``: embeddings (from :meth:`embed`) or audio files.

        The back-ends that need a whole trial list (the test set's mean for ``cosine_dm`` and
        ``plda_dm``, AS-norm's cohort ranking, the ``fused`` back-end built on them), which the
        package's ``scoring.yaml`` may name as its default, are those of
        ``steps/score_corpus.py``; a single pair has no set to take them from."""
        zero = np.zeros(1, dtype=np.int64)
        return float(pair_scores(self._space(a), self._space(b), zero, zero)[0])


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> SpeakerModel:
    """The model package at ``path`` (a directory, or the ``final.pt`` in one, beside its
    ``frontend.yaml``), on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    package = open_package(path)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {device}: CUDA is not available on this machine")
    frontend = frontend_settings(package.frontend, package.root / FRONTEND_FILE)
    model = load_model_file(package.model, map_location=device)
    backend = PldaBackend.load(package.plda) if package.plda is not None else CosineBackend()
    return SpeakerModel(model, frontend, backend, device, str(package.model))
