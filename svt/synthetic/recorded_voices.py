"""Real recorded voices, resynthesised onto a melody with the WORLD vocoder.

A second voice source for the synthetic training corpus (the first is the additive synthesis of
`svt.synthetic.singing.render_singing`): recorded Mandarin syllables are analysed with WORLD
(f0, spectral envelope, aperiodicity), their vowels are stretched to the notes' durations, and
the audio is resynthesised with an f0 contour imposed here, so the timbre, consonants and vowel
transitions are those of real people while the pitch is exactly the one annotated.

Sources and licences
--------------------
The syllables come from the Debian package ``gcin-voice`` (Debian main; ``apt-get install
gcin-voice``), installed under ``/usr/share/gcin-voice/ogg/<syllable>/<speaker>.ogg``: one
folder per syllable, named in Bopomofo with an optional tone digit (1200 folders), each holding
Ogg Vorbis files, 44.1 kHz mono, 0.13-0.63 s long. ``/usr/share/doc/gcin-voice/copyright``:

* ``*/3.ogg`` (1200 files, a **male** speaker, f0 about 90-170 Hz):
  "Copyright: 2014 Edward Der-Hua Liu", "License: GPL-3 or LGPL-3".
* ``*/5.ogg`` (1158 files, a **female** speaker, f0 about 180-400 Hz):
  "Copyright: 聲優　羅竺與徵音梅林開發委員會錄音組 (ChionMeilin with the vocal source from Chu Lo)",
  "License: CC-BY-3" (the text is Creative Commons Attribution 3.0 Unported).

The male recordings are tightly cut and noisier (a noise floor 10-20 dB under the vowels); the
female ones are clean, start after ~40 ms of silence and are cut off at ~0.29 s. About 1 % of
the files have no usable voiced vowel (at least 60 ms) and are skipped.

The same renderer sings Festival's diphone voices ("kal", "ked", "lp", "pc"): Festival sings
each syllable once into a bank of the same layout (`svt.synthetic.festival_voices`, files
``<syllable>/<voice>.wav``), and `find_voice_bank` joins that bank's speakers to these.

Both licences allow using the recordings, and making altered versions of them, with no
conditions as long as nothing is redistributed (GPL-3 section 2: "You may make, run and
propagate covered works that you do not convey, without conditions"; CC-BY-3.0 section 3 grants
reproduction and adaptation, and its attribution duties in section 4 apply when the work is
distributed). Both speakers are therefore used for training by default. Conditions start when
audio rendered from them is *distributed*: audio from the female set then needs the credit above,
a link to the licence and a note that it was modified; audio from the male set is then a
modified covered work under GPL-3 (or LGPL-3). Files of any other speaker number have no known
licence and are ignored. Restrict the speakers with ``find_voice_bank(speakers=...)`` where
that matters (``VoiceBank.speakers`` carries the licence and credit of each).

Conventions
-----------
* ``notes`` rows are ``[onset_s, offset_s, midi]``; ``midi`` may be fractional and is the pitch
  that is sung: each note's stable part sits at ``midi`` (plus vibrato around it and a drift of a
  few cents); scoops and portamenti into the note are transitions, not the note's pitch.
* A note's onset is where its **vowel** (the syllable's voiced, high-energy nucleus) starts, as
  annotators of recorded singing mark it: the note starts where the pitched vowel starts. A
  consonant before the vowel precedes the onset by its natural length (at most 0.25 s, shortened
  when the previous note ends too close). The vowel is stretched (or compressed) to end at the
  offset: the vowel's attack and its release keep their natural length, the steadiest part of
  the vowel is stretched.
* Notes whose onset is within ``LEGATO_GAP_S`` (30 ms) of the previous offset are sung legato:
  the voice stays voiced through the change (the next syllable starts with a voiced consonant or
  a vowel, and the pitch glides over 40-150 ms). Some legato pairs are melismas: the same
  syllable continues, only the pitch moves.
* Between detached notes the output is silent (exact zeros away from the consonants and
  releases); noise, reverb and the recording chain are the corpus's business, not this module's.
* Everything random is drawn from the ``rng`` given: the same notes and seed give identical
  audio. WORLD analyses (harvest f0, CheapTrick, D4C at the output rate, after soxr resampling)
  are cached in memory (LRU of `CACHE_SIZE` syllables, ~0.35 MB each), so syllables that
  repeat cost nothing. A 20-s song costs ~0.3 s of CPU when its syllables are cached and
  ~1-2 s when not (harvest, ~0.04-0.08 s per syllable, dominates); pass the `VoiceBank` in
  rather than letting each call look it up again.

Public API
----------
``find_voice_bank``            -> ``VoiceBank`` (syllable files per speaker, with licences)
``analyse_syllable``           -> ``SyllableAnalysis`` (cached WORLD analysis of one file)
``render_voice_bank_singing``  -> float32 mono audio
"""
from __future__ import annotations

import collections
import dataclasses
import threading
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile as sf
from scipy import signal

from svt.errors import SvtUserError
from svt.synthetic.festival_voices import FESTIVAL_VOICES

