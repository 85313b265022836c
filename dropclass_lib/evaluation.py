"""The evaluation chain every recipe and steps/score_corpus.py share: a model package's embeddings of
a data directory, then the trial scores and metrics of each back-end.

Back-ends (``BACKENDS``):

* ``cosine``: cosine similarity after subtracting the training-set mean (the package's cohort.npz);
* ``cosine_dm``: cosine after subtracting the *domain mean*, the mean embedding of the scored data
  directory itself: unsupervised re-centring on the target corpus (no labels are used), the
  cheapest cure for a corpus the model has never heard;
* ``cosine_dm_asnorm``: ``cosine_dm`` followed by adaptive symmetric score normalisation
  (AS-norm) against the training speakers' mean embeddings, the top ``asnorm_top_n`` per side;
* ``plda``: Kaldi's LDA + length norm + two-covariance PLDA, centred on the training mean;
* ``plda_dm``: the same PLDA, centred on the domain mean instead (Kaldi's in-domain mean
  re-centring, as in its SRE16 recipe);
* ``stats``: no model at all: cosine between the utterances' cepstral statistics over all frames
  (:mod:`dropclass_lib.backends.utterance_stats`), after their domain mean;
* ``ivector``, ``ivector_raw``: the package's i-vector systems (:mod:`dropclass_lib.backends.ivector`),
  LDA + PLDA centred on the domain mean of the i-vectors; ``ivector`` with Kaldi's front end
  (CMN, voiced frames), ``ivector_raw`` on the whole recording;
* ``fused``: the package's fusion (fusion.yaml, steps/train_fusion.py) of any of the above: a
  weighted sum of their scores, in log-likelihood ratios.

``stats``, the i-vector back-ends and ``fused`` (``RAW_FEATURE_BACKENDS``) need the raw features
(before VAD and CMN) of the scored utterances: :func:`raw_feature_vectors` makes their vectors.

Each result directory ``OUT/scores_<set>_<backend>`` holds what steps/score_trials.py writes
(scores, metrics.json, RESULTS, det.png, hist.png) and follows the freshness rule of
:mod:`dropclass_lib.provenance`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from dropclass_lib import provenance
from dropclass_lib.backends.cosine import CosineBackend
from dropclass_lib.backends.ivector import PLDA_FILE as IVECTOR_PLDA_FILE, ivectors_data_dir, system_files
from dropclass_lib.backends.plda import PldaBackend
from dropclass_lib.backends.trial_scoring import score_trial_list, write_scoring_outputs
from dropclass_lib.backends.utterance_stats import stats_data_dir
from dropclass_lib.embeddings import DEFAULT_MAX_BATCH_FRAMES, embed_utterances, speaker_means
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.package import IVECTOR_SLOTS, ModelPackage
from dropclass_lib.parallel import ArkJob, Dispatch, Progress, remove_ark_jobs, run_ark_jobs, split_contiguous
from dropclass_lib.tables import read_kv, write_table
from dropclass_lib.trials import read_trials
from dropclass_lib.vector_io import iter_scp, read_vectors, write_vectors

log = logging.getLogger("evaluation")

BACKENDS = ("cosine", "cosine_dm", "cosine_dm_asnorm", "plda", "plda_dm", "stats", *IVECTOR_SLOTS, "fused")
RAW_FEATURE_BACKENDS = ("stats", *IVECTOR_SLOTS, "fused")
"""The back-ends that score vectors made from the raw features (statistics, i-vectors)."""
EMBEDDINGS = "embeddings"
"""The vectors every other back-end scores: the package's extractor's."""
DEFAULT_ASNORM_TOP_N = 100
EMBEDDING_OUTPUTS = ("xvector.scp", "spk_xvector.scp", "num_utts.ark")


def read_feats(feats_scp: Path, utt2spk: dict[str, str], input_dim: int | None = None, model: str = "",
               keys: set[str] | None = None):
    """Yield ``(utt, matrix)`` from feats.scp (only ``keys`` if given); errors name the line.
    ``input_dim``: the feature dimension ``model`` takes (features of another kind, e.g. fbank
    for an MFCC model, are an error)."""
    for lineno, utt, mat, line in iter_scp(feats_scp, keys):
        if utt not in utt2spk:
            raise InputFileError(feats_scp, lineno, f"utterance {utt!r} is not in utt2spk", line)
        if mat.ndim != 2 or mat.shape[0] == 0:
            raise InputFileError(feats_scp, lineno, f"features of {utt!r} have shape {mat.shape}", line)
        if input_dim is not None and mat.shape[1] != input_dim:
            raise InputFileError(feats_scp, lineno, f"features of {utt!r} have {mat.shape[1]} dimensions, the model "
                                 f"{model} takes {input_dim}: compute the features the model was trained on "
                                 "(same kind and options)", line)
        yield utt, mat


def _embeddings(model_path, data: Path, device: str, keys: set[str] | None, **options):
    """``(utt, embedding)`` of the utterances of ``data`` (only ``keys`` if given), in feats.scp order."""
    from dropclass_lib.devices import resolve_device
    from dropclass_lib.model_io import extractor_input_dim, load_model

    device = resolve_device(device)
    model = load_model(model_path, map_location=device)
    feats = read_feats(data / "feats.scp", read_kv(data / "utt2spk"), extractor_input_dim(model.extractor),
                       str(model_path), keys)
    yield from embed_utterances(model.extractor, feats, device=device, **options)


@dataclasses.dataclass(frozen=True)
class _EmbeddingJob:
    """One job of :func:`_embedding_jobs`: the embeddings of its utterances; with several jobs,
    each on one CPU thread, as Kaldi's jobs."""

    model_path: str | os.PathLike
    data: Path
    device: str
    options: dict
    one_thread: bool

    def __call__(self, job: ArkJob, keys: Sequence[str], progress: Progress) -> None:
        import torch

        if self.one_thread:
            torch.set_num_threads(1)

        def items():
            for utt, emb in _embeddings(self.model_path, self.data, self.device, set(keys), **self.options):
                progress(1)
                yield utt, emb

        job.write(items(), write_num_frames=False)


