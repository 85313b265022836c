"""A model package: one directory that holds a trained system and all it needs to score new audio.

    DIR/final.pt        the extractor and its training head (dropclass_lib.model_io)
    DIR/frontend.yaml   the front end it was trained with: ``feats`` (the feature settings that
                        steps/make_features.py recorded), ``vad`` (energy-VAD options) and
                        ``cmn_window`` (sliding CMN, frames)
    DIR/plda/plda.npz   LDA + PLDA trained on the training speakers' embeddings (optional)
    DIR/cohort.npz      the training speakers' mean embeddings and the training-set mean: the
                        AS-norm cohort and the centring of the ``cosine`` back-end (optional)
    DIR/scoring.yaml    ``backend``: the back-end to report first, ``asnorm_top_n`` (optional;
                        a recipe writes the one it chose on development data)
    DIR/fusion.yaml     the weights of the ``fused`` back-end: a linear fusion of other back-ends'
                        scores (embeddings, cepstral statistics, i-vectors), trained on
                        development lists by steps/train_fusion.py (optional)
    DIR/ivector/, DIR/ivector_raw/
                        i-vector systems (extractor.npz, plda.npz of steps/train_ivector.py)
                        scored by the back-ends of the same names (optional): ``ivector`` with
                        Kaldi's front end (CMN, voiced frames), ``ivector_raw`` without CMN and
                        VAD (:mod:`dropclass_lib.backends.ivector`)

Every recipe writes one per trained system (:func:`write_frontend`, then
steps/make_model_package.py adds the back-ends); steps/score_corpus.py, steps/evaluate_model.py
and the Python API open it with :func:`open_package`, given the directory or its final.pt.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from dropclass_lib.atomic import atomic_open, atomic_path
from dropclass_lib.backends.ivector import EXTRACTOR_FILE as IVECTOR_EXTRACTOR_FILE
from dropclass_lib.errors import InputFileError, UserError

MODEL_FILE = "final.pt"
FRONTEND_FILE = "frontend.yaml"
PLDA_FILE = Path("plda") / "plda.npz"
COHORT_FILE = "cohort.npz"
SCORING_FILE = "scoring.yaml"
FUSION_FILE = "fusion.yaml"
FRONTEND_KEYS = ("feats", "vad", "cmn_window")
IVECTOR_SLOTS = ("ivector", "ivector_raw")
"""The package's i-vector systems, each in the directory of its name, scored by the back-end of
its name."""


@dataclass
class ModelPackage:
    root: Path
    model: Path
    frontend: dict
    plda: Path | None
    cohort: Path | None
    scoring: dict
    fusion: Path | None = None
    ivectors: dict[str, Path] = dataclasses.field(default_factory=dict)
    """The i-vector systems it holds: ``{slot: directory}`` (:data:`IVECTOR_SLOTS`)."""

    def fusion_model(self):
        """The :class:`~dropclass_lib.calibration.LinearFusion` of ``fusion.yaml``."""
        from dropclass_lib.calibration import LinearFusion

        if self.fusion is None:
            raise UserError(f"{self.root} has no {FUSION_FILE} (train one with steps/train_fusion.py)")
        return LinearFusion.from_record(_read_yaml_mapping(self.fusion, "a fusion"), self.fusion)

    def cohort_arrays(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``(speaker ids, speaker mean embeddings, training mean)`` of ``cohort.npz``."""
        if self.cohort is None:
            raise UserError(f"{self.root} has no {COHORT_FILE} (make it with steps/make_model_package.py)")
        try:
            with np.load(self.cohort) as z:
                return [str(s) for s in z["speakers"]], z["speaker_means"], z["train_mean"]
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"{self.cohort}: not a cohort written by steps/make_model_package.py ({err})") from None


def _read_yaml_mapping(path: Path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            record = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise InputFileError(path, None, f"not valid YAML ({err})") from None
    if not isinstance(record, dict):
        raise InputFileError(path, 1, f"expected a mapping ({what})")
    return record


def package_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(model file, package directory)`` of a package directory or of a model file in one."""
    path = Path(path)
    if path.is_dir():
        return path / MODEL_FILE, path
    if path.is_file():
        return path, path.parent
    raise UserError(f"model {path} does not exist (expected a model package directory or its {MODEL_FILE})")


def open_package(path: str | os.PathLike) -> ModelPackage:
    """The package in directory ``path``, or the one a model file ``path`` lies in."""
    model, root = package_paths(path)
    if not model.is_file():
        raise UserError(f"{root} is not a model package: it has no {MODEL_FILE}")
    front_path = root / FRONTEND_FILE
    if not front_path.is_file():
        raise UserError(f"{root} is not a complete model package: {FRONTEND_FILE} (the front end the model was "
                        "trained with) is missing; a recipe writes it beside every model")
    frontend = _read_yaml_mapping(front_path, "keys " + ", ".join(FRONTEND_KEYS))
    missing = [k for k in FRONTEND_KEYS if k not in frontend]
    if missing:
        raise InputFileError(front_path, None, f"missing key(s) {', '.join(missing)}")
    scoring = _read_yaml_mapping(root / SCORING_FILE, "backend, asnorm_top_n") if (root / SCORING_FILE).is_file() else {}
    plda, cohort, fusion = root / PLDA_FILE, root / COHORT_FILE, root / FUSION_FILE
    ivectors = {slot: root / slot for slot in IVECTOR_SLOTS if (root / slot / IVECTOR_EXTRACTOR_FILE).is_file()}
    return ModelPackage(root, model, frontend, plda if plda.is_file() else None,
                        cohort if cohort.is_file() else None, scoring, fusion if fusion.is_file() else None, ivectors)


def frontend_record(feats_config: str | os.PathLike, vad_conf: str | os.PathLike, cmn_window: int) -> dict:
    """The frontend.yaml content: the feature settings a data dir was made with (its
    feats_config.yaml), the VAD options file and the CMN window."""
    if cmn_window < 1:
        raise UserError(f"the CMN window must be a positive number of frames, got {cmn_window}")
    return {"feats": _read_yaml_mapping(Path(feats_config), "feature settings"),
            "vad": _read_yaml_mapping(Path(vad_conf), "VAD options"),
            "cmn_window": int(cmn_window)}


def write_yaml(path: str | os.PathLike, record: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(record, f, sort_keys=False)


def write_frontend(model_dir: str | os.PathLike, record: dict) -> None:
    write_yaml(Path(model_dir) / FRONTEND_FILE, record)


def write_cohort(model_dir: str | os.PathLike, speakers: list[str], speaker_means: np.ndarray,
                 train_mean: np.ndarray) -> None:
    with atomic_path(Path(model_dir) / COHORT_FILE) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, speakers=np.array(speakers), speaker_means=np.asarray(speaker_means, dtype=np.float32),
                     train_mean=np.asarray(train_mean, dtype=np.float64))