#: Where Debian's gcin-voice installs the syllables (the other two are alternatives links to it).
DEFAULT_BANK_DIRS: Tuple[str, ...] = (
    "/usr/share/gcin-voice/ogg",
    "/usr/share/gcin/ogg",
    "/usr/share/hime/ogg",
)
AUDIO_SUFFIXES = (".ogg", ".wav", ".flac")

#: Speakers of gcin-voice: file stem -> (speaker name, licence, credit). Other stems are ignored.
GCIN_SPEAKERS: Dict[str, Tuple[str, str, str]] = {
    "3": ("male", "GPL-3 or LGPL-3", "2014 Edward Der-Hua Liu"),
    "5": ("female", "CC-BY-3.0",
          "聲優　羅竺與徵音梅林開發委員會錄音組 (ChionMeilin with the vocal source from Chu Lo)"),
}
#: f0 search range (Hz) of each speaker's analysis; a narrow one is faster and more robust.
F0_RANGES: Dict[str, Tuple[float, float]] = {"3": (60.0, 400.0), "5": (120.0, 800.0)}

FRAME_PERIOD_MS = 5.0
LEGATO_GAP_S = 0.03
MAX_CONSONANT_S = 0.25
F0_FLOOR_HZ, F0_CEIL_HZ = 60.0, 800.0
CACHE_SIZE = 256
#: A syllable needs a vowel of at least this many frames (60 ms) to be used.
MIN_VOWEL_FRAMES = 12

#: Bopomofo initials that are not voiced (stops, affricates, fricatives). A syllable starting
#: with one of them cannot follow a note legato; the others start voiced (m, n, l, r, a vowel).
_UNVOICED_INITIALS = set("ㄅㄆㄈㄉㄊㄍㄎㄏㄐㄑㄒㄓㄔㄕㄗㄘㄙ")
_VOICED_INITIALS = set("ㄇㄋㄌㄖ")
_BOPOMOFO = set(chr(c) for c in range(0x3105, 0x312A))


class VoiceBankNotFoundError(SvtUserError, FileNotFoundError):
    """No gcin-voice syllables where they were looked for."""


# ------------------------------------------------------------------------------ pyworld

_pyworld = None


def load_world():
    """pyworld, imported on first use (the rest of svt does not need it)."""
    global _pyworld
    if _pyworld is None:
        with warnings.catch_warnings():
            # pyworld 0.3.5 reads its version through pkg_resources (setuptools < 81).
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            try:
                import pyworld
            except ImportError as err:
                raise ImportError(
                    f"recorded voices need the WORLD vocoder ({err}); install it with `pip "
                    "install pyworld==0.3.5 'setuptools<81'` (requirements.txt pins both)") \
                    from None
        _pyworld = pyworld
    return _pyworld


# ------------------------------------------------------------------------------ the bank

@dataclasses.dataclass(frozen=True)
class VoiceBankSpeaker:
    """One speaker of the bank: its syllable files, licence and credit."""

    name: str
    licence: str
    credit: str
    files: Tuple[Path, ...]

    @property
    def syllables(self) -> Tuple[str, ...]:
        return tuple(p.parent.name for p in self.files)


@dataclasses.dataclass(frozen=True)
class VoiceBank:
    """The syllable files of a gcin-voice style bank (``<root>/<syllable>/<3|5>.ogg``)."""

    root: Path
    speakers: Tuple[VoiceBankSpeaker, ...]

    @property
    def speaker_names(self) -> Tuple[str, ...]:
        return tuple(s.name for s in self.speakers)

    def speaker(self, name: str) -> VoiceBankSpeaker:
        for s in self.speakers:
            if s.name == name:
                return s
        raise ValueError(f"no speaker {name!r} in the voice bank; it has {self.speaker_names}")


def speaker_table() -> Dict[str, Tuple[str, str, str]]:
    """Every speaker a bank folder may hold, by file stem: (name, licence, credit). gcin-voice's
    two (`GCIN_SPEAKERS`) and the Festival voices that `svt.synthetic.festival_voices` renders
    (stem = name: "kal", "ked", "lp", "pc")."""
    table = dict(GCIN_SPEAKERS)
    table.update({name: (name, v.licence, v.credit) for name, v in FESTIVAL_VOICES.items()})
    return table


def _not_found(where: str, festival: bool) -> VoiceBankNotFoundError:
    if festival:
        return VoiceBankNotFoundError(
            f"no Festival syllables found in {where}; render them first with "
            "svt.synthetic.festival_voices.render_festival_bank (the SingingTranscriber recipe "
            "does, into festival_bank_folder)")
    return VoiceBankNotFoundError(
        f"no gcin-voice syllables found in {where}. Install them with `apt-get install "
        "gcin-voice` (Debian main; they land in /usr/share/gcin-voice/ogg), or pass the folder "
        "that holds <syllable>/3.ogg and <syllable>/5.ogg files.")