def _embedding_jobs(model_path, data: Path, out: Path, device: str, nj: int, dispatch: Dispatch | None,
                    settings: dict, inputs: list, options: dict) -> list[ArkJob]:
    """The embeddings in ``nj`` jobs (``out/xvector_job.JOB.{ark,scp}``, logs in ``out/log``), run
    here or through ``dispatch``. With several jobs each uses one CPU thread, as Kaldi's jobs."""
    utts = list(read_kv(data / "feats.scp"))
    if not utts:
        raise UserError(f"{data / 'feats.scp'}: no utterances")
    chunks = split_contiguous(utts, nj)
    worker = _EmbeddingJob(model_path, data, device, options, one_thread=len(chunks) > 1)
    out.mkdir(parents=True, exist_ok=True)
    jobs, _ = run_ark_jobs(out / "xvector_job", chunks, worker, desc=f"embeddings {data.name}",
                           settings={**settings, "device": device}, inputs=inputs, dispatch=dispatch,
                           log_dir=out / "log")
    return jobs


def embed_data_dir(model_path: str | os.PathLike, data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   device: str = "cpu", chunk_frames: int = 10000, batch_size: int = 32,
                   min_frames: int | None = None, max_batch_frames: int | None = DEFAULT_MAX_BATCH_FRAMES,
                   nj: int = 1, dispatch: Dispatch | None = None) -> Path:
    """Embeddings of every utterance of ``data_dir`` (features as they are) into ``out_dir``:
    xvector.scp, spk_xvector.scp (speaker means) and num_utts.ark; returns xvector.scp.

    ``batch_size``, ``max_batch_frames``: :func:`dropclass_lib.embeddings.embed_utterances`.
    With ``nj`` > 1 or a job runner (``dispatch.cmd``) the utterances are embedded in ``nj`` jobs
    (:func:`dropclass_lib.parallel.run_ark_jobs`) whose archives are then gathered into the same
    outputs and removed; in a dispatched job (``dispatch.is_job``) only that job's archive is made.
    """
    data, out = Path(data_dir), Path(out_dir)
    if chunk_frames < 1 or batch_size < 1 or (max_batch_frames is not None and max_batch_frames < 1):
        raise UserError("--chunk-frames, --batch-size and --max-batch-frames must be positive")
    settings = {"chunk_frames": chunk_frames, "min_frames": min_frames}
    inputs = [model_path, *provenance.data_inputs(data, "feats.scp", "utt2spk")]
    options = dict(chunk_frames=chunk_frames, batch_size=batch_size, min_frames=min_frames,
                   max_batch_frames=max_batch_frames)
    in_jobs = nj > 1 or (dispatch is not None and (dispatch.cmd or dispatch.is_job))
    if dispatch is not None and dispatch.is_job:
        _embedding_jobs(model_path, data, out, device, nj, dispatch, settings, inputs, options)
        return out / "xvector.scp"
    with provenance.stage(out, settings, inputs, outputs=EMBEDDING_OUTPUTS, what=f"embeddings {out}") as st:
        if st.fresh:
            return out / "xvector.scp"
        start = time.time()
        if in_jobs:
            jobs = _embedding_jobs(model_path, data, out, device, nj, dispatch, settings, inputs, options)
            keys, embs = [], []
            for job in jobs:
                job_keys, job_embs = read_vectors(job.scp)
                keys += job_keys
                embs.append(job_embs)
            matrix = np.concatenate(embs)
        else:
            keys, rows = [], []
            for utt, emb in _embeddings(model_path, data, device, None, **options):
                keys.append(utt)
                rows.append(emb)
                if len(keys) % 1000 == 0:
                    log.info("%d utterances (%.1f s)", len(keys), time.time() - start)
            if not keys:
                raise UserError(f"{data / 'feats.scp'}: no utterances")
            matrix = np.stack(rows)
        out.mkdir(parents=True, exist_ok=True)
        for name in EMBEDDING_OUTPUTS:  # a crash half-way must not leave a mix of old and new files
            (out / name).unlink(missing_ok=True)
        write_vectors(out, "xvector", keys, matrix)
        if in_jobs:
            remove_ark_jobs(jobs)
        speakers, means, counts = speaker_means(keys, matrix, read_kv(data / "utt2spk"))
        write_vectors(out, "spk_xvector", speakers, means)
        write_table(out / "num_utts.ark", dict(zip(speakers, counts.tolist())))
        log.info("%d embeddings of dimension %d, %d speakers, in %.1f s%s -> %s", len(keys), matrix.shape[1],
                 len(speakers), time.time() - start, f" in {len(jobs)} jobs" if in_jobs else "", out)
    return out / "xvector.scp"


