"""Data augmentation rendered where features are computed: Kaldi voxceleb-v2 kinds (MUSAN, RIRs),
kinds that need no download, and speed perturbation.

An augmented data directory holds no audio. It has ``augment.yaml`` (an :class:`AugmentSetup`:
the settings and the absolute paths of the data directories it draws from) and, per
utterance, a ``utt2aug`` line (:mod:`dropclass_lib.datadir.utt2aug`): the clean source entry and
the augmentation step(s) to apply. Feature extraction renders every utterance through one
:class:`Renderer` per job, which loads each setup and its source lists once (not per utterance)
and draws each step from a generator seeded with (setup seed, input utterance id, kind): the same
utterance always gets the same augmentation, and every utterance its own draw.

Kinds (one augmented copy ``UTT-KIND`` per kind, same speaker):

* ``reverb``: Kaldi's simulated RIRs (RIRS_NOISES): a room set chosen by weight, an RIR
  uniformly within it;
* ``sim_reverb``: the project's own synthetic RIR (exponentially decaying noise after a direct
  path, :func:`dropclass_lib.corpora.channel.room_impulse_response`), rt60 and direct-to-
  reverberant ratio uniform within configured ranges; no download;
* ``noise`` (foreground): from t = 0, a random MUSAN noise at a random SNR from ``noise_snrs``, the
  next one starting ``noise_interval`` seconds after it ends, until the utterance is covered;
* ``music`` (background): one MUSAN music file, repeated to the utterance length, SNR from ``music_snrs``;
* ``babble`` (background): ``babble_speakers`` (a random count) distinct MUSAN speech files, each
  repeated to the length and each at its own SNR from ``babble_snrs``;
* ``self_babble``: as babble, from utterances of the clean data directory itself, each of another
  speaker than the utterance's (and of a different one each); no download;
* ``self_noise``: coloured Gaussian noise (power spectrum 1/f^tilt, tilt uniform in a range, as
  :func:`dropclass_lib.corpora.channel.coloured_noise`) at an SNR from ``self_noise_snrs``;
* ``sim_channel``: another microphone and line: a random band-pass and peaking-EQ response
  (:class:`dropclass_lib.corpora.channel.MicrophoneResponse`, corners and gains within the
  ``sim_channel_*`` ranges), the output rescaled to the input power; no download.

Both reverberations shift the convolution to the RIR's direct path (its peak), cut it to the input
length and rescale it to the input power (Kaldi's wav-reverberate). SNRs are relative to the power
of the whole utterance before the step. These kinds keep the length, so the clean utterance's VAD
applies to its copies (Kaldi v2 reuses it the same way). The ``speed`` step (sox ``speed``:
resampling, tempo and pitch together) changes the length; it is made by
:func:`perturb_speed`, not as a copy kind, because each speed is a new set of speakers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dropclass_lib.audio import read_audio
from dropclass_lib.augment_signal import add_signal, change_speed, power, reverberate
from dropclass_lib import provenance
from dropclass_lib.config import load_config, save_config, to_dict
from dropclass_lib.datadir import DataDir, read_utt_table
from dropclass_lib.datadir.utt2aug import AugRecord, AugStep, parse_aug
from dropclass_lib.errors import UserError

KINDS = ("reverb", "sim_reverb", "noise", "music", "babble", "self_babble", "self_noise", "sim_channel")
SPEED = "speed"
SAMPLE_RATE = 16000
SETUP_FILE = "augment.yaml"


def _check_range(name: str, values: list[float], low: float, strict_low: bool) -> None:
    ok = len(values) == 2 and values[0] <= values[1] and (values[0] > low if strict_low else values[0] >= low)
    if not ok:
        raise UserError(f"{name} must be [low, high] with {low:g} {'<' if strict_low else '<='} low <= high, got {values}")


@dataclass
class AugmentConfig:
    """Augmentation settings (Kaldi voxceleb v2 values as defaults); documented key by key in
    conf/augment.yaml."""

    seed: int = 777
    kinds: list[str] = field(default_factory=lambda: ["reverb", "noise", "music", "babble"])
    num_aug_utts: int = 1000000
    noise_snrs: list[float] = field(default_factory=lambda: [15.0, 10.0, 5.0, 0.0])
    noise_interval: float = 1.0
    music_snrs: list[float] = field(default_factory=lambda: [15.0, 10.0, 8.0, 5.0])
    babble_snrs: list[float] = field(default_factory=lambda: [20.0, 17.0, 15.0, 13.0])
    babble_speakers: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 7])
    rir_weights: list[float] = field(default_factory=lambda: [0.5, 0.5])
    sim_rt60: list[float] = field(default_factory=lambda: [0.2, 0.8])
    sim_direct_ratio_db: list[float] = field(default_factory=lambda: [-3.0, 12.0])
    self_babble_snrs: list[float] = field(default_factory=lambda: [20.0, 17.0, 15.0, 13.0])
    self_babble_speakers: list[int] = field(default_factory=lambda: [3, 4, 5, 6, 7])
    self_noise_snrs: list[float] = field(default_factory=lambda: [15.0, 10.0, 5.0, 0.0])
    self_noise_tilt: list[float] = field(default_factory=lambda: [0.0, 2.0])
    sim_channel_low_cut_hz: list[float] = field(default_factory=lambda: [60.0, 350.0])
    sim_channel_high_cut_hz: list[float] = field(default_factory=lambda: [3000.0, 7800.0])
    sim_channel_eq_bands: int = 3
    sim_channel_eq_gain_db: float = 8.0
    speed_factor: float = 1.0

    def validate(self) -> None:
        known = (*KINDS, SPEED)
        bad = [k for k in self.kinds if k not in known]
        if bad or not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise UserError(f"kinds must be distinct values among {', '.join(known)}, got {self.kinds}")
        if self.num_aug_utts < 1:
            raise UserError(f"num_aug_utts must be >= 1, got {self.num_aug_utts}")
        for name in ("noise_snrs", "music_snrs", "babble_snrs", "babble_speakers", "rir_weights",
                     "self_babble_snrs", "self_babble_speakers", "self_noise_snrs"):
            if not getattr(self, name):
                raise UserError(f"{name} must not be empty")
        if self.noise_interval < 0:
            raise UserError(f"noise_interval must be >= 0, got {self.noise_interval}")
        for name in ("babble_speakers", "self_babble_speakers"):
            if min(getattr(self, name)) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if min(self.rir_weights) < 0 or sum(self.rir_weights) <= 0:
            raise UserError(f"rir_weights must be >= 0 and not all 0, got {self.rir_weights}")
        _check_range("sim_rt60", self.sim_rt60, 0.0, strict_low=True)
        _check_range("sim_direct_ratio_db", self.sim_direct_ratio_db, -np.inf, strict_low=True)
        _check_range("self_noise_tilt", self.self_noise_tilt, 0.0, strict_low=False)
        _check_range("sim_channel_low_cut_hz", self.sim_channel_low_cut_hz, 0.0, strict_low=True)
        _check_range("sim_channel_high_cut_hz", self.sim_channel_high_cut_hz, self.sim_channel_low_cut_hz[1],
                     strict_low=True)
        if self.sim_channel_high_cut_hz[1] >= SAMPLE_RATE / 2:
            raise UserError(f"sim_channel_high_cut_hz must stay below {SAMPLE_RATE / 2:g} Hz, got {self.sim_channel_high_cut_hz}")
        if self.sim_channel_eq_bands < 0 or self.sim_channel_eq_gain_db < 0:
            raise UserError("sim_channel_eq_bands and sim_channel_eq_gain_db must not be negative")
        if not 0.1 <= self.speed_factor <= 10:
            raise UserError(f"speed_factor must be within [0.1, 10], got {self.speed_factor}")


@dataclass
class AugmentSetup:
    """What rendering needs: the settings and the source data directories (absolute paths).
    Written as ``augment.yaml`` into the augmented data directory."""

    config: AugmentConfig = field(default_factory=AugmentConfig)
    clean_dir: str = ""                  # the data dir that was augmented (self_babble draws from it)
    noise_dir: str = ""                  # MUSAN noise data dir (wav.scp + utt2dur)
    music_dir: str = ""                  # MUSAN music data dir
    speech_dir: str = ""                 # MUSAN speech data dir (babble)
    rir_dirs: list[str] = field(default_factory=list)  # one data dir per room set

    def validate(self) -> None:
        self.config.validate()
        needed = {"noise": "noise_dir", "music": "music_dir", "babble": "speech_dir", "self_babble": "clean_dir"}
        for kind in self.config.kinds:
            name = needed.get(kind)
            if name is None:
                continue
            d = getattr(self, name)
            if not d:
                raise UserError(f"augmentation kind {kind!r} needs {name}")
            listed = "utt2spk" if kind == "self_babble" else "wav.scp"
            if not (Path(d) / listed).is_file():
                raise UserError(f"augmentation source {d}/{listed} does not exist ({name} of kind {kind!r})")
        if "reverb" in self.config.kinds:
            if len(self.rir_dirs) != len(self.config.rir_weights):
                raise UserError(f"{len(self.rir_dirs)} rir dirs but {len(self.config.rir_weights)} rir_weights")
            for d in self.rir_dirs:
                if not (Path(d) / "wav.scp").is_file():
                    raise UserError(f"augmentation source {d}/wav.scp does not exist (prepare the RIRs first)")


def load_setup(path: str | Path) -> AugmentSetup:
    return load_config(path, AugmentSetup)


@dataclass
class Addition:
    """One additive signal scaled to ``snr`` dB, from sample ``offset``; ``repeat`` tiles it.

    The signal is ``samples`` when generated, otherwise the audio of ``source`` (a wav.scp value
    or a utt2aug record), named ``label`` in messages.
    """

    snr: float
    offset: int
    repeat: bool
    source: str | AugRecord | None = None
    label: str = ""
    samples: np.ndarray | None = None


@dataclass
class Plan:
    """The augmentation drawn for one utterance: an impulse response, additive signals or a speed."""

    kind: str
    rir: str | np.ndarray | None = None  # a wav.scp value, or the samples of a simulated RIR
    additions: list[Addition] = field(default_factory=list)
    speed: float | None = None
    response: object | None = None  # sim_channel: a MicrophoneResponse


class _Pool:
    """The utterances of one source data directory: ids (sorted), their audio entries, durations
    and, for the clean data directory, speakers with their utterances."""

    def __init__(self, data_dir: str, need_dur: bool = False, by_speaker: bool = False):
        d = Path(data_dir)
        self.entries: dict[str, str | AugRecord] = {}
        if (d / "wav.scp").is_file():
            self.entries.update(read_utt_table(d / "wav.scp", "wav.scp"))
        if (d / "utt2aug").is_file():
            for utt, value in read_utt_table(d / "utt2aug", "utt2aug").items():
                try:
                    self.entries[utt] = parse_aug(value)
                except ValueError as err:
                    raise UserError(f"{d}/utt2aug: utterance {utt!r}: {err}") from None
        if not self.entries:
            raise UserError(f"{d}/wav.scp is empty or missing")
        self.ids = sorted(self.entries)
        self.dur = read_utt_table(d / "utt2dur", "utt2dur") if need_dur else None
        if by_speaker:
            self.utt2spk = read_utt_table(d / "utt2spk", "utt2spk")
            spk2utt: dict[str, list[str]] = {}
            for utt in self.ids:
                if utt not in self.utt2spk:
                    raise UserError(f"{d}/utt2spk: utterance {utt!r} of its audio tables has no speaker")
                spk2utt.setdefault(self.utt2spk[utt], []).append(utt)
            self.speakers = sorted(spk2utt)
            self.spk_index = {s: i for i, s in enumerate(self.speakers)}
            self.spk2utt = spk2utt


class Sources:
    """The source lists of one setup, each read at its first use and then kept (a reverb-only
    job reads no MUSAN list; a job reads each list once however many utterances it renders)."""

    def __init__(self, setup: AugmentSetup, rate: int = SAMPLE_RATE):
        self.setup = setup
        self.rate = rate
        self._pools: dict[tuple[str, bool, bool], _Pool] = {}

    def pool(self, data_dir: str, need_dur: bool = False, by_speaker: bool = False) -> _Pool:
        key = (data_dir, need_dur, by_speaker)
        if key not in self._pools:
            self._pools[key] = _Pool(data_dir, need_dur, by_speaker)
        return self._pools[key]


def utterance_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the setup seed and ``key``."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _uniform(rng: np.random.Generator, low_high: list[float]) -> float:
    return float(rng.uniform(low_high[0], low_high[1]))


def draw_plan(kind: str, utt: str, num_samples: int, sources: Sources) -> Plan:
    """Draw augmentation ``kind`` for utterance ``utt`` (of the setup's clean data directory, at
    that point ``num_samples`` long); seeded by (seed, ``UTT-KIND``), the copy's id."""
    setup, cfg = sources.setup, sources.setup.config
    rng = utterance_rng(cfg.seed, f"{utt}-{kind}")
    if kind == SPEED:
        return Plan(kind, speed=cfg.speed_factor)
    if kind == "reverb":
        weights = np.asarray(cfg.rir_weights, dtype=float)
        pool = sources.pool(setup.rir_dirs[rng.choice(len(weights), p=weights / weights.sum())])
        return Plan(kind, rir=pool.entries[pool.ids[rng.integers(len(pool.ids))]])
    if kind == "sim_reverb":
        from dropclass_lib.corpora.channel import room_impulse_response  # imports scipy.signal: ~1 s

        rt60, ratio = _uniform(rng, cfg.sim_rt60), _uniform(rng, cfg.sim_direct_ratio_db)
        return Plan(kind, rir=room_impulse_response(rng, sources.rate, rt60, ratio))
    if kind == "noise":
        pool = sources.pool(setup.noise_dir, need_dur=True)
        additions, t = [], 0.0
        while t * sources.rate < num_samples:
            noise = pool.ids[rng.integers(len(pool.ids))]
            if noise not in pool.dur:
                raise UserError(f"{setup.noise_dir}/utt2dur has no duration for noise {noise!r}")
            additions.append(Addition(float(rng.choice(cfg.noise_snrs)), int(round(t * sources.rate)), False,
                                      pool.entries[noise], noise))
            step = pool.dur[noise] + cfg.noise_interval
            if step <= 0:
                raise UserError(f"{setup.noise_dir}/utt2dur: noise {noise!r} has duration 0 and noise_interval is 0")
            t += step
        return Plan(kind, additions=additions)
    if kind == "music":
        pool = sources.pool(setup.music_dir)
        music = pool.ids[rng.integers(len(pool.ids))]
        return Plan(kind, additions=[Addition(float(rng.choice(cfg.music_snrs)), 0, True, pool.entries[music], music)])
    if kind == "babble":
        pool = sources.pool(setup.speech_dir)
        count = min(int(rng.choice(cfg.babble_speakers)), len(pool.ids))
        chosen = [pool.ids[i] for i in rng.choice(len(pool.ids), size=count, replace=False)]
        return Plan(kind, additions=[Addition(float(rng.choice(cfg.babble_snrs)), 0, True, pool.entries[u], u)
                                     for u in chosen])
    if kind == "self_babble":
        return Plan(kind, additions=_draw_self_babble(rng, utt, sources))
    if kind == "self_noise":
        from dropclass_lib.corpora.channel import coloured_noise

        tilt = _uniform(rng, cfg.self_noise_tilt)
        snr = float(rng.choice(cfg.self_noise_snrs))
        return Plan(kind, additions=[Addition(snr, 0, False, samples=coloured_noise(rng, num_samples, tilt))])
    if kind == "sim_channel":
        from dropclass_lib.corpora.channel import MicrophoneResponse

        return Plan(kind, response=MicrophoneResponse.draw(rng, sources.rate, cfg.sim_channel_low_cut_hz,
                                                           cfg.sim_channel_high_cut_hz, cfg.sim_channel_eq_bands,
                                                           cfg.sim_channel_eq_gain_db))
    raise UserError(f"unknown augmentation kind {kind!r} (known: {', '.join((*KINDS, SPEED))})")


