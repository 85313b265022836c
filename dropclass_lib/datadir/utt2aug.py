"""The ``utt2aug`` table: utterances whose audio is rendered from another utterance's audio.

An augmented or speed-perturbed utterance has no audio on disk, so it has no ``wav.scp`` entry
(a reader of wav.scp would take the clean source for its audio). Its line in ``utt2aug`` says
how the audio is made instead::

    UTT N KIND_1 INPUT_1 SETUP_1 [... KIND_N INPUT_N SETUP_N] SOURCE

``SOURCE`` (the rest of the line) is a wav.scp value, a path or a command ending in ``|``: the
clean audio. The ``N`` steps are applied to it in order; step *i* is augmentation ``KIND_i``
drawn, with the settings of ``SETUP_i`` (the absolute path of an ``augment.yaml``), for
utterance ``INPUT_i`` of the data directory that setup was made from. Recording the input
utterance (not the line's own id) keeps the audio the same when utils/copy_data_dir.py renames
utterances, as a wav.scp pipe would. Every utterance of a data directory is in exactly one of
wav.scp and utt2aug (see :func:`dropclass_lib.datadir.validate.validate_data_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AugStep:
    """One rendering step: ``kind`` drawn for ``input_utt`` with the setup file ``setup``."""

    kind: str
    input_utt: str
    setup: str


@dataclass(frozen=True)
class AugRecord:
    """The value of one utt2aug line: the clean source entry and the steps applied to it."""

    steps: tuple[AugStep, ...]
    source: str

    def then(self, step: AugStep) -> "AugRecord":
        """This record with one more step at the end (augmenting an already rendered utterance)."""
        return AugRecord(self.steps + (step,), self.source)

    def format(self) -> str:
        """The line's value (everything after the utterance id)."""
        fields = [str(len(self.steps))] + [f for s in self.steps for f in (s.kind, s.input_utt, s.setup)]
        return " ".join(fields + [self.source])


def parse_aug(value: str) -> AugRecord:
    """Parse a utt2aug value; :class:`ValueError` says what is wrong with it."""
    head, _, rest = value.strip().partition(" ")
    try:
        count = int(head)
    except ValueError:
        raise ValueError(f"expected the number of steps first, got {head!r}") from None
    if count < 1:
        raise ValueError(f"the number of steps must be >= 1, got {count}")
    fields = rest.split(None, 3 * count)
    if len(fields) < 3 * count + 1:
        raise ValueError(f"expected {count} step(s) of KIND INPUT-UTT SETUP, then the source entry")
    steps = tuple(AugStep(*fields[3 * i:3 * i + 3]) for i in range(count))
    return AugRecord(steps, fields[-1].strip())