def parse_backends(names: str | Sequence[str]) -> list[str]:
    """A comma-separated (or listed) choice of back-ends, checked against ``BACKENDS``."""
    chosen = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    bad = [n for n in chosen if n not in BACKENDS]
    if bad or not chosen:
        raise UserError(f"unknown back-end(s) {', '.join(bad) or '(none given)'}; known: {', '.join(BACKENDS)}")
    return chosen


def parse_fusion_components(names: str) -> list[str]:
    """The back-ends a fusion is trained on: two or more distinct ones, ``fused`` not among them."""
    components = parse_backends(names)
    if "fused" in components or len(set(components)) != len(components) or len(components) < 2:
        raise UserError(f"fusion components {names}: two or more distinct back-ends, not 'fused'")
    return components


def backend_needs(package: ModelPackage, name: str) -> list[Path | None]:
    """The package files back-end ``name`` scores with (None where the package lacks one): PLDA
    back-ends need plda/, ``cosine`` and AS-norm cohort.npz, the i-vector back-ends their system,
    ``fused`` fusion.yaml and what its components need; ``cosine_dm`` and ``stats`` nothing beyond
    the model."""
    if name == "fused":
        if package.fusion is None:
            return [None]
        return [package.fusion, *(p for c in fusion_components(package) for p in backend_needs(package, c))]
    if name in IVECTOR_SLOTS:
        system = package.ivectors.get(name)
        return [None] if system is None else system_files(system)
    if name.startswith("plda"):
        return [package.plda]
    return [] if name in ("cosine_dm", "stats") else [package.cohort]


def fusion_components(package: ModelPackage) -> list[str]:
    """The back-ends the package's fusion.yaml fuses, checked to be back-ends it can fuse."""
    components = package.fusion_model().components
    unknown = [c for c in components if c not in BACKENDS or c == "fused"]
    if unknown:
        raise InputFileError(package.fusion, None, f"component(s) {', '.join(unknown)} are not back-ends "
                             f"it can fuse ({', '.join(b for b in BACKENDS if b != 'fused')})")
    return components