def _draw_self_babble(rng: np.random.Generator, utt: str, sources: Sources) -> list[Addition]:
    """One utterance each of ``count`` distinct speakers other than ``utt``'s, from the clean dir."""
    cfg, clean = sources.setup.config, sources.setup.clean_dir
    pool = sources.pool(clean, by_speaker=True)
    if utt not in pool.utt2spk:
        raise UserError(f"{clean}/utt2spk: no utterance {utt!r} (the self_babble source utterance)")
    own = pool.spk_index[pool.utt2spk[utt]]
    others = len(pool.speakers) - 1
    if others < 1:
        raise UserError(f"{clean}: self_babble needs utterances of more than one speaker")
    count = min(int(rng.choice(cfg.self_babble_speakers)), others)
    picks = rng.choice(others, size=count, replace=False)
    additions = []
    for i in picks:
        spk = pool.speakers[i + (i >= own)]  # skip the utterance's own speaker
        utts = pool.spk2utt[spk]
        other = utts[rng.integers(len(utts))]
        additions.append(Addition(float(rng.choice(cfg.self_babble_snrs)), 0, True, pool.entries[other], other))
    return additions


class Renderer:
    """Reads the audio of wav.scp values and renders that of utt2aug records.

    One renderer serves a whole feature job: each setup file and each source list is read once,
    at its first use. ``channel`` is the channel taken from multi-channel speech (the feature
    option); noises and impulse responses are mono.
    """

    def __init__(self, rate: int = SAMPLE_RATE, channel: int | None = None):
        self.rate = rate
        self.channel = channel
        self._sources: dict[str, Sources] = {}

    def sources(self, setup_path: str) -> Sources:
        if setup_path not in self._sources:
            self._sources[setup_path] = Sources(load_setup(setup_path), self.rate)
        return self._sources[setup_path]

    def audio(self, entry: str | AugRecord, utt: str) -> np.ndarray:
        """The samples of utterance ``utt`` (float32 mono): its wav.scp value read, or its
        utt2aug record's source read and every step applied."""
        if isinstance(entry, str):
            return read_audio(entry, utt, expected_rate=self.rate, channel=self.channel)[0]
        x = self.audio(entry.source, utt)
        for step in entry.steps:
            x = self.render(x, draw_plan(step.kind, step.input_utt, len(x), self.sources(step.setup)), utt)
        return x

    def render(self, x: np.ndarray, plan: Plan, utt: str = "") -> np.ndarray:
        """Apply ``plan`` to the samples ``x``."""
        if plan.speed is not None:
            return change_speed(x, plan.speed)
        if plan.response is not None:
            y = plan.response(x)
            return (y * np.sqrt(power(x) / max(power(y), 1e-20))).astype(np.float32)
        if plan.rir is not None:
            rir = plan.rir if isinstance(plan.rir, np.ndarray) else read_audio(plan.rir, utt, expected_rate=self.rate)[0]
            return reverberate(x, rir)
        y = x.astype(np.float64)
        p_signal = power(x)
        for a in plan.additions:
            if a.samples is not None:
                noise = a.samples
            elif plan.kind == "self_babble":  # utterances of the speech data itself
                noise = self.audio(a.source, a.label)
            else:
                noise = read_audio(a.source, a.label, expected_rate=self.rate)[0]
            add_signal(y, noise, a.snr, a.offset, a.repeat, p_signal)
        return y.astype(np.float32)


