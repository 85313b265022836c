"""Kaldi data directories for VoxCeleb1, VoxCeleb2 and Speakers in the Wild (SITW).

Layouts read (as distributed):

* VoxCeleb2: ``ROOT/dev/aac/id00012/21Uxsk56VDQ/00001.m4a`` (also accepted: ``ROOT/aac/...``
  when ROOT is the ``dev`` folder itself), optional ``ROOT/vox2_meta.csv``. soundfile cannot
  decode AAC, so each wav.scp entry is an ffmpeg pipe (:func:`ffmpeg_pipe`).
* VoxCeleb1: ``ROOT/wav/id10001/1zcIwhmdeo4/00001.wav`` with ``ROOT/vox1_meta.csv`` giving each
  speaker's set (dev/test), or Kaldi's split layout ``ROOT/{dev,test}/wav/...``. Trial lists
  (``veri_test2.txt``, ``list_test_all2.txt``, ``list_test_hard2.txt``) hold
  ``label enrol-path test-path`` with label 1 for a target trial.
* SITW: ``ROOT/{dev,eval}/audio/*.flac``, ``ROOT/{dev,eval}/lists/enroll-core.lst``
  (``model-id audio/x.flac``) and ``ROOT/{dev,eval}/keys/core-core.lst``
  (``model-id audio/y.flac tgt|imp``).

Utterance ids follow Kaldi: VoxCeleb ``spk-video-segment`` (make_voxceleb1_v2.pl); SITW
enrolment ``model_file`` (speaker = model), SITW test ``file`` (its own speaker, as Kaldi's
make_sitw.sh: test speakers are not used).

Why not lhotse's ``prepare_voxceleb`` (1.33): its VoxCeleb2 progress bar names ``split``, a
variable left over from the metadata loop (wrong split in the message, and a NameError when the
metadata has no rows); it scans every ``*.m4a`` under the root, so dev and test are mixed; its
trials are openslr's ``voxceleb1_test_v2.txt``, a 2018 mirror of the original, uncleaned
``veri_test.txt`` (Kaldi issue #2650), fetched from the network into the working directory, with
no E or H list.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from dropclass_lib.datadir import DataDir
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.tables import iter_lines
from dropclass_lib.trials import Trials

#: the VoxCeleb1 trial lists: short name -> file name (the cleaned versions)
VOX1_LISTS = {"O": "veri_test2.txt", "E": "list_test_all2.txt", "H": "list_test_hard2.txt"}


#: written last into a prepared data directory: a run killed midway leaves none, so it is redone
DONE_MARKER = ".prepared"


def is_prepared(path: str | Path) -> bool:
    return (Path(path) / DONE_MARKER).is_file()


def write_prepared(data: DataDir, path: str | Path) -> None:
    """Write ``data`` to ``path``, then the marker that :func:`is_prepared` checks."""
    path = Path(path)
    (path / DONE_MARKER).unlink(missing_ok=True)
    data.write(path)
    (path / DONE_MARKER).touch()


def ffmpeg_pipe(path: str | Path) -> str:
    """The wav.scp value decoding ``path`` (m4a/aac) to 16 kHz mono 16-bit wav on stdout."""
    return f"ffmpeg -v 8 -i {shlex.quote(str(path))} -f wav -acodec pcm_s16le -ac 1 -ar 16000 - |"


def utt_id_from_relpath(relpath: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001``."""
    parts = relpath.strip("/").split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"expected speaker/video/segment.ext, got {relpath!r}")
    return "-".join([parts[0], parts[1], parts[2].rsplit(".", 1)[0]])


def _scan(base: Path, ext: str) -> dict[str, tuple[str, Path]]:
    """``utt -> (speaker, path)`` for ``base/spk/video/seg.ext``."""
    out: dict[str, tuple[str, Path]] = {}
    for path in sorted(base.glob(f"*/*/*.{ext}")):
        rel = path.relative_to(base).as_posix()
        out[utt_id_from_relpath(rel)] = (rel.split("/", 1)[0], path.resolve())
    return out


def _datadir(utts: dict[str, tuple[str, str]]) -> DataDir:
    """DataDir from ``utt -> (speaker, wav.scp value)``."""
    return DataDir(utt2spk={u: s for u, (s, _) in utts.items()}, wav={u: w for u, (_, w) in utts.items()})


def _add_speaker(meta: dict[str, str], speaker: str, part: str, path, lineno: int, line: str) -> None:
    if speaker in meta:
        raise InputFileError(path, lineno, f"speaker {speaker} is listed a second time", line)
    meta[speaker] = part