def vector_kinds(package: ModelPackage, name: str) -> list[str]:
    """The vectors back-end ``name`` scores: ``embeddings``, ``stats`` or an i-vector slot
    (for ``fused``: those of its components, in order)."""
    if name == "fused":
        kinds = [k for c in fusion_components(package) for k in vector_kinds(package, c)]
        return list(dict.fromkeys(kinds))
    return [name] if name in RAW_FEATURE_BACKENDS else [EMBEDDINGS]


def _missing(package: ModelPackage, name: str) -> str:
    """What the package lacks for ``name``, in words."""
    if name == "fused" and package.fusion is not None:
        return "; ".join(_missing(package, c) for c in fusion_components(package)
                         if None in backend_needs(package, c))
    if name in IVECTOR_SLOTS:
        return f"{name}/ (steps/make_model_package.py --{name.replace('_', '-')})"
    return {"fused": "fusion.yaml", "plda": "plda/", "plda_dm": "plda/"}.get(name, "cohort.npz")


def available_backends(package: ModelPackage, names: Iterable[str], with_raw: bool = False) -> list[str]:
    """Those of ``names`` the package can serve (:func:`backend_needs`); the
    ``RAW_FEATURE_BACKENDS`` only ``with_raw`` (the raw features are at hand)."""
    return [n for n in names if None not in backend_needs(package, n) and (with_raw or n not in RAW_FEATURE_BACKENDS)]


def choose_backends(package: ModelPackage, requested: str | None,
                    with_raw: bool = False) -> tuple[list[str], str | None]:
    """``(back-ends to score, the package's default)``: those of ``requested`` (comma-separated;
    default: all) that the package serves (``RAW_FEATURE_BACKENDS`` only ``with_raw``), the one its
    scoring.yaml names first; a requested one it cannot serve is skipped with a warning."""
    chosen = parse_backends(requested or ",".join(BACKENDS))
    usable = available_backends(package, chosen, with_raw)
    if requested:
        for name in chosen:
            if name not in usable:
                why = ("the raw features are not given" if name in RAW_FEATURE_BACKENDS and not with_raw
                       else f"the package has no {_missing(package, name)}")
                log.warning("%s: skipping back-end %s (%s)", package.root, name, why)
    if not usable:
        raise UserError(f"{package.root} serves none of the back-ends {', '.join(chosen)}: "
                        "complete it with steps/make_model_package.py")
    default = package.scoring.get("backend")
    if default is not None and default not in BACKENDS:
        raise InputFileError(package.root / "scoring.yaml", None,
                             f"backend {default!r} is not one of {', '.join(BACKENDS)}")
    if default in usable:
        usable.remove(default)
        usable.insert(0, default)
    elif default is not None:
        log.warning("%s: the package's default back-end %s is not scored here", package.root, default)
    return usable, default


def raw_feature_vectors(package: ModelPackage, backends: Sequence[str], raw_data: str | os.PathLike,
                        out_root: str | os.PathLike, set_name: str, keys: set[str]) -> dict[str, Path]:
    """The statistics and i-vectors that ``backends`` score, of the utterances ``keys`` of the
    raw-feature data dir ``raw_data``: ``{kind: scp}``, made under ``out_root/<kind>_<set_name>``
    (each kept when up to date)."""
    kinds = {k for name in backends for k in vector_kinds(package, name) if k != EMBEDDINGS}
    made = {}
    for kind in sorted(kinds):
        out = Path(out_root) / f"{kind}_{set_name}"
        made[kind] = (stats_data_dir(raw_data, out, keys) if kind == "stats"
                      else ivectors_data_dir(package.ivectors[kind], raw_data, out, keys))
    return made


