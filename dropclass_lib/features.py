"""MFCC and log-mel filterbank features with Kaldi semantics, computed with public torch operations.

The option names and defaults are Kaldi's (``compute-mfcc-feats`` / ``compute-fbank-feats``),
with the VoxCeleb recipe's MFCC settings: 30 mel bins, 30 cepstra, 20-7600 Hz, no snipped
edges. The analysis is Kaldi's, step by step (dither, framing, DC removal, log energy,
pre-emphasis, window, zero-padded FFT, power spectrum, mel filters, log, DCT, lifter), with the
tables of lhotse's Kaldi-compatible layers, built by its public helpers (``create_frame_window``,
``get_mel_banks``, ``Wav2MFCC.make_dct_matrix``), so that the features are its layers' to float
rounding; the tests also compare them with kaldi-native-fbank (Kaldi's own code). The points
where a plain call of lhotse 1.33's layers would differ from Kaldi, and what we do:

* Kaldi reads 16-bit audio as integer-valued floats; we scale the [-1, 1] samples by
  ``waveform_scale`` (32768) so log energies and filterbank values, and hence the energy VAD
  threshold, are on Kaldi's scale.
* Kaldi dithers with fresh random noise; here the dither noise is seeded from the utterance id
  (a generator of its own, not torch's default one), so features do not depend on how the
  utterances are split into jobs or on re-runs. As lhotse, the waveform is dithered once,
  where Kaldi dithers each frame.
* lhotse 1.33's MFCC with ``use_energy`` (Kaldi's default: C0 replaced by the frame's log
  energy) indexes the wrong axis and fails; we put the log energy into column 0.
* lhotse squares the complex magnitude (``X.abs() ** 2``: a square root, then its square); we
  take Kaldi's power spectrum, re^2 + im^2, which equals it to float rounding at a fifth of the
  cost.
* lhotse's Blackman window is periodic (``2 pi n / N``), Kaldi's symmetric (``2 pi n / (N - 1)``);
  its lifter must be a non-zero integer, Kaldi's is any real number (0: none); it takes the log
  energy as ``log(E + 1e-15)`` where Kaldi floors E at FLT_EPSILON (digital silence: -15.9, not
  -34.5, which matters to the energy VAD's mean-based threshold). We take Kaldi's Blackman
  window, lifter and floor (``dropclass_lib.kaldi_analysis``).
* With ``snip_edges`` false the edges are reflected once, as lhotse does: an utterance too
  short for that (under 140 samples at the default settings) has no frames, where Kaldi
  reflects again.

"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import yaml

from dropclass_lib.atomic import atomic_open, regenerating
from dropclass_lib.errors import InputFileError, UserError
from dropclass_lib.kaldi_analysis import FLT_EPSILON, blackman_window, lifter_coefficients
from dropclass_lib.parallel import ArkJob, Dispatch, Progress, merge_ark_jobs, run_ark_jobs, split_contiguous
from dropclass_lib.tables import iter_table, read_kv

log = logging.getLogger(__name__)
FEATS_CONFIG = "feats_config.yaml"

WINDOW_TYPES = ("povey", "hanning", "hamming", "rectangular", "blackman")
FEAT_TYPES = ("mfcc", "fbank")
CONF_DIR = Path(__file__).resolve().parent / "conf"
"""The library's default configurations (package data, one commented key per knob): mfcc.yaml,
fbank.yaml, vad.yaml, augment.yaml. The steps use them when no --config is given; a recipe keeps
its own copies in its conf/."""


@dataclass
class _FrameConfig:
    sample_frequency: int = 16000
    """Sampling rate of the audio in Hz; audio at another rate is an error."""
    frame_length: float = 25.0
    """Frame length in milliseconds."""
    frame_shift: float = 10.0
    """Frame shift in milliseconds."""
    dither: float = 1.0
    """Gaussian dither added to the (int16-scaled) samples; seeded per utterance id."""
    preemphasis_coefficient: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    round_to_power_of_two: bool = True
    snip_edges: bool = False
    """False: frames = round(samples / shift), edges reflected (Kaldi --snip-edges=false)."""
    low_freq: float = 20.0
    high_freq: float = 7600.0
    """Upper mel cut-off in Hz; <= 0 means offset from Nyquist (Kaldi semantics)."""
    raw_energy: bool = True
    """Log energy computed before pre-emphasis and windowing."""
    energy_floor: float = 0.0
    """Floor on the log energy's argument (0: none beyond FLT_EPSILON, as Kaldi's default)."""
    waveform_scale: float = 32768.0
    """Samples in [-1, 1] are multiplied by this before analysis (Kaldi's int16 scale)."""
    channel: Optional[int] = None
    """Channel of multi-channel audio to use, 0-based (Kaldi's --channel); None: multi-channel
    audio is an error. Mono audio is used as it is."""

    def validate(self) -> None:
        if self.feat_type not in FEAT_TYPES:
            raise ValueError(f"feat_type must be one of {FEAT_TYPES}, got {self.feat_type!r}")
        if self.window_type not in WINDOW_TYPES:
            raise ValueError(f"window_type must be one of {WINDOW_TYPES}, got {self.window_type!r}")
        if self.sample_frequency <= 0 or self.frame_length <= 0 or self.frame_shift <= 0:
            raise ValueError("sample_frequency, frame_length and frame_shift must be positive")
        nyquist = self.sample_frequency / 2
        high = self.high_freq if self.high_freq > 0 else nyquist + self.high_freq
        if not 0 <= self.low_freq < high <= nyquist:
            raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist:g} Hz, got {self.low_freq:g} and {high:g}")
        if self.num_mel_bins < 4:  # Kaldi's minimum is 3, lhotse's mel banks' 4
            raise ValueError(f"num_mel_bins must be at least 4, got {self.num_mel_bins}")
        if self.channel is not None and self.channel < 0:
            raise ValueError(f"channel must be null or a channel number >= 0, got {self.channel}")


