"""A ctypes binding to libespeak-ng (as bundled by the ``espeakng-loader`` wheel).

The library keeps global state, so there is one :class:`Espeak` per process. Custom voice
variants (the synthetic speakers) are written into a private *overlay* of ``espeak-ng-data``:
a directory whose entries are symbolic links to the bundled data, except ``voices/!v`` which
also holds our variant files. Nothing in the installed package is modified.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
from pathlib import Path

import numpy as np

from dropclass_lib.errors import UserError

# Values from espeak-ng's speak_lib.h.
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE, PARAM_WORDGAP = 1, 2, 3, 4, 7
EE_OK, EE_NOT_FOUND = 0, 2

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def bundled_paths() -> tuple[str, str]:
    """``(library_path, espeak-ng-data path)`` of the espeakng-loader wheel."""
    try:
        import espeakng_loader
    except ImportError:
        raise UserError("the espeakng-loader package is not installed (run install.sh)") from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def make_overlay(data_path: str | os.PathLike, overlay_root: str | os.PathLike) -> Path:
    """Build ``overlay_root/espeak-ng-data`` mirroring ``data_path`` through symlinks, with a
    real (writable) ``voices/!v`` directory; return the variants directory. Idempotent, and
    safe when several processes build the same overlay at once."""
    src = Path(data_path)
    dst = Path(overlay_root) / "espeak-ng-data"
    variants = dst / "voices" / "!v"
    variants.mkdir(parents=True, exist_ok=True)
    links = [(e, dst / e.name) for e in src.iterdir() if e.name != "voices"]
    links += [(e, dst / "voices" / e.name) for e in (src / "voices").iterdir() if e.name != "!v"]
    links += [(e, variants / e.name) for e in (src / "voices" / "!v").iterdir()]
    for target, link in links:
        try:
            link.symlink_to(target)
        except FileExistsError:
            pass
    return variants


class Espeak:
    """The synthesiser of this process, initialised on an overlay of the bundled data."""

    _instance: "Espeak | None" = None

    def __init__(self, overlay_root: str | os.PathLike):
        if Espeak._instance is not None:
            raise RuntimeError("libespeak-ng is initialised once per process: use Espeak.get()")
        lib_path, data_path = bundled_paths()
        self.variants_dir = make_overlay(data_path, overlay_root)
        self._lib = ctypes.CDLL(lib_path)
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._libc = ctypes.CDLL(None)
        self._lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._root = os.fsencode(Path(overlay_root))
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # kept referenced: C holds the pointer
        self.sample_rate = self._initialise()
        Espeak._instance = self

    def _initialise(self) -> int:
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self._root, 0)
        if rate <= 0:
            raise UserError(f"libespeak-ng failed to initialise on {self._root.decode()}")
        self._lib.espeak_SetSynthCallback(self._callback)
        return rate

    @classmethod
    def get(cls, overlay_root: str | os.PathLike) -> "Espeak":
        """The process's instance on ``overlay_root``: created on first use, re-initialised on
        another overlay when asked for one (a forked process inherits its parent's instance)."""
        inst = cls._instance
        if inst is None:
            return cls(overlay_root)
        if inst._root != os.fsencode(Path(overlay_root)):
            inst.variants_dir = make_overlay(bundled_paths()[1], overlay_root)
            inst._root = os.fsencode(Path(overlay_root))
            inst._initialise()
        return inst

    def _on_audio(self, wav, numsamples, events) -> int:
        if wav and numsamples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0

    def write_variant(self, name: str, text: str) -> str:
        """Write voice-variant file ``name`` (espeak-ng voice-file syntax) into the overlay."""
        if not _VARIANT_NAME.match(name):
            raise ValueError(f"bad variant name {name!r}")
        (self.variants_dir / name).write_text(text, encoding="utf-8")
        return name

    def synth(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int, word_gap: int = 0,
              seed: int = 0) -> np.ndarray:
        """Speak ``text`` with ``voice`` (``"en-us+variant"``); return int16 samples at ``sample_rate``.

        ``rate`` in words per minute (80-450), ``pitch`` and ``pitch_range`` 0-100 (relative to
        the voice's own), ``word_gap`` in units of 10 ms; ``seed`` seeds the engine's noise.

        The wave generator keeps state from one call to the next that no API call resets (the
        flutter phase, the roughness cycle counter, filter memories), so the same arguments would
        give different audio depending on what was spoken before. Each call therefore runs in a
        forked child of this process, which always starts from the state left by initialisation:
        the result depends only on the arguments (a fork costs a few milliseconds).
        """
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesise, send status + samples, exit without cleanup
            code = 1
            try:
                os.close(read_fd)
                status, samples = self._synth_here(text, voice, rate, pitch, pitch_range, word_gap, seed)
                with os.fdopen(write_fd, "wb") as out:
                    out.write(struct.pack("<i", status) + samples.tobytes())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as inp:
            payload = inp.read()
        _, wait_status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0 or len(payload) < 4:
            raise RuntimeError(f"espeak-ng synthesis process failed for voice {voice!r}")
        (status,) = struct.unpack("<i", payload[:4])
        if status == EE_NOT_FOUND:
            raise UserError(f"espeak-ng has no voice {voice!r}")
        if status != EE_OK:
            raise RuntimeError(f"espeak-ng synthesis failed with status {status}")
        return np.frombuffer(payload[4:], dtype=np.int16).copy()

    def _synth_here(self, text, voice, rate, pitch, pitch_range, word_gap, seed) -> tuple[int, np.ndarray]:
        lib = self._lib
        status = lib.espeak_SetVoiceByName(voice.encode())
        if status != EE_OK:
            return EE_NOT_FOUND, np.zeros(0, dtype=np.int16)
        for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range),
                             (PARAM_WORDGAP, word_gap), (PARAM_VOLUME, 100)):
            lib.espeak_SetParameter(param, int(value), 0)
        lib.espeak_ng_SetRandSeed(seed)
        self._libc.srand(ctypes.c_uint(seed & 0xFFFFFFFF))
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        out = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        return status, out