def _scan(folder: Union[None, str, Path], table: Dict[str, Tuple[str, str, str]],
          wanted: Optional[set]) -> Optional[VoiceBank]:
    """The speakers of `table` (those `wanted`) with files in `folder`, or None."""
    if folder is None:
        candidates = [Path(d) for d in DEFAULT_BANK_DIRS]
    else:
        candidates = [Path(folder), Path(folder) / "ogg"]
    for root in candidates:
        if not root.is_dir():
            continue
        per_speaker: Dict[str, List[Path]] = {stem: [] for stem in table}
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            for f in sorted(sub.iterdir()):
                if f.suffix.lower() in AUDIO_SUFFIXES and f.stem in per_speaker and f.is_file():
                    per_speaker[f.stem].append(f)
        found = tuple(
            VoiceBankSpeaker(name, licence, credit, tuple(per_speaker[stem]))
            for stem, (name, licence, credit) in table.items()
            if per_speaker[stem] and (wanted is None or name in wanted))
        if found:
            return VoiceBank(root, found)
    return None


def find_voice_bank(folder: Union[None, str, Path, Sequence[Union[None, str, Path]]] = None,
                    speakers: Optional[Sequence[str]] = None) -> VoiceBank:
    """Locate the syllable files and list them per speaker.

    ``folder`` (default: Debian's ``/usr/share/gcin-voice/ogg``) is the folder holding one
    sub-folder per syllable, or a folder with an ``ogg`` sub-folder like that; a list of such
    folders (None: Debian's) joins their speakers, e.g. gcin-voice's and a Festival bank
    (`svt.synthetic.festival_voices.render_festival_bank`). Files named ``3.*`` are gcin-voice's
    male speaker (GPL-3 or LGPL-3), ``5.*`` its female one (CC-BY-3.0), ``kal.*``, ``ked.*``,
    ``lp.*`` and ``pc.*`` the Festival voices (`speaker_table`); other names have no known
    licence and are skipped. ``speakers`` keeps only those names ("male", "female", "kal", ...),
    and each of them must be found. Raises `VoiceBankNotFoundError` (a `FileNotFoundError`) when
    a speaker asked for, or any speaker at all, is missing.
    """
    folders = list(folder) if isinstance(folder, (list, tuple)) else [folder]
    table = speaker_table()
    wanted = None if speakers is None else set(speakers)
    known = {name for name, _, _ in table.values()}
    if wanted is not None and not wanted <= known:
        raise ValueError(f"unknown speakers {sorted(wanted - known)}; choose from {sorted(known)}")
    root, found = None, []
    for item in folders:
        bank = _scan(item, table, wanted)
        if bank is None:
            continue
        root = root or bank.root
        found += [s for s in bank.speakers if s.name not in {f.name for f in found}]
    where = ", ".join(" or ".join(DEFAULT_BANK_DIRS) if item is None else str(item)
                      for item in folders)
    missing = sorted(wanted - {s.name for s in found}) if wanted is not None else []
    if found and not missing:
        return VoiceBank(root, tuple(found))
    error = _not_found(where, bool(set(missing) & set(FESTIVAL_VOICES)))
    if found:  # some of the speakers asked for are there, not all
        error = VoiceBankNotFoundError(f"speakers {missing} are missing (found "
                                       f"{[s.name for s in found]}): {error}")
    raise error


# ------------------------------------------------------------------------------ analysis

@dataclasses.dataclass(frozen=True)
class SyllableAnalysis:
    """WORLD analysis of one recorded syllable, with its parts located (frame indices).

    ``start`` .. ``vowel_start``: the consonant (if any); ``vowel_start`` .. ``steady_start``:
    the vowel's attack; ``steady_start`` .. ``steady_end``: its steadiest part (the one that is
    stretched); ``steady_end`` .. ``voiced_end``: the release (glide, nasal coda, decay).
    ``loud_start`` .. ``loud_end``: the vowel's stretch within 12 dB of its peak (a legato join
    enters and leaves the vowel there, with no dip in level).
    """

    name: str
    sample_rate: int
    log_sp: np.ndarray  # (frames, bins) float32, log power envelope, level-normalised
    ap: np.ndarray  # (frames, bins) float32 aperiodicity
    voiced: np.ndarray  # (frames,) bool
    start: int
    vowel_start: int
    steady_start: int
    steady_end: int
    voiced_end: int
    loud_start: int
    loud_end: int
    natural_f0_hz: float
    usable: bool
    voiced_onset: bool  # the consonant before the vowel is voiced (or there is none)


_cache: "collections.OrderedDict[tuple, SyllableAnalysis]" = collections.OrderedDict()
_cache_lock = threading.Lock()


def clear_analysis_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _fill_short_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    out = mask.copy()
    idx = np.flatnonzero(mask)
    if len(idx) > 1:
        for a, b in zip(idx[:-1], idx[1:]):
            if 1 < b - a <= max_gap + 1:
                out[a:b] = True
    return out


def _run_around(mask: np.ndarray, i: int) -> Tuple[int, int]:
    """The contiguous True run of ``mask`` containing index ``i`` as ``[a, b)``."""
    a = i
    while a > 0 and mask[a - 1]:
        a -= 1
    b = i + 1
    while b < len(mask) and mask[b]:
        b += 1
    return a, b