@dataclass
class MfccFeatConfig(_FrameConfig):
    feat_type: str = "mfcc"
    num_mel_bins: int = 30
    num_ceps: int = 30
    cepstral_lifter: float = 22.0
    """Kaldi's lifter ``1 + Q/2 sin(pi i / Q)`` on cepstrum i; any real Q, 0 = none."""
    use_energy: bool = True
    """Replace C0 by the frame's log energy (Kaldi's default; the energy VAD reads it)."""

    def validate(self) -> None:
        super().validate()
        if self.feat_type != "mfcc":
            raise ValueError(f"this is an MFCC config but feat_type is {self.feat_type!r}")
        if not 1 <= self.num_ceps <= self.num_mel_bins:
            raise ValueError(f"num_ceps must be in 1..num_mel_bins ({self.num_mel_bins}), got {self.num_ceps}")


@dataclass
class FbankFeatConfig(_FrameConfig):
    feat_type: str = "fbank"
    num_mel_bins: int = 80
    use_energy: bool = False
    """Prepend the frame's log energy as an extra first column (Kaldi's default: no)."""

    def validate(self) -> None:
        super().validate()
        if self.feat_type != "fbank":
            raise ValueError(f"this is an fbank config but feat_type is {self.feat_type!r}")


CONFIG_TYPES = {"mfcc": MfccFeatConfig, "fbank": FbankFeatConfig}
FeatConfig = MfccFeatConfig | FbankFeatConfig


def config_feat_type(path: str | os.PathLike) -> str | None:
    """The ``feat_type`` a feature config file names, if it names a known one."""
    try:
        with open(path, encoding="utf-8") as f:
            record = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None  # load_config reports the problem with the file
    value = record.get("feat_type") if isinstance(record, dict) else None
    return value if value in CONFIG_TYPES else None


def default_config_path(feat_type: str) -> Path:
    """The library's default options file for ``feat_type`` (mfcc or fbank)."""
    return CONF_DIR / f"{feat_type}.yaml"


def utterance_seed(utt: str) -> int:
    """A stable seed for the dither noise of one utterance."""
    return zlib.crc32(utt.encode("utf-8"))