def _source_record(dd: DataDir, utt: str, where: Path) -> AugRecord | str:
    """The clean entry of ``utt``: its wav.scp value, or its utt2aug record (already rendered)."""
    if dd.wav is not None and utt in dd.wav:
        return dd.wav[utt]
    if dd.aug is not None and utt in dd.aug:
        try:
            return parse_aug(dd.aug[utt])
        except ValueError as err:
            raise UserError(f"{where}/utt2aug: utterance {utt!r}: {err}") from None
    raise UserError(f"{where}: utterance {utt!r} is in neither wav.scp nor utt2aug")


def _with_step(entry: AugRecord | str, step: AugStep) -> AugRecord:
    return entry.then(step) if isinstance(entry, AugRecord) else AugRecord((step,), entry)


def _write_setup(setup: AugmentSetup, clean_dir: Path, out_dir: Path) -> str:
    """Validate ``setup`` for ``clean_dir``, write it as ``out_dir/augment.yaml``; its absolute path."""
    clean_dir, out_dir = clean_dir.resolve(), Path(out_dir)
    if out_dir.resolve() == clean_dir:
        raise UserError(f"the augmented data dir must differ from the clean one ({clean_dir})")
    setup.clean_dir = str(clean_dir)
    setup.validate()
    out_dir.mkdir(parents=True, exist_ok=True)
    setup_path = str((out_dir / SETUP_FILE).resolve())
    if len(setup_path.split()) != 1:
        raise UserError(f"{setup_path}: the augmented data dir's path must not contain spaces (utt2aug fields)")
    save_config(setup, setup_path)
    return setup_path


