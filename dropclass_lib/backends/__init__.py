"""Scoring back-ends for speaker embeddings.

Every back-end maps embeddings into a :class:`~dropclass_lib.backends.scoring.ScoringSpace`
in which the score of a pair is a dot product plus one offset per side; the trial scoring,
full score matrices and cohort score normalisation (:mod:`.score_norm`) are therefore shared:

- :mod:`.cosine`: cosine similarity, optionally after subtracting a given mean;
- :mod:`.lda` + :mod:`.plda`: Kaldi-style LDA, length norm and two-covariance PLDA.
"""