class _Block:
    """Buffers for analysing up to ``size`` frames at once, and which utterance's features each
    frame of the block belongs to."""

    def __init__(self, torch, size: int, frame_length: int, fft_size: int, num_bins: int, dim: int):
        self.size, self.filled = size, 0
        self.frames = torch.empty((size, frame_length))
        self.signal = torch.zeros((size, fft_size))
        """Windowed frames in each row's first ``frame_length`` columns; the rest stays zero (the
        FFT's padding)."""
        self.spectrum = torch.empty((size, fft_size // 2 + 1), dtype=torch.complex64)
        self.power = torch.empty((size, fft_size // 2 + 1))
        self.power_im = torch.empty((size, fft_size // 2 + 1))
        self.mel = torch.empty((size, num_bins))
        self.energy = torch.empty(size)
        self.feats = torch.empty((size, dim))
        self.placed: list[tuple[_Pending, int, int, int]] = []
        """``(utterance, its first frame here, block row, frames)`` of the frames in the block."""


@dataclass
class _Pending:
    """An utterance of ``extract_many`` whose features are not all computed yet."""

    utt: str
    feats: np.ndarray
    remaining: int


class FeatureExtractor:
    """Computes features, float32 (frames x dim), from float samples in [-1, 1]: one utterance
    (``extractor(samples, utt)``) or a stream of them (``extract_many``).

    Each utterance is scaled, dithered (seeded by its id) and cut into frames on its own (Kaldi's
    reflected edges belong to one utterance). Frames are analysed independently, so they are
    copied into blocks of ``BLOCK_FRAMES``, short utterances sharing one and long ones spread
    over several, and a full block is analysed at once in buffers made once per
    ``extract_many``: no large tensor is allocated per block, only each utterance's waveform
    and features.

    Where the blocks end matters to the last bit: BLAS multiplies a block of a few rows with
    other kernels than a full one, so a frame's features round differently with the block it is
    in. The blocks end where they always have: after ``BLOCK_FRAMES`` frames, and after the
    utterance that brings the frames since the last such end to ``BLOCK_FRAMES`` or more. The
    features of the results reported in the project were computed so.
    """

    BLOCK_FRAMES = 400
    """Frames per block: the block's largest buffers (400 x 512 floats, 400 x 257 complex) then
    fit in a core's 1 MB L2 cache."""

    def __init__(self, cfg: FeatConfig):
        # torch and lhotse load here, not at import time: the VAD and CMN steps use this
        # module's config helpers and should not pay two seconds of imports for them.
        import torch
        from lhotse.features.kaldi.layers import Wav2MFCC, create_frame_window, get_mel_banks

        self._torch = torch
        self.cfg = cfg
        rate = cfg.sample_frequency
        self.frame_length = int(rate * cfg.frame_length / 1000)
        self.frame_shift = int(rate * cfg.frame_shift / 1000)
        self.fft_size = fft_size_of(config_record(cfg))
        # lhotse's tables, computed as its layers compute them (float32, so that the features are
        # its layers' to float rounding), but for the Blackman window (module docstring).
        if cfg.window_type == "blackman":
            self._window = torch.from_numpy(blackman_window(self.frame_length)).float()
        else:
            self._window = create_frame_window(self.frame_length, window_type=cfg.window_type)
        banks, _ = get_mel_banks(cfg.num_mel_bins, self.fft_size, rate, cfg.low_freq, cfg.high_freq)
        # no weight on Nyquist's bin; a transposed view, as lhotse keeps it: BLAS rounds the two layouts differently
        self._mel_banks = torch.nn.functional.pad(banks, (0, 1)).T
        self._energy_floor = max(FLT_EPSILON, cfg.energy_floor)
        """Kaldi takes log(max(E, FLT_EPSILON)), then floors that at log(energy_floor) if > 0."""
        self._dct = self._lifter = None
        if isinstance(cfg, MfccFeatConfig):
            self._dct = Wav2MFCC.make_dct_matrix(cfg.num_ceps, cfg.num_mel_bins)
            if cfg.cepstral_lifter != 0:
                self._lifter = torch.from_numpy(lifter_coefficients(cfg.num_ceps, cfg.cepstral_lifter)).float()
            self.dim = cfg.num_ceps
        else:
            self.dim = cfg.num_mel_bins + int(cfg.use_energy)
        self._dither = torch.Generator()

    def num_frames(self, num_samples: int) -> int:
        length, shift = self.frame_length, self.frame_shift
        if not self.cfg.snip_edges:
            frames = (num_samples + shift // 2) // shift
            # Each reflected edge is mirrored once, so it needs that many samples; Kaldi
            # reflects again, but an utterance this short holds no speech anyway.
            left = (length - shift) // 2
            right = (frames - 1) * shift + length - num_samples - left
            return frames if num_samples >= max(left, right) else 0
        return 0 if num_samples < length else 1 + (num_samples - length) // shift

    def _frames(self, samples: np.ndarray, utt: str):
        """One utterance's frames (frames x frame length): a strided view of its scaled and
        dithered samples, with Kaldi's reflected edges unless ``snip_edges``."""
        torch = self._torch
        num_frames = self.num_frames(len(samples))
        if num_frames == 0:
            return torch.empty((0, self.frame_length))
        x = torch.from_numpy(np.asarray(samples, dtype=np.float32) * self.cfg.waveform_scale)
        if self.cfg.dither != 0:
            self._dither.manual_seed(utterance_seed(utt))
            x += torch.randn(x.shape, generator=self._dither).mul_(self.cfg.dither)
        if not self.cfg.snip_edges:
            # Sample -1 is sample 0, sample n is sample n - 1, and so on (Kaldi's reflection).
            left = (self.frame_length - self.frame_shift) // 2
            right = (num_frames - 1) * self.frame_shift + self.frame_length - len(x) - left
            x = torch.cat([x[:left].flip(0), x] + ([x[len(x) - right:].flip(0)] if right > 0 else []))
        return x.unfold(0, self.frame_length, self.frame_shift)[:num_frames]

    def _analyse(self, block: _Block) -> None:
        """Features of the block's frames (which it overwrites) into ``block.feats``."""
        torch, cfg, n = self._torch, self.cfg, block.filled
        frames, energy, feats = block.frames[:n], block.energy[:n], block.feats[:n]
        windowed = block.signal[:n, :frames.shape[1]]
        if cfg.remove_dc_offset:
            frames -= frames.mean(dim=1, keepdim=True)
        if cfg.raw_energy:
            torch.sum(torch.mul(frames, frames, out=windowed), dim=1, out=energy)
        c = cfg.preemphasis_coefficient
        if c != 0:
            torch.mul(frames[:, :-1], c, out=windowed[:, 1:])
            torch.sub(frames[:, 1:], windowed[:, 1:], out=windowed[:, 1:])
            windowed[:, 0] = frames[:, 0] - c * frames[:, 0]
        else:
            windowed.copy_(frames)
        windowed *= self._window
        if not cfg.raw_energy:
            torch.sum(torch.mul(windowed, windowed, out=frames), dim=1, out=energy)
        spectrum = torch.fft.rfft(block.signal[:n], out=block.spectrum[:n])
        re_im = torch.view_as_real(spectrum)
        # re^2 + im^2 as two products and a sum: addcmul fuses them (FMA) and rounds otherwise than
        # the features the reported models were trained on
        power = torch.mul(re_im[..., 0], re_im[..., 0], out=block.power[:n])
        power += torch.mul(re_im[..., 1], re_im[..., 1], out=block.power_im[:n])
        log_energy = energy.clamp_(min=self._energy_floor).log_()
        if self._dct is not None:
            mel = torch.matmul(power, self._mel_banks, out=block.mel[:n])
            torch.matmul(mel.clamp_(min=FLT_EPSILON).log_(), self._dct, out=feats)
            if self._lifter is not None:
                feats *= self._lifter
            if cfg.use_energy:
                feats[:, 0] = log_energy
        else:
            mel = torch.matmul(power, self._mel_banks, out=feats[:, int(cfg.use_energy):])
            mel.clamp_(min=FLT_EPSILON).log_()
            if cfg.use_energy:
                feats[:, 0] = log_energy

    def _flush(self, block: _Block) -> None:
        """Analyse the block's frames and hand their features to their utterances."""
        self._analyse(block)
        for pending, first, row, count in block.placed:
            self._torch.from_numpy(pending.feats)[first:first + count] = block.feats[row:row + count]
            pending.remaining -= count
        block.filled, block.placed = 0, []

    def extract_many(self, items: Iterable[tuple[str, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        """``(utt, features)`` for each ``(utt, samples)`` of ``items``, in order."""
        block = _Block(self._torch, self.BLOCK_FRAMES, self.frame_length, self.fft_size, self.cfg.num_mel_bins,
                       self.dim)
        queue: collections.deque[_Pending] = collections.deque()
        group = 0  # frames since the last block end that followed an utterance (class docstring)
        for utt, samples in items:
            frames = self._frames(samples, utt)
            pending = _Pending(utt, np.empty((frames.shape[0], self.dim), dtype=np.float32), frames.shape[0])
            queue.append(pending)
            first = 0
            while first < frames.shape[0]:
                count = min(frames.shape[0] - first, block.size - block.filled)
                block.frames[block.filled:block.filled + count] = frames[first:first + count]
                block.placed.append((pending, first, block.filled, count))
                block.filled += count
                first += count
                if block.filled == block.size:
                    self._flush(block)
            group += frames.shape[0]
            if group >= block.size:
                if block.filled:
                    self._flush(block)
                group = 0
            while queue and queue[0].remaining == 0:
                done = queue.popleft()
                yield done.utt, done.feats
        if block.filled:
            self._flush(block)
        for done in queue:
            yield done.utt, done.feats

    def __call__(self, samples: np.ndarray, utt: str) -> np.ndarray:
        return next(self.extract_many([(utt, samples)]))[1]


def config_record(cfg: FeatConfig) -> dict:
    """The resolved configuration as a plain dict (what is saved beside the features)."""
    return dataclasses.asdict(cfg)


def fft_size_of(record: dict) -> int:
    """The FFT size Kaldi (and lhotse) use for the frames described by a feature config record."""
    length = int(record["sample_frequency"] * record["frame_length"] / 1000)
    return 1 << (length - 1).bit_length() if record["round_to_power_of_two"] else length


def read_feats_config(data_dir: str | os.PathLike) -> dict | None:
    """The record make_features left in ``data_dir`` (None if there is none)."""
    path = Path(data_dir) / FEATS_CONFIG
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def read_audio_entries(data_dir: Path, utts: Sequence[str]) -> dict[str, tuple[Path, int, object]]:
    """``utt -> (table, line number, entry)`` for the utterances of utt2spk: the wav.scp value, or
    the parsed utt2aug record of an utterance whose audio is rendered (augmentation)."""
    from dropclass_lib.datadir.utt2aug import parse_aug

    tables = [data_dir / name for name in ("wav.scp", "utt2aug") if (data_dir / name).is_file()]
    if not tables:
        raise UserError(f"{data_dir}/wav.scp does not exist (nor utt2aug)")
    entries: dict[str, tuple[Path, int, object]] = {}
    for path in tables:
        for lineno, key, _, line in iter_table(path):
            value: object = line.split(None, 1)[1].strip()
            if path.name == "utt2aug":
                try:
                    value = parse_aug(value)
                except ValueError as err:
                    raise InputFileError(path, lineno, str(err), line) from None
            if key in entries:
                raise InputFileError(path, lineno, f"utterance {key!r} is also in wav.scp", line)
            entries[key] = (path, lineno, value)
    missing = [u for u in utts if u not in entries]
    if missing:
        raise InputFileError(tables[0], None, f"no entry for {len(missing)} utterance(s) of utt2spk, e.g. "
                             f"{missing[0]!r}" + (" (nor in utt2aug)" if len(tables) == 1 and tables[0].name == "wav.scp"
                                                  else " (in neither wav.scp nor utt2aug)" if len(tables) == 2 else ""))
    return entries


def audio_setups(entries: dict[str, tuple[Path, int, object]]) -> list[Path]:
    """The augmentation setups (augment.yaml) the utt2aug entries render with: inputs of every
    feature job besides the utterances' own wav.scp/utt2aug lines."""
    from dropclass_lib.datadir.utt2aug import AugRecord

    setups: dict[str, tuple[Path, int]] = {}
    for path, lineno, entry in entries.values():
        if isinstance(entry, AugRecord):
            for step in entry.steps:
                setups.setdefault(step.setup, (path, lineno))
    for setup, (path, lineno) in setups.items():
        if not Path(setup).is_file():  # named with its utt2aug line, before the job records its inputs
            raise InputFileError(path, lineno, f"config file {setup} does not exist")
    return [Path(s) for s in sorted(setups)]


@dataclass(frozen=True)
class _FeatureJob:
    """One feature job (:func:`make_features`): features of the utterances of its chunk
    (utterance -> ``(table, lineno, entry)``) into its archive, and a log line in
    ``log_dir/make_<name>.JOB.log``."""

    cfg: FeatConfig
    log_dir: Path
    name: str

    def __call__(self, job: ArkJob, entries: dict[str, tuple[Path, int, object]], progress: Progress) -> None:
        import torch

        from dropclass_lib.augment import Renderer

        torch.set_num_threads(1)  # one thread per job: the jobs are the parallelism
        # One renderer per job: it reads each augmentation setup and source list once.
        _extract_job(FeatureExtractor(self.cfg), Renderer(self.cfg.sample_frequency, self.cfg.channel), entries,
                     self.log_dir / f"make_{self.name}.{job.job}.log", job, progress)


def _extract_job(extractor: FeatureExtractor, renderer, entries: dict[str, tuple[Path, int, object]], log_path: Path,
                 job: ArkJob, progress: Progress) -> None:
    """Features of the utterances of ``entries`` into ``job``; their audio comes from ``renderer``
    (an :class:`dropclass_lib.augment.Renderer`: files, commands and rendered augmentations)."""
    cfg = extractor.cfg
    start, seconds = time.time(), 0.0

    def audio():
        nonlocal seconds
        for utt in entries:
            table, lineno, entry = entries[utt]
            try:
                samples = renderer.audio(entry, utt)
            except UserError as err:
                raise InputFileError(table, lineno, str(err)) from None
            if extractor.num_frames(len(samples)) == 0:
                raise InputFileError(table, lineno, f"utterance {utt!r} is too short for one frame ({len(samples)} samples)")
            seconds += len(samples) / cfg.sample_frequency
            yield utt, samples

    def items():
        for utt, feats in extractor.extract_many(audio()):
            progress(1)
            yield utt, feats

    try:
        n = job.write(items())
    except UserError as err:
        with atomic_open(log_path, "w", encoding="utf-8") as f:
            f.write(f"ERROR: {err}\n")
        raise
    wall = time.time() - start
    with atomic_open(log_path, "w", encoding="utf-8") as f:
        f.write(f"{n} utterances, {seconds:.1f} s of audio in {wall:.2f} s "
                f"({seconds / max(wall, 1e-9):.0f}x real time) -> {job.scp}\n")


def make_features(data_dir: str | os.PathLike, feat_dir: str | os.PathLike, cfg: FeatConfig,
                  nj: int = 1, log_dir: str | os.PathLike | None = None, dispatch: Dispatch | None = None) -> None:
    """Compute features for every utterance of ``data_dir`` (Kaldi's make_mfcc.sh / make_fbank.sh).

    The audio is each utterance's wav.scp entry, or for augmented utterances (utt2aug) the clean
    source rendered in the job (:mod:`dropclass_lib.augment`). Writes
    ``feat_dir/raw_<type>_<name>.JOB.{ark,scp,utt2num_frames}`` in ``nj`` jobs, then
    ``data_dir/feats.scp``, ``data_dir/utt2num_frames`` and ``data_dir/feats_config.yaml``.
    A job is redone when its utterances, their wav.scp/utt2aug lines, the feature settings or an
    augmentation setup (:func:`audio_setups`) changed, and kept otherwise; ``feats.scp`` appears only when every
    job succeeded. ``dispatch``: where the jobs run (:class:`dropclass_lib.parallel.Dispatch`).
    """
    data_dir, feat_dir = Path(data_dir), Path(feat_dir)
    log_dir = Path(log_dir) if log_dir is not None else data_dir / "log"
    if (data_dir / "segments").exists():
        raise UserError(f"{data_dir}/segments exists: segmented recordings are not supported; "
                        "cut the audio into one file per utterance")
    utts = list(read_kv(data_dir / "utt2spk", check_sorted=True))
    if not utts:
        raise UserError(f"{data_dir}/utt2spk is empty")
    entries = read_audio_entries(data_dir, utts)
    name = f"{cfg.feat_type}_{data_dir.resolve().name}"
    feat_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    record = config_record(cfg)
    chunks = [{utt: entries[utt] for utt in chunk} for chunk in split_contiguous(utts, nj)]
    if len(chunks) < nj:
        log.warning("only %d utterances: using %d jobs instead of %d", len(utts), len(chunks), nj)

    def run_jobs():
        return run_ark_jobs(feat_dir / f"raw_{name}", chunks, _FeatureJob(cfg, log_dir, name),
                            desc=f"{cfg.feat_type} {data_dir.name}", settings=record, inputs=audio_setups(entries), entry=lambda u: str(entries[u][2]),
                            dispatch=dispatch, log_dir=log_dir)

    if dispatch is not None and dispatch.is_job:  # one dispatched job: its archive, no merged list
        run_jobs()
        return
    outputs = [data_dir / "feats.scp", data_dir / "utt2num_frames", data_dir / FEATS_CONFIG]
    with regenerating(*outputs):  # a failed run leaves no stale list
        jobs, ran = run_jobs()
        n = merge_ark_jobs(jobs, outputs[0], outputs[1])
        with atomic_open(outputs[2], "w", encoding="utf-8") as f:
            yaml.safe_dump(record, f, sort_keys=False)
    log.info("%s features for %d utterances of %s (%s) -> %s",
             cfg.feat_type, n, data_dir, "computed" if ran else "up to date", outputs[0])
