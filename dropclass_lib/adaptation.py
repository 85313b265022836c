"""Back-end adaptation of a model package to unlabelled in-domain embeddings.

The alternatives to adapting the extractor itself (DropAdapt), as Kaldi's recipes adapt their
back-ends (``--backend-adapt`` of steps/adapt_model.py):

* ``mean``: mean re-centring: the centring mean of the package's back-ends, the training mean
  (``cohort.npz`` ``train_mean``, used by ``cosine``, and the mean the PLDA back-end subtracts
  before its LDA), becomes the mean of the in-domain embeddings;
* ``plda``: the PLDA adapted to the in-domain embeddings, after the back-end's own
  preprocessing (training mean, LDA, length norm), as Kaldi's ``ivector-adapt-plda``
  (:func:`dropclass_lib.backends.plda.adapt_plda`);
* ``both``: re-centred first, then the PLDA adapted to the embeddings so centred: Kaldi's SRE16
  recipe (``ivector-subtract-global-mean`` of the in-domain set, then ``ivector-adapt-plda``).

The ``*_dm`` back-ends centre on the scored data's own mean in any case; the PLDA of ``plda_dm``
is the adapted one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from dropclass_lib.backends.plda import PldaAdaptConfig, PldaBackend
from dropclass_lib.errors import UserError
from dropclass_lib.package import PLDA_FILE, ModelPackage, write_cohort

log = logging.getLogger("adaptation")

BACKEND_ADAPTATIONS = ("none", "mean", "plda", "both")


def adapted_backends(plda: PldaBackend, train_mean: np.ndarray, in_domain: np.ndarray, how: str,
                     config: PldaAdaptConfig | None = None) -> tuple[PldaBackend, np.ndarray]:
    """``(PLDA back-end, centring mean of the cosine back-end)`` after adaptation ``how`` (one of
    ``BACKEND_ADAPTATIONS``) to the in-domain embeddings ``in_domain`` (rows)."""
    if how not in BACKEND_ADAPTATIONS:
        raise UserError(f"back-end adaptation must be one of {', '.join(BACKEND_ADAPTATIONS)}, got {how!r}")
    if how == "none":
        return plda, train_mean
    in_domain = np.asarray(in_domain, dtype=np.float64)
    if in_domain.ndim != 2 or in_domain.shape[0] < 2:
        raise UserError(f"back-end adaptation needs at least 2 in-domain embeddings, got {in_domain.shape[0]}")
    if how in ("mean", "both"):
        train_mean = in_domain.mean(axis=0)
        plda = dataclasses.replace(plda, mean=train_mean)
    if how in ("plda", "both"):
        plda = plda.adapted(in_domain, config)
    return plda, train_mean


def write_adapted_backends(source: ModelPackage, out_dir: str | os.PathLike, how: str, in_domain: np.ndarray | None,
                           config: PldaAdaptConfig | None = None) -> None:
    """``out_dir``'s plda/plda.npz and cohort.npz: those of the package ``source`` adapted as
    :func:`adapted_backends` says (copied as they are for ``none``)."""
    if source.plda is None or source.cohort is None:
        raise UserError(f"{source.root} lacks plda/ or cohort.npz (complete it with steps/make_model_package.py)")
    speakers, speaker_means, train_mean = source.cohort_arrays()
    plda, mean = adapted_backends(PldaBackend.load(source.plda), train_mean, in_domain, how, config)
    if how != "none":
        log.info("back-ends of %s adapted (%s) to %d in-domain embeddings", out_dir, how, len(in_domain))
    out_dir = Path(out_dir)
    (out_dir / PLDA_FILE).parent.mkdir(parents=True, exist_ok=True)
    plda.save(out_dir / PLDA_FILE)
    write_cohort(out_dir, speakers, speaker_means, mean)