def _vowel_start(name: str, e_db: np.ndarray, run_a: int, peak: int) -> int:
    """First frame of the vowel in the voiced run ``[run_a, ..)`` that peaks at ``peak``.

    The voiced run starts at the vowel (once it is audible, 30 dB below its peak) unless the
    syllable starts with a voiced consonant (m, n, l, r: Bopomofo initials; for other names, a
    voiced stretch at least 8 dB quieter than the vowel): then the vowel starts at the step
    from the quieter consonant to the louder vowel (the best two-level fit of the energy).
    """
    audible = run_a + int(np.argmax(e_db[run_a:peak + 1] >= e_db[peak] - 30.0))
    if peak - run_a < 6:
        return audible
    e = np.maximum(e_db[run_a:peak + 1], e_db[peak] - 60.0)
    n = len(e)
    c1, c2 = np.cumsum(e), np.cumsum(e ** 2)
    b = np.arange(2, n - 1)  # split: consonant e[:b], vowel e[b:]
    left = c2[b - 1] - c1[b - 1] ** 2 / b
    right = (c2[-1] - c2[b - 1]) - (c1[-1] - c1[b - 1]) ** 2 / (n - b)
    split = int(b[np.argmin(left + right)])
    step = np.mean(e[split:]) - np.mean(e[:split])
    best = run_a + split
    head = name[:1]
    if head in _BOPOMOFO:
        return best if head in _VOICED_INITIALS else audible
    return best if (step >= 8.0 and split >= 4) else audible