def read_vox1_meta(path: str | Path) -> dict[str, str]:
    """``speaker -> set`` (``dev``/``test``) from ``vox1_meta.csv`` (tab-separated, one header;
    the distributed file: 1,251 speakers, 1,211 dev and 40 test)."""
    meta: dict[str, str] = {}
    for lineno, line in iter_lines(path):
        if lineno == 1:
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 5 or fields[4] not in ("dev", "test"):
            raise InputFileError(path, lineno, "expected 5 tab-separated fields 'id name gender nationality dev|test'", line)
        _add_speaker(meta, fields[0], fields[4], path, lineno, line)
    return meta


def read_vox2_meta(path: str | Path) -> dict[str, str]:
    """``speaker -> set`` from ``vox2_meta.csv`` (``id ,vggface-id ,gender ,dev|test``, one header).

    The distributed file (5,994 dev and 120 test speakers) starts with a UTF-8 byte-order mark
    (dropped by :func:`~dropclass_lib.tables.iter_lines`) and pads every field with a trailing
    space: fields are stripped.
    """
    meta: dict[str, str] = {}
    for lineno, line in iter_lines(path):
        if lineno == 1:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4 or fields[3] not in ("dev", "test"):
            raise InputFileError(path, lineno, "expected 4 comma-separated fields 'id, vggface-id, gender, dev|test'", line)
        _add_speaker(meta, fields[0], fields[3], path, lineno, line)
    return meta


def prepare_voxceleb2(root: str | Path, subset: str = "dev") -> DataDir:
    """VoxCeleb2 ``subset`` (``dev`` or ``test``) with ffmpeg-pipe wav.scp entries.

    With ``vox2_meta.csv`` present, every speaker found must be listed there under ``subset``.
    """
    root = Path(root)
    candidates = [root / subset / "aac", root / "aac"]
    base = next((c for c in candidates if c.is_dir()), None)
    if base is None:
        raise UserError(f"VoxCeleb2 {subset}: none of {', '.join(map(str, candidates))} exists")
    found = _scan(base, "m4a")
    if not found:
        raise UserError(f"VoxCeleb2 {subset}: no */*/*.m4a files under {base}")
    meta_path = root / "vox2_meta.csv"
    if meta_path.is_file():
        meta = read_vox2_meta(meta_path)
        wrong = sorted({s for s, _ in found.values() if meta.get(s) != subset})
        if wrong:
            raise UserError(f"{meta_path}: {len(wrong)} speaker(s) under {base} are not listed as {subset!r} "
                            f"(first: {wrong[0]})")
    return _datadir({u: (s, ffmpeg_pipe(p)) for u, (s, p) in found.items()})


def prepare_voxceleb1(root: str | Path, subset: str = "all") -> DataDir:
    """VoxCeleb1 utterances of ``subset`` (``all``, ``dev`` or ``test``); wav.scp holds file paths.

    The test lists E and H draw on all of VoxCeleb1, so ``all`` is what the recipe evaluates on.
    """
    if subset not in ("all", "dev", "test"):
        raise UserError(f"VoxCeleb1 subset must be all, dev or test, got {subset!r}")
    root = Path(root)
    if (root / "wav").is_dir():
        found = _scan(root / "wav", "wav")
        if subset != "all":
            meta_path = root / "vox1_meta.csv"
            if not meta_path.is_file():
                raise UserError(f"{meta_path} is needed to tell dev from test speakers under {root / 'wav'}")
            meta = read_vox1_meta(meta_path)
            unknown = sorted({s for s, _ in found.values() if s not in meta})
            if unknown:
                raise UserError(f"{meta_path}: speaker {unknown[0]} (of {root / 'wav'}) is not listed")
            found = {u: v for u, v in found.items() if meta[v[0]] == subset}
    elif (root / "dev" / "wav").is_dir() or (root / "test" / "wav").is_dir():
        found = {}
        for part in ("dev", "test") if subset == "all" else (subset,):
            if (root / part / "wav").is_dir():
                found.update(_scan(root / part / "wav", "wav"))
    else:
        raise UserError(f"VoxCeleb1: neither {root / 'wav'} nor {root / 'dev' / 'wav'} / {root / 'test' / 'wav'} exists")
    if not found:
        raise UserError(f"VoxCeleb1 ({subset}): no */*/*.wav files under {root}")
    return _datadir({u: (s, str(p)) for u, (s, p) in found.items()})


