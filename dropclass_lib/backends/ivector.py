"""I-vectors: a total-variability model on a universal background model, trained without speaker
labels, with LDA + PLDA on top: the generative second representation beside the x-vector.

Why a recipe of neural embeddings carries one: an x-vector extractor learns what separates its
training speakers, and with the few hundred speakers a small corpus offers it learns their
corpora too; the UBM and the total-variability matrix learn the cepstral space of any speech
without labels, and only the small LDA + PLDA on top sees speaker labels. On the real-speech
recipe's held-out corpora the i-vectors alone are better than its x-vectors, and their fusion is
better than either (egs/realspeech/RESULTS.md).

The model, as in Dehak et al. (2011) and Kaldi's ``ivector-extractor``, with two simplifications
for CPU cost: a diagonal-covariance UBM (Kaldi's final UBM is full-covariance) and no prior offset
(the i-vector prior is centred on the UBM; its covariance is kept at I by the minimum-divergence
step, as Kaldi does).

* Frames (``IvectorConfig``): Kaldi's liftered cepstra of the raw features (the DCT of log-mel
  filterbanks, or MFCCs as they are), ``add-deltas`` (``delta_order``, ``delta_window``), sliding
  CMN (``cmn_window`` frames; 0 = none) and voiced frames only (``use_vad``). With CMN and VAD
  this is the front end of Kaldi's i-vector recipes; without them (``ivector_raw``) the
  i-vector models the whole recording, the speaker's long-term spectrum with their session's
  channel, as :mod:`dropclass_lib.backends.utterance_stats` does with one Gaussian.
* UBM: a ``num_gauss``-component diagonal GMM fitted by scikit-learn's ``GaussianMixture`` (k-means++
  seeding, ``ubm_iters`` EM iterations) on ``ubm_frames`` frames drawn at random from the training data.
* Statistics of an utterance of frames x_t with UBM posteriors g_tc: ``N_c = sum_t g_tc`` and the
  centred, whitened first order ``F_c = sum_t g_tc (x_t - m_c) / s_c``.
* I-vector: the posterior mean of w in ``F_c ~ N_c T_c w``, w ~ N(0, I):
  ``L = I + sum_c N_c T_c' T_c``, ``w = L^-1 T' F``.
* Training of T (``num_iters`` EM iterations from a seeded random start):
  ``T_c = (sum_u F_uc E[w_u]') (sum_u N_uc E[w_u w_u'])^-1`` with ``E[w w'] = L^-1 + w w'``, each
  followed by the minimum-divergence step ``T <- T chol(mean_u E[w_u w_u'])``.
* Back-end: LDA (``lda_dim``, capped at speakers - 1) + length norm + PLDA
  (:class:`~dropclass_lib.backends.plda.PldaBackend`) trained on the training utterances'
  i-vectors; scored after the *scored set's own mean*, as ``plda_dm`` scores x-vectors.

An i-vector system is a directory: ``extractor.npz`` (settings, UBM, T) and ``plda.npz``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dropclass_lib import provenance
from dropclass_lib.atomic import atomic_path, place_file
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.utterance_stats import Cepstra, feats_kind
from dropclass_lib.cmn import select_voiced_frames, sliding_window_cmn
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import read_kv
from dropclass_lib.vector_io import iter_scp, write_vectors

log = logging.getLogger(__name__)

EXTRACTOR_FILE = "extractor.npz"
PLDA_FILE = "plda.npz"
SYSTEM_FILES = (EXTRACTOR_FILE, PLDA_FILE)
"""What an i-vector system directory holds."""
IVECTOR_NAME = "ivector"
"""``OUT/ivector.scp`` + ``ivector.ark``: the i-vectors of a data directory."""
_CHUNK = 256
"""Utterances whose precision matrices are formed at once (memory: CHUNK x dim^2 doubles)."""


@dataclass
class IvectorConfig:
    """An i-vector system's settings (``conf/ivector.yaml``; see the module docstring)."""

    num_gauss: int = 256
    ivector_dim: int = 200
    num_ceps: int = 20
    cepstral_lifter: float = 22.0
    delta_order: int = 2
    delta_window: int = 2
    cmn_window: int = 300
    use_vad: bool = True
    ubm_frames: int = 200000
    ubm_iters: int = 20
    num_iters: int = 5
    lda_dim: int = 150
    plda_em_iters: int = 10
    seed: int = 0

    def validate(self) -> None:
        for name in ("num_gauss", "ivector_dim", "num_ceps", "delta_window", "ubm_frames", "ubm_iters",
                     "num_iters", "lda_dim", "plda_em_iters"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.delta_order < 0 or self.cmn_window < 0 or self.cepstral_lifter < 0:
            raise UserError("delta_order, cmn_window and cepstral_lifter must not be negative")


def delta_scales(order: int, window: int) -> list[np.ndarray]:
    """Kaldi's ``DeltaFeatures`` filters: ``scales[0] = [1]``, each next one the previous one
    convolved with ``[-window..window] / sum(j^2)``."""
    scales = [np.ones(1)]
    ramp = np.arange(-window, window + 1, dtype=np.float64)
    for _ in range(order):
        scales.append(np.convolve(ramp, scales[-1]) / float((ramp ** 2).sum()))
    return scales


def add_deltas(x: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Kaldi's ``add-deltas``: the features followed by their 1st..``order``-th deltas; frames
    beyond either end repeat the first or last frame."""
    x = np.asarray(x, dtype=np.float64)
    blocks = []
    for scale in delta_scales(order, window):
        half = (scale.size - 1) // 2
        padded = np.concatenate([np.repeat(x[:1], half, axis=0), x, np.repeat(x[-1:], half, axis=0)])
        out = np.zeros_like(x)
        for j, s in enumerate(scale):
            if s != 0.0:
                out += s * padded[j:j + x.shape[0]]
        blocks.append(out)
    return np.concatenate(blocks, axis=1)


class FrameFeatures:
    """Maps an utterance's raw features (and VAD decisions) to the i-vector frames."""

    def __init__(self, feat_type: str, config: IvectorConfig):
        self.config = config
        self.cepstra = Cepstra(feat_type, config.num_ceps, config.cepstral_lifter)

    def __call__(self, feats: np.ndarray, vad: np.ndarray | None, utt: str = "") -> np.ndarray:
        cfg = self.config
        x = add_deltas(self.cepstra(feats), cfg.delta_order, cfg.delta_window)
        if cfg.cmn_window:
            x = sliding_window_cmn(x, cfg.cmn_window)
        if cfg.use_vad:
            x = select_voiced_frames(x, vad, utt)
        return np.asarray(x, dtype=np.float64)


@dataclass
class DiagUbm:
    weights: np.ndarray    # (C,)
    means: np.ndarray      # (C, D)
    variances: np.ndarray  # (C, D)

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """``(T, C)`` component posteriors of the frames ``x`` (T, D)."""
        precision = 1.0 / self.variances
        const = (np.log(self.weights) - 0.5 * np.log(2 * np.pi * self.variances).sum(axis=1)
                 - 0.5 * (self.means ** 2 * precision).sum(axis=1))
        loglike = const + x @ (self.means * precision).T - 0.5 * (x ** 2) @ precision.T
        loglike -= loglike.max(axis=1, keepdims=True)
        post = np.exp(loglike)
        post /= post.sum(axis=1, keepdims=True)
        return post


def train_ubm(frames: np.ndarray, config: IvectorConfig) -> DiagUbm:
    """The diagonal UBM fitted to ``frames`` (already sampled) with scikit-learn."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    if frames.shape[0] < config.num_gauss:
        raise UserError(f"the UBM needs at least num_gauss = {config.num_gauss} frames, the data have {frames.shape[0]}")
    # k-means++ seeding, not a full k-means: a quarter of the time on 200,000 frames, and EM follows
    gmm = GaussianMixture(config.num_gauss, covariance_type="diag", max_iter=config.ubm_iters, reg_covar=1e-3,
                          init_params="k-means++", random_state=config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(frames)
    if not gmm.converged_:
        log.info("UBM: EM stopped at ubm_iters = %d before its tolerance (%g)", config.ubm_iters, gmm.tol)
    return DiagUbm(gmm.weights_.astype(np.float64), gmm.means_.astype(np.float64),
                   gmm.covariances_.astype(np.float64))


@dataclass
class IvectorExtractor:
    config: IvectorConfig
    feat_type: str
    ubm: DiagUbm
    matrix: np.ndarray  # T: (C * D, R), in the space whitened by the UBM's variances

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def statistics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N (C,), F (C * D,))``: zeroth- and centred, whitened first-order statistics of ``x``."""
        post = self.ubm.posteriors(x)
        n = post.sum(axis=0)
        f = (post.T @ x - n[:, None] * self.ubm.means) / np.sqrt(self.ubm.variances)
        return n, f.reshape(-1)

    def _component_products(self) -> np.ndarray:
        """``(C, R * R)``: T_c' T_c of every component, flattened."""
        num_gauss = self.ubm.weights.size
        t = self.matrix.reshape(num_gauss, -1, self.dim)
        return np.einsum("cdr,cds->crs", t, t).reshape(num_gauss, -1)

    def _posteriors(self, n: np.ndarray, f: np.ndarray, products: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(means (U, R), covariances (U, R, R))`` of w for utterances with statistics ``n``, ``f``."""
        precision = (n @ products).reshape(-1, self.dim, self.dim) + np.eye(self.dim)
        covariance = np.linalg.inv(precision)
        mean = np.einsum("urs,us->ur", covariance, np.asarray(f, dtype=np.float64) @ self.matrix)
        return mean, covariance

    def extract(self, n: np.ndarray, f: np.ndarray) -> np.ndarray:
        """I-vectors (U, R) of utterances with statistics ``n`` (U, C), ``f`` (U, C * D)."""
        products = self._component_products()
        return np.concatenate([self._posteriors(n[i:i + _CHUNK], f[i:i + _CHUNK], products)[0]
                               for i in range(0, len(n), _CHUNK)])

    def em_iteration(self, n: np.ndarray, f: np.ndarray) -> None:
        """One EM re-estimation of T from the utterances' statistics, then the minimum-divergence
        step: T is multiplied by the Cholesky factor of the i-vectors' mean second moment, so that
        the prior N(0, I) stays true of them (without it EM only slowly grows T from its start)."""
        num_gauss, dim = self.ubm.weights.size, self.dim
        products = self._component_products()
        a = np.zeros((num_gauss, dim * dim))
        c = np.zeros((self.matrix.shape[0], dim))
        moment = np.zeros(dim * dim)
        for i in range(0, len(n), _CHUNK):
            mean, cov = self._posteriors(n[i:i + _CHUNK], f[i:i + _CHUNK], products)
            second = (cov + mean[:, :, None] * mean[:, None, :]).reshape(len(mean), -1)
            a += n[i:i + _CHUNK].T @ second
            c += np.asarray(f[i:i + _CHUNK], dtype=np.float64).T @ mean
            moment += second.sum(axis=0)
        a = a.reshape(num_gauss, dim, dim)
        c = c.reshape(num_gauss, -1, dim)
        matrix = np.concatenate([np.linalg.solve(a[g], c[g].T).T for g in range(num_gauss)])
        self.matrix = matrix @ np.linalg.cholesky(moment.reshape(dim, dim) / len(n))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, config=json.dumps(dataclasses.asdict(self.config)), feat_type=self.feat_type,
                         weights=self.ubm.weights, means=self.ubm.means, variances=self.ubm.variances,
                         matrix=self.matrix.astype(np.float32))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "IvectorExtractor":
        from dropclass_lib.config import from_dict

        try:
            with np.load(path) as z:
                config = from_dict(IvectorConfig, json.loads(str(z["config"])), str(path))
                ubm = DiagUbm(z["weights"], z["means"], z["variances"])
                extractor = cls(config, str(z["feat_type"]), ubm, z["matrix"].astype(np.float64))
        except FileNotFoundError:
            raise UserError(f"i-vector extractor {path} does not exist (train one with steps/train_ivector.py)") from None
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"{path}: not an i-vector extractor written by steps/train_ivector.py ({err})") from None
        num_gauss, feat_dim = ubm.means.shape
        if extractor.matrix.shape[0] != num_gauss * feat_dim:
            raise UserError(f"{path}: its matrix has {extractor.matrix.shape[0]} rows, its UBM {num_gauss} x {feat_dim}")
        return extractor


def _utterance_frames(data: Path, config: IvectorConfig, keys: set[str] | None = None
                      ) -> Iterator[tuple[str, np.ndarray]]:
    """``(utt, i-vector frames)`` of the raw features of ``data`` (only ``keys`` if given); an
    utterance without a voiced frame is skipped with a warning."""
    frames_of = FrameFeatures(feats_kind(data), config)
    vad = None
    if config.use_vad:
        vad_scp = data / "vad.scp"
        if not vad_scp.is_file():
            raise UserError(f"{vad_scp} does not exist: the i-vectors' voiced frames need steps/compute_vad.py")
        vad = {utt: v for _, utt, v, _ in iter_scp(vad_scp, keys)}
    for lineno, utt, feats, line in iter_scp(data / "feats.scp", keys):
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise InputFileError(data / "feats.scp", lineno, f"features of {utt!r} have shape {feats.shape}", line)
        if vad is not None and utt not in vad:
            raise InputFileError(data / "vad.scp", None, f"no entry for {utt!r} of feats.scp")
        x = frames_of(feats, None if vad is None else vad[utt], utt)
        if x.shape[0] == 0:
            log.warning("%s: %s has no voiced frame: no i-vector", data, utt)
            continue
        yield utt, x


def _system_inputs(data_dirs: list[Path], config: IvectorConfig, labelled: bool = True) -> list[Path]:
    """The input files of a system trained on (``labelled``: with utt2spk) or applied to ``data_dirs``."""
    names = ("feats.scp", "feats_config.yaml", *(("utt2spk",) if labelled else ()),
             *(("vad.scp",) if config.use_vad else ()))
    inputs = []
    for data in data_dirs:
        inputs += provenance.data_inputs(data, *names)
        if config.use_vad:
            inputs += provenance.scp_archives(data / "vad.scp")
    return inputs


def train_system(data_dirs: list[str | os.PathLike], out_dir: str | os.PathLike, config: IvectorConfig) -> Path:
    """Train an i-vector system on the raw features of ``data_dirs`` (UBM and T on every
    utterance, LDA + PLDA on their i-vectors with utt2spk's speakers) into ``out_dir``; kept as it
    is when its inputs and settings are unchanged. Returns ``out_dir``."""
    dirs, out = [Path(d) for d in data_dirs], Path(out_dir)
    kinds = {feats_kind(d) for d in dirs}
    if len(kinds) != 1:
        raise UserError(f"the training data dirs hold different kinds of features ({', '.join(sorted(kinds))})")
    settings = dataclasses.asdict(config)
    with provenance.stage(out, settings, _system_inputs(dirs, config), outputs=SYSTEM_FILES,
                          what=f"i-vector system {out}") as st:
        if st.fresh:
            return out
        start = time.time()
        keys, frames, labels = [], [], []
        for data in dirs:
            utt2spk = read_kv(data / "utt2spk")
            for utt, x in _utterance_frames(data, config):
                if utt not in utt2spk:
                    raise InputFileError(data / "feats.scp", None, f"utterance {utt!r} is not in utt2spk")
                keys.append(utt)
                frames.append(x.astype(np.float32))
                labels.append(utt2spk[utt])
        if not keys:
            raise UserError(f"no utterance of {', '.join(map(str, dirs))} has frames for an i-vector")
        rng = np.random.default_rng(config.seed)
        starts = np.cumsum([0] + [len(x) for x in frames])
        total = int(starts[-1])
        pick = np.sort(rng.choice(total, min(config.ubm_frames, total), replace=False))
        owner = np.searchsorted(starts, pick, side="right") - 1
        sample = np.stack([frames[u][i] for u, i in zip(owner, pick - starts[owner])]).astype(np.float64)
        log.info("%d utterances, %d frames of dimension %d; UBM of %d Gaussians on %d of them",
                 len(keys), total, sample.shape[1], config.num_gauss, len(sample))
        ubm = train_ubm(sample, config)
        del sample
        feat_dim = ubm.means.shape[1]
        matrix = rng.standard_normal((config.num_gauss * feat_dim, config.ivector_dim)) * 0.1
        extractor = IvectorExtractor(config, kinds.pop(), ubm, matrix)
        stats = [extractor.statistics(x.astype(np.float64)) for x in frames]
        del frames
        n = np.stack([s[0] for s in stats])
        f = np.stack([s[1] for s in stats]).astype(np.float32)
        del stats
        log.info("UBM and statistics in %.0f s", time.time() - start)
        for it in range(config.num_iters):
            extractor.em_iteration(n, f)
            log.info("total-variability EM iteration %d of %d done (%.0f s)", it + 1, config.num_iters,
                     time.time() - start)
        ivectors = extractor.extract(n, f)
        num_spk = len(set(labels))
        if num_spk < 2:
            raise UserError(f"the i-vector PLDA needs at least 2 training speakers, {', '.join(map(str, dirs))} have {num_spk}")
        lda_dim = min(config.lda_dim, num_spk - 1, config.ivector_dim)
        if lda_dim < config.lda_dim:
            log.warning("i-vector LDA dimension %d capped at %d (%d speakers)", config.lda_dim, lda_dim, num_spk)
        plda = PldaBackend.train(ivectors, labels, lda_dim=lda_dim, num_em_iters=config.plda_em_iters)
        out.mkdir(parents=True, exist_ok=True)
        extractor.save(out / EXTRACTOR_FILE)
        plda.save(out / PLDA_FILE)
        log.info("i-vector system trained in %.0f s -> %s", time.time() - start, out)
    return out


def system_files(system_dir: str | os.PathLike) -> list[Path]:
    """The files of the i-vector system ``system_dir``."""
    return [Path(system_dir) / name for name in SYSTEM_FILES]


def place_system(system_dir: str | os.PathLike, dest_dir: str | os.PathLike) -> None:
    """Make ``dest_dir`` hold the i-vector system ``system_dir``: its files hard-linked where the
    file system allows, else copied (:func:`~dropclass_lib.atomic.place_file`)."""
    for path in system_files(system_dir):
        if not path.is_file():
            raise UserError(f"{path} does not exist: train the system with steps/train_ivector.py")
        place_file(path, Path(dest_dir) / path.name)


def load_system(system_dir: str | os.PathLike) -> tuple[IvectorExtractor, PldaBackend]:
    system_dir = Path(system_dir)
    return IvectorExtractor.load(system_dir / EXTRACTOR_FILE), PldaBackend.load(system_dir / PLDA_FILE)


def ivectors_data_dir(system_dir: str | os.PathLike, raw_data: str | os.PathLike, out_dir: str | os.PathLike,
                      keys: set[str] | None = None) -> Path:
    """I-vectors of the utterances of ``raw_data`` (only ``keys`` if given; the features before
    VAD and CMN, with vad.scp when the system uses it) into ``out_dir/ivector.scp``; returns it."""
    system, data, out = Path(system_dir), Path(raw_data), Path(out_dir)
    extractor = IvectorExtractor.load(system / EXTRACTOR_FILE)
    digest = None if keys is None else hashlib.sha1("\n".join(sorted(keys)).encode()).hexdigest()
    inputs = [system / EXTRACTOR_FILE, *_system_inputs([data], extractor.config, labelled=False)]
    with provenance.stage(out, {"keys_sha1": digest}, inputs, outputs=(f"{IVECTOR_NAME}.scp",),
                          what=f"i-vectors {out}") as st:
        if not st.fresh:
            if feats_kind(data) != extractor.feat_type:
                raise UserError(f"{data} holds {feats_kind(data)} features, the i-vector extractor "
                                f"{system / EXTRACTOR_FILE} was trained on {extractor.feat_type}")
            names, n, f = [], [], []
            for utt, x in _utterance_frames(data, extractor.config, keys):
                stats = extractor.statistics(x)
                names.append(utt)
                n.append(stats[0])
                f.append(stats[1])
            if not names:
                raise UserError(f"{data / 'feats.scp'}: none of the wanted utterances has frames for an i-vector")
            out.mkdir(parents=True, exist_ok=True)
            write_vectors(out, IVECTOR_NAME, names, extractor.extract(np.stack(n), np.stack(f)))
    return out / f"{IVECTOR_NAME}.scp"