def make_augmented_dir(clean_dir: str | Path, setup: AugmentSetup, out_dir: str | Path) -> DataDir:
    """Write ``out_dir/augment.yaml`` and return the augmented data directory (not yet written).

    Of all (utterance, kind) copies of the data directory ``clean_dir``, ``num_aug_utts`` chosen
    at random (all if fewer) are kept, with ids ``UTT-KIND``, the clean speaker, a utt2aug record
    and, when the clean directory has them, its vad.scp and utt2dur entries (lengths are kept).
    """
    clean = DataDir.load(clean_dir)
    cfg = setup.config
    if SPEED in cfg.kinds:
        raise UserError("kind 'speed' changes lengths and makes new speakers: use utils/perturb_data_dir_speed.py")
    setup_path = _write_setup(setup, Path(clean_dir), Path(out_dir))
    utts = clean.utts()
    pool = [(u, k) for u in utts for k in cfg.kinds]
    rng = np.random.default_rng(cfg.seed)
    chosen = sorted(rng.choice(len(pool), size=min(cfg.num_aug_utts, len(pool)), replace=False))
    out = DataDir(utt2spk={}, aug={}, vad={} if clean.vad is not None else None,
                  utt2dur={} if clean.utt2dur is not None else None)
    for i in chosen:
        utt, kind = pool[i]
        aug = f"{utt}-{kind}"
        if aug in clean.utt2spk:
            raise UserError(f"augmented id {aug!r} is already an utterance of the clean data")
        out.utt2spk[aug] = clean.utt2spk[utt]
        out.aug[aug] = _with_step(_source_record(clean, utt, Path(clean_dir)), AugStep(kind, utt, setup_path)).format()
        for table in ("vad", "utt2dur"):
            if getattr(clean, table) is not None:
                getattr(out, table)[aug] = getattr(clean, table)[utt]
    return out