def read_vox1_trials(path: str | Path, known_utts: set[str] | dict) -> Trials:
    """Convert a VoxCeleb1 list (``1|0 enrol-path test-path``) to Kaldi trials.

    LF or CRLF line ends, with or without a final newline (copies of ``veri_test2.txt`` in
    circulation differ in both). Every utterance must be in ``known_utts``: a trial on missing audio is an error naming the
    line (a partial corpus would silently change the test set otherwise).
    """
    enrol, test, target = [], [], []
    for lineno, line in iter_lines(path):
        parts = line.split()
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise InputFileError(path, lineno, "expected 'label enrol-path test-path' with label 1 or 0", line)
        utts = []
        for rel in parts[1:]:
            try:
                utt = utt_id_from_relpath(rel)
            except ValueError as err:
                raise InputFileError(path, lineno, str(err), line) from None
            if utt not in known_utts:
                raise InputFileError(path, lineno, f"utterance {rel} is not in the VoxCeleb1 audio", line)
            utts.append(utt)
        enrol.append(utts[0])
        test.append(utts[1])
        target.append(parts[0] == "1")
    if not target:
        raise UserError(f"{path}: no trials")
    return Trials(np.array(enrol, dtype=object), np.array(test, dtype=object), np.array(target, dtype=bool))


def voxceleb1_test_dir(vox1: DataDir, list_path: str | Path) -> DataDir:
    """The utterances of one VoxCeleb1 trial list, with ``trials`` and ``enrol.list``."""
    trials = read_vox1_trials(list_path, vox1.utt2spk)
    sub = vox1.subset(trials.utts())
    sub.trials = trials
    sub.enrol = trials.enrol_utts()
    return sub


def _sitw_audio(set_dir: Path, list_path: Path, lineno: int, line: str, rel: str) -> Path:
    if not rel.startswith("audio/") or not rel.endswith(".flac"):
        raise InputFileError(list_path, lineno, f"expected an audio/NAME.flac path, got {rel!r}", line)
    path = set_dir / rel
    if not path.is_file():
        raise InputFileError(list_path, lineno, f"audio file {path} does not exist", line)
    return path.resolve()


def prepare_sitw(root: str | Path, subset: str) -> DataDir:
    """SITW ``subset`` (``dev``/``eval``) core-core: enrolment and test audio, ``trials``, ``enrol.list``.

    Core enrolment has one file per model; the trial's model id is replaced by that file's
    utterance id (``model_file``), so trials name utterances as everywhere in this project.
    wav.scp entries are the flac paths (soundfile decodes flac; the features step checks the rate).
    """
    if subset not in ("dev", "eval"):
        raise UserError(f"SITW subset must be dev or eval, got {subset!r}")
    set_dir = Path(root) / subset
    enroll_lst = set_dir / "lists" / "enroll-core.lst"
    keys = set_dir / "keys" / "core-core.lst"
    for p in (enroll_lst, keys):
        if not p.is_file():
            raise UserError(f"SITW {subset}: {p} does not exist")
    wav: dict[str, str] = {}
    utt2spk: dict[str, str] = {}
    model2utt: dict[str, str] = {}
    for lineno, line in iter_lines(enroll_lst):
        parts = line.split()
        if len(parts) != 2:
            raise InputFileError(enroll_lst, lineno, "expected 'model-id audio/NAME.flac'", line)
        model, rel = parts
        path = _sitw_audio(set_dir, enroll_lst, lineno, line, rel)
        if model in model2utt:
            raise InputFileError(enroll_lst, lineno, f"model {model!r} has a second core enrolment file", line)
        utt = f"{model}_{path.stem}"
        model2utt[model] = utt
        wav[utt], utt2spk[utt] = str(path), model
    enrol, test, target = [], [], []
    for lineno, line in iter_lines(keys):
        parts = line.split()
        if len(parts) != 3 or parts[2] not in ("tgt", "imp"):
            raise InputFileError(keys, lineno, "expected 'model-id audio/NAME.flac tgt|imp'", line)
        model, rel, label = parts
        if model not in model2utt:
            raise InputFileError(keys, lineno, f"model {model!r} is not in {enroll_lst}", line)
        path = _sitw_audio(set_dir, keys, lineno, line, rel)
        utt = path.stem
        if utt in utt2spk and wav[utt] != str(path):
            raise InputFileError(keys, lineno, f"utterance id {utt!r} names two files", line)
        wav[utt], utt2spk[utt] = str(path), utt
        enrol.append(model2utt[model])
        test.append(utt)
        target.append(label == "tgt")
    if not target:
        raise UserError(f"{keys}: no trials")
    trials = Trials(np.array(enrol, dtype=object), np.array(test, dtype=object), np.array(target, dtype=bool))
    return DataDir(utt2spk=utt2spk, wav=wav, trials=trials, enrol=trials.enrol_utts())