def _analyse(path: Path, sr: int) -> SyllableAnalysis:
    import soxr

    pw = load_world()
    x, file_sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    if file_sr != sr:
        x = soxr.resample(x, file_sr, sr)
    x = np.ascontiguousarray(x, dtype=np.float64)
    name = path.parent.name
    fp = FRAME_PERIOD_MS
    festival = FESTIVAL_VOICES.get(path.stem)
    f0_lo, f0_hi = F0_RANGES.get(path.stem, festival.f0_range_hz if festival else
                                 (F0_FLOOR_HZ, F0_CEIL_HZ))
    # Harvest, not dio: dio misses half the voiced frames of the (noisier) male recordings.
    f0, t = pw.harvest(x, sr, f0_floor=f0_lo, f0_ceil=f0_hi, frame_period=fp)
    fft_size = pw.get_cheaptrick_fft_size(sr, F0_FLOOR_HZ)  # the same for both, at any rate
    sp = pw.cheaptrick(x, f0, t, sr, fft_size=fft_size)
    ap = pw.d4c(x, f0, t, sr, fft_size=fft_size)
    n = len(f0)

    # Frame energy from the waveform (10-ms windows centred on the frames).
    hop = sr * fp / 1000.0
    win = int(round(2 * hop))
    pad = np.pad(x, win)
    centres = np.round(np.arange(n) * hop).astype(int) + win
    csum = np.r_[0.0, np.cumsum(pad ** 2)]
    energy = (csum[centres + win // 2] - csum[centres - win // 2]) / win
    e_db = 10 * np.log10(energy + 1e-12)

    # Voiced: harvest found an f0 and D4C finds the band below 1 kHz periodic (harvest alone
    # also calls the end of aspirated consonants voiced).
    low = max(2, int(round(1000.0 / (sr / 2) * (ap.shape[1] - 1))))
    periodic = 10 * np.log10(np.mean(ap[:, :low] ** 2, axis=1) + 1e-12) < -20.0
    voiced = _fill_short_gaps((f0 > 0) & periodic, 3)
    bad = SyllableAnalysis(name, sr, np.zeros((1, sp.shape[1]), np.float32),
                           np.ones((1, sp.shape[1]), np.float32), np.zeros(1, bool),
                           0, 0, 0, 0, 0, 0, 0, 0.0, False, False)
    if voiced.sum() < MIN_VOWEL_FRAMES:
        return bad
    peak = int(np.argmax(np.where(voiced, e_db, -np.inf)))
    run_a, run_b = _run_around(voiced, peak)
    vowel_a = _vowel_start(name, e_db, run_a, peak)
    # The vowel proper (for the level and the steady part): its loud stretch around the peak.
    loud = voiced & (e_db >= e_db[peak] - 12.0)
    loud_a = vowel_a + int(np.argmax(loud[vowel_a:peak + 1]))
    loud[vowel_a:peak + 1] = True
    _, vowel_b = _run_around(loud, peak)
    if vowel_b - vowel_a < MIN_VOWEL_FRAMES:
        return bad
    # Sound starts where the energy first rises to 50 dB below the peak.
    above = np.flatnonzero(e_db[:vowel_a + 1] >= e_db[peak] - 50.0)
    start = int(above[0]) if len(above) else vowel_a
    start = max(start, vowel_a - int(round(MAX_CONSONANT_S * 1000 / fp)))

    # Steadiest window of the vowel: least spectral change (log envelope below 5 kHz).
    log_sp = np.log(np.maximum(sp, 1e-20))
    top = max(8, int(sp.shape[1] * min(1.0, 5000.0 / (sr / 2))))
    flux = np.r_[0.0, np.mean(np.abs(np.diff(log_sp[:, :top], axis=0)), axis=1)]
    length = max(3, int(round(0.4 * (vowel_b - vowel_a))))
    lo, hi = vowel_a + 1, vowel_b - length  # keep at least one attack frame
    window = np.convolve(flux[lo:vowel_b], np.ones(length), "valid")[:hi - lo + 1]
    s0 = lo + int(np.argmin(window))
    s1 = s0 + length

    # Level: the vowel's mean power becomes 1.
    level = float(np.mean(sp[vowel_a:vowel_b].sum(axis=1)))
    log_sp -= np.log(level + 1e-30)
    cons = slice(start, vowel_a)
    voiced_onset = bool(vowel_a - start <= 4 or np.mean(voiced[cons]) >= 0.7)
    vf0 = f0[vowel_a:vowel_b]
    return SyllableAnalysis(
        name=name, sample_rate=sr, log_sp=log_sp.astype(np.float32),
        ap=ap.astype(np.float32), voiced=voiced, start=start, vowel_start=vowel_a,
        steady_start=s0, steady_end=s1, voiced_end=run_b,
        loud_start=min(loud_a, s0),
        loud_end=max(vowel_b, s1),
        natural_f0_hz=float(np.median(vf0[vf0 > 0])) if np.any(vf0 > 0) else 0.0,
        usable=True, voiced_onset=voiced_onset)


def analyse_syllable(path: Union[str, Path], sample_rate: int = 16000) -> SyllableAnalysis:
    """WORLD analysis of one syllable file at ``sample_rate`` (resampled with soxr), cached."""
    path = Path(path)
    key = (str(path.resolve()), int(sample_rate))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    result = _analyse(path, int(sample_rate))
    with _cache_lock:
        _cache[key] = result
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return result


# ------------------------------------------------------------------------------ helpers

def _as_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


def _notes_array(notes) -> np.ndarray:
    arr = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    return arr[np.argsort(arr[:, 0], kind="stable")]


def _smooth_noise(rng: np.random.Generator, n: int, cutoff_hz: float, fs: float) -> np.ndarray:
    """Unit-variance low-pass noise (drift, jitter)."""
    sos = signal.butter(2, min(0.99, cutoff_hz / (fs / 2)), output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n + 400))[400:]
    return x / (np.std(x) + 1e-12)


def _step(t: np.ndarray, a: float, b: float) -> np.ndarray:
    """Raised-cosine step from 0 (t <= a) to 1 (t >= b)."""
    if b <= a:
        return (t >= a).astype(np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * np.clip((t - a) / (b - a), 0.0, 1.0))


def _flags(value, n: int, rng: np.random.Generator, default_p: float, name: str) -> np.ndarray:
    """Per-note booleans from None (default probability), a probability, or a sequence."""
    draws = rng.random(n)  # always drawn, so the other draws do not depend on the form
    if value is None:
        value = default_p
    if np.ndim(value) == 0:
        p = float(value)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        return draws < p
    arr = np.array(value, dtype=bool).reshape(-1)  # a copy: the caller's flags stay
    if len(arr) != n:
        raise ValueError(f"{name} needs one flag per note ({n}), got {len(arr)}")
    return arr


def _warp_vowel(an: SyllableAnalysis, duration_frames: float, n_out: int,
                legato_in: bool = False, legato_out: bool = False) -> np.ndarray:
    """Source frame positions for ``n_out`` output frames of a vowel lasting ``duration_frames``.

    Attack (vowel_start..steady_start) and release (steady_end..voiced_end) keep their natural
    length, the steady part fills the rest (played back and forth when stretched a lot); a
    vowel shorter than attack + release compresses both. A vowel entered (``legato_in``) or left
    (``legato_out``) legato starts or ends at its loud part instead of fading in or out.
    """
    a0 = an.loud_start if legato_in else an.vowel_start
    e = an.loud_end if legato_out else an.voiced_end
    s0, s1 = an.steady_start, an.steady_end
    att, steady, rel = s0 - a0, s1 - s0, e - s1
    k = np.arange(n_out, dtype=np.float64)
    d = max(duration_frames, 1.0)
    if d <= att + rel:
        scale = (att + rel) / d
        return np.minimum(a0 + k * scale, e - 1)
    hold = d - att - rel  # output frames for the steady part
    out = np.empty(n_out)
    m1 = k < att
    out[m1] = a0 + k[m1]
    m2 = (k >= att) & (k < att + hold)
    u = (k[m2] - att) / hold  # 0..1 over the steady part
    stretch = hold / max(steady, 1)
    half_cycles = max(1, int(round(stretch / 3.0)))
    half_cycles += 1 - half_cycles % 2  # odd: ends at steady_end
    ph = u * half_cycles
    frac = ph - np.floor(ph)
    frac = np.where(np.floor(ph) % 2 == 1, 1.0 - frac, frac)
    out[m2] = s0 + frac * steady
    m3 = k >= att + hold
    out[m3] = s1 + (k[m3] - att - hold)
    return np.clip(out, a0, e - 1)


def _gather(an: SyllableAnalysis, pos: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Log envelope and aperiodicity at fractional source frames (linear interpolation)."""
    n = len(an.log_sp)
    pos = np.clip(pos, 0, n - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0)[:, None]
    log_sp = an.log_sp[i0] * (1 - w) + an.log_sp[i1] * w
    ap = an.ap[i0] * (1 - w) + an.ap[i1] * w
    return log_sp, ap


# ------------------------------------------------------------------------------ rendering

@dataclasses.dataclass
class _Span:
    """One syllable in the output: consonant from ``t_cons``, vowel from ``t_on`` to ``t_end``."""

    an: SyllableAnalysis
    first_note: int
    last_note: int
    t_cons: float
    t_on: float
    t_end: float
    level: float


def _choose_lexicon(rng, files: Sequence[Path], size: int) -> List[Path]:
    idx = rng.choice(len(files), size=min(size, len(files)), replace=False)
    return [files[i] for i in np.sort(idx)]


def _vowel_initial(an: SyllableAnalysis) -> bool:
    """Does the syllable start with its vowel (no consonant)?"""
    head = an.name[:1]
    if head in _BOPOMOFO:
        return head not in _VOICED_INITIALS and head not in _UNVOICED_INITIALS
    return an.vowel_start - an.start <= 4


def _may_start_voiced(name: str) -> bool:
    """By its name, can this syllable follow a note legato? (Unknown names: ask the analysis.)"""
    head = name[:1]
    return not (head in _BOPOMOFO and head in _UNVOICED_INITIALS)


def render_voice_bank_singing(
    notes,
    sample_rate: int = 16000,
    rng: Union[None, int, np.random.Generator] = None,
    bank: Optional[VoiceBank] = None,
    duration_s: Optional[float] = None,
    speaker: Optional[str] = None,
    legato: Union[None, Sequence[bool]] = None,
    melisma: Union[None, float, Sequence[bool]] = None,
    vibrato: float = 1.0,
    glide: float = 1.0,
    formant_shift: Optional[float] = None,
    peak: float = 0.5,
) -> np.ndarray:
    """Sing ``notes`` (rows ``[onset_s, offset_s, midi]``) with a recorded voice of ``bank``.

    One syllable per note, drawn from a per-song lexicon of 6-18 syllables (plus 4 that
    start voiced) of one speaker
    (``speaker``: "male"/"female", default drawn). Each note's vowel starts at its onset (a
    consonant before it precedes the onset by its natural length: annotators of recorded singing
    mark the note where the pitched vowel starts) and is stretched to end at its offset.

    ``legato``: one flag per note, "sung legato from the previous note" (voiced through the
    change, across a gap if there is one); default: the note starts within `LEGATO_GAP_S` of
    the previous offset. ``melisma``: flags per note, or the probability (default 0.3) that a
    legato note continues the previous note's syllable (the vowel goes on, only the pitch moves);
    otherwise a legato note gets a new syllable that starts voiced (m, n, l, r or a vowel).

    The f0 contour is imposed: each note's stable part at its ``midi``; a scoop from 0.3-2
    semitones below over 30-120 ms into most notes after a rest; a portamento of 40-150 ms
    between legato notes (both times scaled by ``glide``); vibrato at 5-7 Hz, 0-80 cents deep
    (times ``vibrato``; 0 turns it off), starting 0.15-0.4 s into the note, absent from a quarter
    of the notes; a slow drift of a few cents and a little jitter. ``formant_shift`` moves the
    spectral envelope along frequency by that fraction (vocal-tract length; default drawn in
    +-10 %). Pitches far from the speaker's own range are fine (WORLD keeps the envelope).

    Returns float32 mono audio at ``sample_rate``, ``duration_s`` long (default: last offset +
    0.6 s), peak-normalised to ``peak``; exact zeros away from the notes.
    """
    sr = int(sample_rate)
    notes = _notes_array(notes)
    if duration_s is None:
        duration_s = (notes[-1, 1] if len(notes) else 0.0) + 0.6
    n_samples = int(round(duration_s * sr))
    out = np.zeros(n_samples, dtype=np.float64)
    if len(notes) == 0 or n_samples == 0:
        return out.astype(np.float32)
    pw = load_world()
    segments = _plan(notes, sr, _as_rng(rng), bank if bank is not None else find_voice_bank(),
                     float(duration_s), speaker, legato, melisma, vibrato, glide, formant_shift)
    for seg in segments:
        y = pw.synthesize(seg.f0, seg.sp, seg.ap, sr, FRAME_PERIOD_MS)
        # Exact silence outside the segment's sound: cut where the gain is zero.
        y *= np.interp(np.arange(len(y)) / sr, seg.t - seg.t[0], seg.gain) > 0
        a = int(round(seg.t[0] * sr))
        b = min(n_samples, a + len(y))
        if b > a:
            out[a:b] += y[:b - a]
    mx = float(np.max(np.abs(out)))
    if mx > 0:
        out *= peak / mx
    return out.astype(np.float32)


@dataclasses.dataclass
class _Segment:
    """WORLD parameters of one stretch of singing (notes joined legato), on the song's grid."""

    t: np.ndarray  # frame times (s)
    f0: np.ndarray  # Hz, 0 = unvoiced
    sp: np.ndarray
    ap: np.ndarray
    gain: np.ndarray
    notes: Tuple[int, ...]  # the notes it sings
    syllables: Tuple[str, ...]


def _plan(notes: np.ndarray, sr: int, rng: np.random.Generator, bank: VoiceBank,
          duration_s: float, speaker, legato, melisma, vibrato, glide,
          formant_shift) -> List[_Segment]:
    """Everything but the WORLD synthesis: syllables, timing, f0, envelopes (see the caller)."""
    n = len(notes)
    on, off, midi = notes[:, 0], notes[:, 1], notes[:, 2]
    fp = FRAME_PERIOD_MS / 1000.0

    # ---- per-song and per-note draws (a fixed number, in a fixed order)
    names = bank.speaker_names
    spk_draw = int(rng.integers(len(names)))
    spk = bank.speaker(speaker if speaker is not None else names[spk_draw])
    lexicon = _choose_lexicon(rng, spk.files, int(rng.integers(6, 19)))
    # ... plus a few syllables that can follow a note legato (m, n, l, r or a vowel first).
    voiced_files = [f for f in spk.files if _may_start_voiced(f.parent.name)] or list(spk.files)
    lexicon += [f for f in _choose_lexicon(rng, voiced_files, 4) if f not in lexicon]
    shift_draw = float(rng.uniform(-0.1, 0.1))
    shift = shift_draw if formant_shift is None else float(formant_shift)
    gap_before = np.r_[np.inf, on[1:] - off[:-1]]
    if legato is None:
        legato_f = gap_before <= LEGATO_GAP_S
        rng.random(n)
    else:
        legato_f = _flags(legato, n, rng, 0.0, "legato")
    legato_f[0] = False
    melisma_f = _flags(melisma, n, rng, 0.3, "melisma") & legato_f
    syl_draw = rng.random(n)
    level = rng.uniform(0.6, 1.0, n)
    has_scoop = rng.random(n) < 0.75
    scoop_depth = rng.uniform(0.3, 2.0, n)
    scoop_time = rng.uniform(0.03, 0.12, n) * glide
    port_time = rng.uniform(0.04, 0.15, n) * glide
    vib_on = rng.random(n) >= 0.25
    vib_rate = rng.uniform(5.0, 7.0, n)
    vib_depth = rng.uniform(0.0, 0.8, n) * vibrato * vib_on  # semitones (0-80 cents)
    vib_delay = rng.uniform(0.15, 0.4, n)
    vib_phase = rng.uniform(0.0, 2 * np.pi, n)
    seed_noise = int(rng.integers(2 ** 31))

    # ---- syllables: one per note except melismas
    analyses = [analyse_syllable(p, sr) for p in lexicon]
    usable = [a for a in analyses if a.usable]
    if not usable:  # a lexicon of bad files: try the whole speaker
        usable = [a for a in (analyse_syllable(p, sr) for p in spk.files) if a.usable]
        if not usable:
            raise ValueError(f"no usable syllable (with a voiced vowel) for speaker {spk.name}")
    legato_ok = [a for a in usable if _may_start_voiced(a.name) and a.voiced_onset]
    spans: List[_Span] = []
    for k in range(n):
        if melisma_f[k] and spans:
            spans[-1].last_note = k
            continue
        pool = legato_ok if legato_f[k] else usable
        if not pool:  # nothing starts voiced: continue the vowel instead
            spans[-1].last_note = k
            continue
        an = pool[int(syl_draw[k] * len(pool)) % len(pool)]
        spans.append(_Span(an, k, k, on[k], on[k], off[k], float(level[k])))

    # ---- place consonants and ends: joined spans hand over voiced; detached ones leave room
    for j, s in enumerate(spans):
        natural = (s.an.vowel_start - s.an.start) * fp
        prev = spans[j - 1] if j else None
        if prev is not None and legato_f[s.first_note]:
            limit = 0.4 * (off[prev.last_note] - on[prev.last_note])
            cons = 0.0 if _vowel_initial(s.an) else min(natural, 0.08, limit)
            s.t_cons = s.t_on - cons
            prev.t_end = s.t_cons
        else:
            earliest = 0.0 if prev is None else off[prev.last_note] + 0.02
            s.t_cons = max(s.t_on - natural, earliest, 0.0)
        s.t_end = max(s.t_end, off[s.last_note])
    for j, s in enumerate(spans):  # a legato successor's consonant sets the end
        if j + 1 < len(spans) and legato_f[spans[j + 1].first_note]:
            s.t_end = spans[j + 1].t_cons

    # ---- segments: runs of spans joined legato, each synthesised in one WORLD call
    segments: List[List[int]] = []
    for j, s in enumerate(spans):
        if j and legato_f[s.first_note]:
            segments[-1].append(j)
        else:
            segments.append([j])

    bins = spans[0].an.log_sp.shape[1]
    freq_pos = np.arange(bins) / (1.0 + shift)  # envelope(f) <- envelope(f / (1 + shift))
    f_i0 = np.clip(np.floor(freq_pos).astype(int), 0, bins - 1)
    f_i1 = np.clip(f_i0 + 1, 0, bins - 1)
    f_w = np.clip(freq_pos - f_i0, 0.0, 1.0)
    # Drift and jitter on the song's frame grid (normalised over the whole song, not a segment).
    noise_rng = np.random.default_rng(seed_noise)
    n_grid = int(np.ceil(duration_s / fp)) + int(np.ceil(1.0 / fp)) + 8
    wander = (0.04 * _smooth_noise(noise_rng, n_grid, 0.5, 1.0 / fp)  # drift, ~4 cents
              + 0.02 * _smooth_noise(noise_rng, n_grid, 20.0, 1.0 / fp))  # jitter, ~2 cents
    tail = 0.03

    planned: List[_Segment] = []
    for seg in segments:
        first, last = spans[seg[0]], spans[seg[-1]]
        i0 = max(0, int(np.floor(first.t_cons / fp)) - 2)
        i1 = int(np.ceil((last.t_end + tail) / fp)) + 2
        t = np.arange(i0, i1) * fp
        m = len(t)
        log_sp = np.full((m, bins), -60.0)
        ap = np.ones((m, bins))
        voiced = np.zeros(m, dtype=bool)
        gain = np.zeros(m)
        for j in seg:
            s = spans[j]
            an = s.an
            cons_idx = np.flatnonzero((t >= s.t_cons - 1e-9) & (t < s.t_on - 1e-9))
            vow_idx = np.flatnonzero((t >= s.t_on - 1e-9) & (t < s.t_end - 1e-9))
            if len(cons_idx):
                pos = an.vowel_start - (s.t_on - t[cons_idx]) / fp
                ls, a = _gather(an, pos)
                log_sp[cons_idx], ap[cons_idx] = ls, a
                voiced[cons_idx] = an.voiced[np.clip(np.round(pos).astype(int), 0,
                                                     len(an.voiced) - 1)]
                gain[cons_idx] = s.level
            if len(vow_idx):
                legato_in = bool(legato_f[s.first_note]) and _vowel_initial(an)
                legato_out = s.last_note + 1 < n and bool(legato_f[s.last_note + 1])
                pos = _warp_vowel(an, (s.t_end - s.t_on) / fp, len(vow_idx), legato_in,
                                  legato_out)
                ls, a = _gather(an, pos)
                log_sp[vow_idx], ap[vow_idx] = ls, a
                voiced[vow_idx] = True
                gain[vow_idx] = s.level
        # Smooth level changes over ~25 ms, fade in at the start and out at the last offset.
        gain = np.convolve(np.pad(gain, 2, mode="edge"), np.ones(5) / 5, "valid")
        gain *= _step(t, first.t_cons - fp, first.t_cons + 0.01)
        gain *= 1.0 - _step(t, last.t_end - 0.02, last.t_end + 0.005)
        voiced &= gain > 0.05

        # ---- f0 contour (fractional MIDI)
        ks = list(range(first.first_note, last.last_note + 1))
        k0 = ks[0]
        pitch = np.full(m, midi[k0])
        if has_scoop[k0]:
            d = min(scoop_time[k0], 0.25 * (off[k0] - on[k0]))
            pitch -= scoop_depth[k0] * (1.0 - _step(t, on[k0], on[k0] + d))
        for k in ks[1:]:
            dur = min(off[k - 1] - on[k - 1], off[k] - on[k])
            T = min(port_time[k], 0.4 * dur)
            c = 0.5 * (off[k - 1] + on[k]) if on[k] > off[k - 1] else on[k]
            pitch += (midi[k] - midi[k - 1]) * _step(t, c - 0.35 * T, c + 0.65 * T)
        for k in ks:
            if vib_depth[k] <= 0:
                continue
            tau = t - on[k]
            ramp = np.clip((tau - vib_delay[k]) / 0.2, 0.0, 1.0)
            ramp *= np.clip((off[k] - 0.05 - t) / 0.05, 0.0, 1.0)
            pitch += vib_depth[k] * ramp * np.sin(2 * np.pi * vib_rate[k] * tau + vib_phase[k])
        pitch += wander[np.clip(np.arange(i0, i1), 0, n_grid - 1)]
        f0 = np.where(voiced, 440.0 * 2.0 ** ((pitch - 69.0) / 12.0), 0.0)

        # ---- envelope: shift along frequency, apply the gain
        if shift != 0.0:
            log_sp = log_sp[:, f_i0] * (1 - f_w) + log_sp[:, f_i1] * f_w
            ap = ap[:, f_i0] * (1 - f_w) + ap[:, f_i1] * f_w
        sp = np.exp(log_sp) * np.maximum(gain, 1e-4)[:, None] ** 2
        planned.append(_Segment(
            t=t, f0=np.ascontiguousarray(f0), sp=np.ascontiguousarray(sp),
            ap=np.ascontiguousarray(np.clip(ap, 0.0, 1.0)), gain=gain, notes=tuple(ks),
            syllables=tuple(spans[j].an.name for j in seg)))
    return planned