AUGMENT_RECORD = ".augment.made_from.json"


def _source_tables(setup: AugmentSetup, clean_dir: Path) -> list[Path]:
    """The files an augmented directory is made from: the clean directory's tables that it copies
    from (its features are not among them) and its own augment.yaml, which its utt2aug records may
    point to, and the lists of the MUSAN/RIR sources."""
    names = ("utt2spk", "wav.scp", "utt2aug", "vad.scp", "utt2dur", SETUP_FILE)
    paths = [clean_dir / n for n in names if (clean_dir / n).is_file()]
    for d in (setup.noise_dir, setup.music_dir, setup.speech_dir, *setup.rir_dirs):
        if d:
            paths += [Path(d) / n for n in ("wav.scp", "utt2dur") if (Path(d) / n).is_file()]
    return paths


def augment_data_dir(clean_dir: str | Path, setup: AugmentSetup, out_dir: str | Path) -> int | None:
    """Write the augmented copy of ``clean_dir`` (:func:`make_augmented_dir`) to ``out_dir`` under the
    freshness rule of :mod:`dropclass_lib.provenance` (record ``out_dir/.augment.made_from.json``):
    kept, with the features computed on it since, while the settings, the source directories and
    their tables are unchanged; rewritten otherwise. Returns the number of augmented utterances,
    None when the directory was up to date."""
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    setup.clean_dir = str(clean_dir.resolve())
    with provenance.stage(out_dir, to_dict(setup), _source_tables(setup, clean_dir),
                          outputs=("utt2spk", "utt2aug", SETUP_FILE), what=f"augmented data {out_dir}",
                          record_name=AUGMENT_RECORD) as st:
        if st.fresh:
            return None
        aug = make_augmented_dir(clean_dir, setup, out_dir)
        aug.write(out_dir)
    return len(aug.utt2spk)