class _Scorer:
    """Scores one trial list by any back-end, reading each kind of vectors once, and only when
    some back-end's outputs are not up to date."""

    def __init__(self, package: ModelPackage, trials, trials_path, sources: dict[str, Path]):
        self.package, self.trials, self.trials_path, self.sources = package, trials, trials_path, sources
        self._vectors: dict[str, tuple] = {}

    def vectors(self, kind: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(keys, matrix, domain mean)`` of the vectors of ``kind``."""
        if kind not in self._vectors:
            keys, matrix = read_vectors(self.sources[kind])
            self._vectors[kind] = (keys, matrix, matrix.astype(np.float64).mean(axis=0))
        return self._vectors[kind]

    def scores(self, name: str, asnorm_top_n: int) -> tuple[np.ndarray, dict]:
        """``(scores in trial order, what metrics.json records of how they were made)``."""
        if name == "fused":
            fusion = self.package.fusion_model()
            columns = np.stack([self.scores(c, asnorm_top_n)[0] for c in fusion.components], axis=1)
            return fusion.apply(columns), {"fusion": str(self.package.fusion), "components": fusion.components}
        (kind,) = vector_kinds(self.package, name)
        keys, matrix, domain_mean = self.vectors(kind)
        package, cohort, top_n = self.package, None, None
        if name in IVECTOR_SLOTS:
            backend = dataclasses.replace(PldaBackend.load(package.ivectors[name] / IVECTOR_PLDA_FILE), mean=domain_mean)
        elif name.startswith("plda"):
            backend = PldaBackend.load(package.plda)
            if name == "plda_dm":
                backend = dataclasses.replace(backend, mean=domain_mean)
        else:
            backend = CosineBackend(package.cohort_arrays()[2] if name == "cosine" else domain_mean)
        if name.endswith("asnorm"):
            cohort = package.cohort_arrays()[1]
            top_n = min(asnorm_top_n, len(cohort))
        source = str(self.sources[kind])
        scores = score_trial_list(backend, self.trials, self.trials_path, (keys, matrix), (keys, matrix),
                                  source, source, cohort=cohort, top_n=top_n)
        return scores, {"enrol_scp": source, "test_scp": source, **({} if top_n is None else {"asnorm_top_n": top_n})}


def score_data_dir(package: ModelPackage, trials_path: str | os.PathLike, xvector_scp: str | os.PathLike,
                   out_root: str | os.PathLike, set_name: str, backends: Sequence[str],
                   asnorm_top_n: int = DEFAULT_ASNORM_TOP_N,
                   raw_vectors: dict[str, str | os.PathLike] | None = None) -> dict[str, dict]:
    """Score ``trials_path`` with the embeddings of ``xvector_scp`` (the ``RAW_FEATURE_BACKENDS``:
    with the vectors of ``raw_vectors``, :func:`raw_feature_vectors`) by each back-end; returns
    ``{backend: metrics}``. The domain mean is the mean of all vectors of the scp."""
    if asnorm_top_n < 1:
        raise UserError(f"the AS-norm top-N must be >= 1, got {asnorm_top_n}")
    sources = {EMBEDDINGS: Path(xvector_scp), **{k: Path(v) for k, v in (raw_vectors or {}).items()}}
    lacking = [n for n in backends if any(k not in sources for k in vector_kinds(package, n))]
    if lacking:
        raise UserError(f"back-end(s) {', '.join(lacking)} need vectors of the raw features (statistics, i-vectors)")
    trials = read_trials(trials_path)
    scorer = _Scorer(package, trials, trials_path, sources)
    results = {}
    for name in backends:
        kinds = vector_kinds(package, name)
        inputs = [trials_path, *(p for k in kinds for p in (sources[k], *provenance.scp_archives(sources[k]))),
                  *([package.model] if EMBEDDINGS in kinds else []), *backend_needs(package, name)]
        out = Path(out_root) / f"scores_{set_name}_{name}"
        components = fusion_components(package) if name == "fused" else [name]
        settings = {"backend": name, "trial_set": set_name,
                    "asnorm_top_n": asnorm_top_n if any(c.endswith("asnorm") for c in components) else None}
        with provenance.stage(out, settings, inputs, outputs=("metrics.json", "scores"), what=f"scores {out}") as st:
            if not st.fresh:
                scores, how = scorer.scores(name, asnorm_top_n)
                info = {"backend": name, "trial_set": set_name, "trials": str(trials_path), **how,
                        **({"model": str(package.model)} if EMBEDDINGS in kinds else {})}
                write_scoring_outputs(out, trials, scores, info, title=f"{set_name} {name}")
        with open(out / "metrics.json", encoding="utf-8") as f:
            results[name] = json.load(f)
    return results
