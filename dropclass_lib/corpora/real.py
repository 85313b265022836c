"""Shared code of the real-corpus preparation scripts (``local/prepare_*.py``).

A preparation script only has to say how a corpus names its files: :func:`scan_corpus` walks
the corpus and turns each audio file into ``(utterance id, speaker id, path)`` with a
corpus-specific parser; :func:`write_split` chooses the test speakers, writes the train and
test data directories and the test trials. A corpus that ships its own lists instead
(``wav.scp`` naming files relative to the corpus root) finds each listed file with
:func:`find_audio`, which also accepts the same recording in another format, and writes each
list with :func:`write_data_dir`.
"""

from __future__ import annotations

import argparse
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from dropclass_lib.corpora.trial_design import TrialDesign, add_trial_options, design_from_args, design_trials
from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import UserError
from dropclass_lib.tables import c_sorted, iter_lines

AUDIO_EXTENSIONS = (".wav", ".flac")
#: formats a listed recording may be stored in, the lossless ones first (see find_audio)
LISTED_AUDIO_EXTENSIONS = (".WAV", ".wav", ".FLAC", ".flac", ".opus")


@dataclass(frozen=True)
class Utterance:
    utt: str    # speaker-prefixed utterance id
    spk: str
    path: str   # absolute path of the audio file
    text: Optional[str] = None  # transcript, when the corpus has one


def scan_corpus(root: str | os.PathLike, subdir: str,
                parse: Callable[[Path], Optional[tuple[str, str]]]) -> list[Utterance]:
    """Find every ``.wav``/``.flac`` file under ``root/subdir``; ``parse(path relative to root)``
    returns ``(utterance id, speaker id)``, or ``None`` for a file that does not follow the
    corpus layout (an error naming that file). The same recording in both formats is an error."""
    root = Path(root).resolve()
    top = root / subdir
    if not top.is_dir():
        raise UserError(f"{top} does not exist: is {root} the corpus root?")
    found: dict[str, Utterance] = {}
    for path in sorted(top.rglob("*")):
        if path.suffix.lower() not in AUDIO_EXTENSIONS or not path.is_file():
            continue
        ids = parse(path.relative_to(root))
        if ids is None:
            raise UserError(f"{path}: file name does not follow the corpus layout")
        utt, spk = ids
        if not utt.startswith(spk):
            raise ValueError(f"utterance id {utt!r} must start with its speaker id {spk!r}")
        if utt in found:
            raise UserError(f"{path} and {found[utt].path} are the same recording (utterance {utt})")
        found[utt] = Utterance(utt, spk, str(path))
    if not found:
        raise UserError(f"no .wav or .flac files under {top}")
    return [found[u] for u in c_sorted(found)]


def find_audio(root: Path, listed: str) -> Optional[Path]:
    """The audio file of a path listed relative to ``root``: the first that exists of the
    listed name with each extension of :data:`LISTED_AUDIO_EXTENSIONS` (so a lossless copy wins
    over an Opus one, whichever the list names), then the listed name itself. ``None`` when
    there is none."""
    path = root / listed
    candidates = [*(path.with_suffix(ext) for ext in LISTED_AUDIO_EXTENSIONS), path]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def wav_entry(path: str) -> str:
    """The ``wav.scp`` value for ``path``: the path itself, or, when it holds whitespace (which
    a Kaldi table cannot), a command that pipes the file, as Kaldi recipes do."""
    return f"cat {shlex.quote(path)} |" if any(c.isspace() for c in path) else path


def add_split_options(parser: argparse.ArgumentParser, default_num_test: int, design: TrialDesign) -> None:
    """The options every preparation script shares: test speakers, trial design (defaults from
    ``design``), seed."""
    g = parser.add_argument_group("train/test split and trials")
    g.add_argument("--test-speakers", default=None,
                   help="test speakers: comma-separated ids, or a file with one id per line")
    g.add_argument("--num-test-speakers", type=int, default=default_num_test,
                   help="number of test speakers, drawn at random with --seed (when --test-speakers is not given)")
    g.add_argument("--seed", type=int, default=0, help="seed of the speaker draw and of the trials")
    add_trial_options(g, design)


def read_speaker_option(value: str) -> list[str]:
    """``--test-speakers``: a file of ids (one per line) if such a file exists, else a comma list."""
    if os.path.isfile(value):
        return [line.split()[0] for _, line in iter_lines(value)]
    return [s for s in value.split(",") if s]


def choose_test_speakers(speakers: Iterable[str], test_speakers: Optional[list[str]], num_test: int,
                         seed: int) -> list[str]:
    """The given test speakers (all must exist), or ``num_test`` drawn at random with ``seed``."""
    speakers = c_sorted(set(speakers))
    if test_speakers is not None:
        unknown = sorted(set(test_speakers) - set(speakers))
        if unknown:
            raise UserError(f"test speakers not in the corpus: {' '.join(unknown)}")
        chosen = c_sorted(set(test_speakers))
    else:
        if not 2 <= num_test <= len(speakers) - 1:
            raise UserError(f"--num-test-speakers must be between 2 and {len(speakers) - 1} "
                            f"(the corpus has {len(speakers)} speakers), got {num_test}")
        chosen = c_sorted(np.random.default_rng(seed).choice(speakers, size=num_test, replace=False).tolist())
    if len(chosen) < 2 or len(chosen) == len(speakers):
        raise UserError(f"need at least 2 test speakers and 1 training speaker, got {len(chosen)} of {len(speakers)}")
    return chosen


def write_data_dir(utts: list[Utterance], path: str | os.PathLike, design: Optional[TrialDesign] = None,
                   seed: int = 0) -> None:
    """Write ``utts`` as a data directory at ``path`` (``text`` when every utterance has a
    transcript), with trials and ``enrol.list`` drawn with ``design`` and ``seed`` if given."""
    d = DataDir(utt2spk={u.utt: u.spk for u in utts}, wav={u.utt: wav_entry(u.path) for u in utts})
    if utts and all(u.text is not None for u in utts):
        d.text = {u.utt: u.text for u in utts}
    if design is not None:
        d.trials = design_trials(d.utt2spk, design, seed)
        d.enrol = d.trials.enrol_utts()
    d.write(path)


def write_split(utts: list[Utterance], test_speakers: list[str], data_dir: str | os.PathLike,
                design: TrialDesign, seed: int) -> None:
    """Write ``data_dir/train`` (all other speakers) and ``data_dir/test`` (with trials)."""
    test = set(test_speakers)
    write_data_dir([u for u in utts if u.spk not in test], Path(data_dir) / "train")
    write_data_dir([u for u in utts if u.spk in test], Path(data_dir) / "test", design, seed)


def prepare(args: argparse.Namespace, utts: list[Utterance], default_test: Optional[list[str]] = None) -> None:
    """Common tail of a preparation script: choose test speakers, write data dirs and trials."""
    test_speakers = read_speaker_option(args.test_speakers) if args.test_speakers else default_test
    chosen = choose_test_speakers((u.spk for u in utts), test_speakers, args.num_test_speakers, args.seed)
    write_split(utts, chosen, args.data_dir, design_from_args(args), args.seed)