def speed_prefix(factor: float) -> str:
    """Kaldi's id prefix of a speed-perturbed copy: ``sp0.9-``, ``sp1.1-``, ``sp1.0-``."""
    return f"sp{factor:g}{'.0' if float(factor).is_integer() else ''}-"


def perturb_speed(src_dir: str | Path, factor: float, out_dir: str | Path) -> DataDir:
    """The speed-perturbed copy of the data directory ``src_dir`` (not yet written), as Kaldi's
    utils/data/perturb_data_dir_speed.sh: utterance and speaker ids prefixed ``sp<FACTOR>-``
    (every speed a new set of speakers), utt2dur divided by the factor, feats/vad/utt2num_frames
    left out (their lengths change), trials and enrol.list left out (a training-set tool).

    The audio is rendered (utt2aug, ``out_dir/augment.yaml`` with kind ``speed``); factor 1 gives
    a plain renamed copy (wav.scp entries kept as they are).
    """
    src = DataDir.load(src_dir)
    prefix = speed_prefix(factor)
    config = AugmentConfig(kinds=[SPEED], speed_factor=float(factor))
    config.validate()
    out = DataDir(utt2spk={prefix + u: prefix + s for u, s in src.utt2spk.items()})
    if src.utt2dur is not None:
        out.utt2dur = {prefix + u: round(d / factor, 4) for u, d in src.utt2dur.items()}
    if factor == 1:
        if Path(out_dir).resolve() == Path(src_dir).resolve():
            raise UserError(f"the perturbed data dir must differ from the source ({src_dir})")
        (Path(out_dir) / SETUP_FILE).unlink(missing_ok=True)  # nothing is rendered
        for table in ("wav", "aug"):
            if getattr(src, table) is not None:
                setattr(out, table, {prefix + u: v for u, v in getattr(src, table).items()})
        return out
    setup_path = _write_setup(AugmentSetup(config=config), Path(src_dir), Path(out_dir))
    out.aug = {prefix + u: _with_step(_source_record(src, u, Path(src_dir)), AugStep(SPEED, u, setup_path)).format()
               for u in src.utts()}
    return out
