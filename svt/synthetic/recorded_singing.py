"""A synthetic corpus that sounds like *recorded* singing, for training the shipped transcriber.

`svt.synthetic.singing` renders clean, in-tune studio stems; recordings of real (often amateur)
singers differ from them in ways a transcriber must survive. Each difference is one switch of
`CorpusStyle`, so its effect can be measured on real recordings (see the recipe
`SingingTranscriber/README.md`):

* ``intonation``: a per-song tuning offset (up to half a semitone), a slow drift of the tuning
  over the song, per-note pitch errors (mostly small, sometimes a third of a semitone or more).
  The annotation keeps the pitch that was *sung* (fractional MIDI), as annotators of recorded
  singing do.
* ``performance``: tempo 50-170 bpm, repeated notes, staccato or legato songs, singers from bass
  to child with breathy to pressed voices, weak to wide vibrato, quick or slow portamento.
* ``recording``: microphone colour (high-pass, peaks and dips, sometimes a telephone-like band),
  room reverb from dry to hall (reverberation time 0.15-1.5 s, its level ``room_reverb_gain``
  times the dry voice's), background noise (white/pink/brown, mains hum) at 15-50 dB SNR,
  slow level changes, and an overall level from quiet to near clipping.
* ``detached``: most notes separated by a short silence (median ~0.1 s), as sung syllables are
  (measured on SSVD: 9 % of note pairs are legato, against 24-41 % in the corpora without it),
  and a noisier recording chain (noise at 10-40 dB SNR; SSVD's noise floor sits ~30 dB below
  the singing).
* ``accompaniment_probability``: the share of songs mixed with a synthetic backing track at
  ``accompaniment_snr_db`` (vocals to accompaniment).
* ``voice_bank_share``: the share of songs sung by a *recorded* voice
  (`svt.synthetic.recorded_voices`: syllables of Debian's gcin-voice resynthesised onto the
  melody with WORLD) instead of additive synthesis; ``voice_bank_speakers`` picks the speakers
  (default the female set, CC-BY-3.0) and ``voice_bank_folder`` the bank (default Debian's);
  the speakers may include Festival's diphone voices ("kal", "ked", "lp", "pc":
  `svt.synthetic.festival_voices`), whose syllables are rendered into ``festival_bank_folder``.
* ``pitch_gestures``: the share of notes whose pitch also moves *inside* the note (an approach
  from below, an overshoot after a step, a correction, a fall at the end, a dip, a drift), which
  annotators of recorded singing do not mark as new notes; additive voices only.
* ``voiced_gaps``: the share of short rests (15-300 ms) the voice sings through, quieter and
  on a voiced consonant (a nasal, lateral or approximant murmur), while its pitch moves to the
  next note; the annotation keeps the rest, so each note starts where its pitch has arrived and
  its vowel begins, as on SSVD; additive voices only.
* ``articulations``: how songs are sung, as `(name, share)` pairs (``detached`` applies when this
  is empty): ``detached`` (sight-singing: a short silence after most notes), ``legato`` (notes of
  a phrase joined, the voice gliding from one pitch to the next without a break), ``melismatic``
  (fast legato runs of short notes, as on one syllable), ``fast`` (quick detached notes) and
  ``held`` (slow songs of long notes with wide vibrato). `CorpusStyle.mixed()` has all of them:
  a transcriber trained on one style learns that style's cues (SSVD-like detached singing alone
  taught the shipped model to cut notes at breaks and consonants, so it merged legato notes).

`make_recorded_corpus` writes `<id>.wav` (16 kHz mono) and `<id>.txt` (`onset offset midi`, the
SSVD layout, which `svt.datasets.ssvd` reads) and is seeded per song: the same seed gives the same
files, and song k does not depend on how many songs are asked for.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy import signal

from svt.audio import write_audio
from svt.errors import SvtUserError
from svt.fileio import write_text_atomic
from svt.synthetic.singing import (
    VOICE_RANGES,
    VOICES,
    generate_melody,
    render_accompaniment,
    render_singing,
)

SAMPLE_RATE = 16000


@dataclasses.dataclass(frozen=True)
class CorpusStyle:
    """Which departures from clean studio singing the corpus has (all on by default)."""

    intonation: bool = True
    performance: bool = True
    recording: bool = True
    detached: bool = True
    accompaniment_probability: float = 0.35
    accompaniment_snr_db: tuple = (-3.0, 15.0)
    articulations: tuple = ()
    voice_bank_share: float = 0.0
    voice_bank_speakers: tuple = ("female",)
    voice_bank_folder: Optional[str] = None
    festival_bank_folder: Optional[str] = None
    #: The room's reverberation, in amplitude relative to the dry voice, is drawn uniformly from
    #: this range (0.6: 4.4 dB below the direct sound; 1.0: as loud as it).
    room_reverb_gain: tuple = (0.05, 0.6)
    #: The share of notes whose pitch also moves inside the note, as a real voice's does
    #: (approaches, overshoots, corrections, falls, dips, drifts:
    #: `svt.synthetic.singing.pitch_gestures`), without a new note in the annotation. Additive
    #: voices only; 0 keeps every song as it was.
    pitch_gestures: float = 0.0
    #: The share of short rests (15-300 ms) that the voice sings through, quieter and on a voiced
    #: consonant, while its pitch moves to the next note; the annotation keeps the rest, as SSVD's
    #: annotators do
    #: (`svt.synthetic.singing.voiced_gaps`). Additive voices only; 0 keeps every song as it was.
    voiced_gaps: float = 0.0

    def __post_init__(self):
        for name in ("pitch_gestures", "voiced_gaps"):
            share = getattr(self, name)
            if not (isinstance(share, (int, float)) and 0.0 <= share <= 1.0):
                raise ValueError(f"CorpusStyle.{name} is a share of the notes, from 0 to 1; "
                                 f"got {share!r}")

    #: Articulations and their shares in `mixed()`.
    MIXED_ARTICULATIONS = (("detached", 0.35), ("legato", 0.3), ("melismatic", 0.12),
                           ("fast", 0.11), ("held", 0.12))

    @classmethod
    def mixed(cls) -> "CorpusStyle":
        """Every style of singing (see the module docstring), recorded as `CorpusStyle()` is."""
        return cls(articulations=cls.MIXED_ARTICULATIONS)

    @classmethod
    def clean(cls) -> "CorpusStyle":
        """The old corpus: in tune, studio stems, no accompaniment."""
        return cls(intonation=False, performance=False, recording=False, detached=False,
                   accompaniment_probability=0.0)


#: Corpus styles by name (the recipe's `corpus_style`): every articulation, SSVD-like detached
#: singing (corpus v2; the shipped weights' corpus, docs/shipped-model.md) and the old in-tune
#: studio stems.
CORPUS_STYLES = {"mixed": CorpusStyle.mixed, "detached": CorpusStyle, "clean": CorpusStyle.clean}


# ------------------------------------------------------------------------------ the score

#: Tempo ranges (bpm) of the articulations that need their own.
ARTICULATION_TEMPI = {"melismatic": (130.0, 220.0), "fast": (150.0, 220.0), "held": (40.0, 70.0)}


def choose_articulation(rng, style: CorpusStyle) -> str:
    """One song's articulation drawn from `style.articulations` ("detached" when empty)."""
    if not style.articulations:
        return "detached"
    names = [name for name, _ in style.articulations]
    shares = np.array([share for _, share in style.articulations], dtype=np.float64)
    return names[int(rng.choice(len(names), p=shares / shares.sum()))]


def join_legato(notes, max_gap: float = 0.25) -> np.ndarray:
    """Notes of a phrase joined: each ends 5 ms before the next onset where the rest before it is
    shorter than `max_gap` (breath rests between phrases stay). A repeated pitch keeps its break:
    a singer re-articulates it, and a join would leave nothing in the audio to mark the onset."""
    out = notes.copy()
    if len(notes) < 2:
        return out
    gap = notes[1:, 0] - notes[:-1, 1]
    join = (gap < max_gap) & (np.abs(np.diff(notes[:, 2])) > 0.5)
    out[:-1, 1] = np.where(join, notes[1:, 0] - 0.005, notes[:-1, 1])
    return out


def _performed_melody(rng, duration_s, voice, style: CorpusStyle,
                      articulation: str = "detached") -> np.ndarray:
    tempo = float(rng.uniform(50.0, 170.0)) if style.performance else None
    if style.performance and articulation in ARTICULATION_TEMPI:
        tempo = float(rng.uniform(*ARTICULATION_TEMPI[articulation]))
    notes = generate_melody(rng, duration_s, voice=voice, tempo_bpm=tempo)
    if not style.performance or len(notes) == 0:
        return notes
    rows = []
    for on, off, midi in notes:
        # Repeated notes (same pitch, a short break between): their onsets carry no pitch cue.
        if off - on > 0.45 and rng.random() < 0.18:
            cut = on + (off - on) * float(rng.uniform(0.35, 0.65))
            gap = float(rng.uniform(0.02, 0.1))
            rows += [(on, cut - gap / 2, midi), (cut + gap / 2, off, midi)]
        else:
            rows.append((on, off, midi))
    notes = np.array(rows)
    if style.articulations:
        if articulation in ("legato", "melismatic"):
            return join_legato(notes)
        if articulation == "held":
            return join_legato(notes) if rng.random() < 0.5 else _detached(rng, notes)
        return _detached(rng, notes)  # detached and fast
    if style.detached:
        return _detached(rng, notes)
    articulation = rng.random()
    if articulation < 0.25:  # staccato: notes shortened, silence in between
        notes[:, 1] = notes[:, 0] + (notes[:, 1] - notes[:, 0]) * rng.uniform(0.45, 0.8,
                                                                                len(notes))
    elif articulation < 0.5:  # legato: notes joined up to the next onset
        nxt = np.r_[notes[1:, 0], np.inf]
        joined = np.minimum(nxt - 0.005, notes[:, 1] + 0.08)
        notes[:, 1] = np.maximum(notes[:, 1], joined)
    return notes


def _detached(rng, notes) -> np.ndarray:
    """Most notes end a short silence before the next one; a few are joined (legato)."""
    out = notes.copy()
    next_onset = np.r_[notes[1:, 0], np.inf]
    gaps = np.clip(rng.lognormal(np.log(0.1), 0.6, len(notes)), 0.02, 0.4)
    legato = rng.random(len(notes)) < 0.1
    end = np.where(legato, next_onset - 0.005, next_onset - gaps)
    end = np.minimum(end, notes[:, 0] + (notes[:, 1] - notes[:, 0]) * 1.3 + 0.05)
    out[:, 1] = np.maximum(end, notes[:, 0] + 0.08)
    out[:-1, 1] = np.minimum(out[:-1, 1], notes[1:, 0] - 0.005)
    return out


def _sung_pitches(rng, notes, duration_s) -> np.ndarray:
    """Pitches as an amateur sings them: tuning offset + drift + per-note errors."""
    t = notes[:, 0] / max(duration_s, 1e-6)
    tuning = float(rng.uniform(-0.5, 0.5))
    drift = float(rng.uniform(-0.6, 0.6)) * t
    errors = rng.normal(0.0, 0.12, len(notes))
    wild = rng.random(len(notes)) < 0.1
    errors[wild] = rng.normal(0.0, 0.4, int(wild.sum()))
    out = notes.copy()
    out[:, 2] = notes[:, 2] + tuning + drift + errors
    return out


def _timbre(rng, articulation: str = "detached") -> dict:
    timbre = {
        "tilt": float(rng.uniform(0.6, 2.2)),
        "aspiration": float(np.exp(rng.uniform(np.log(0.01), np.log(0.25)))),
        "vibrato_scale": float(rng.choice([0.0, 0.3, 0.7, 1.0, 1.5])),
        "glide_scale": float(rng.uniform(0.5, 3.0)),
        "formant_scale": float(rng.uniform(0.9, 1.12)),
    }
    if articulation == "held":  # an operatic or crooning singer: wide, regular vibrato
        timbre["vibrato_scale"] = float(rng.uniform(1.2, 2.0))
    elif articulation in ("melismatic", "fast"):  # quick notes leave no time for slow glides
        timbre["glide_scale"] = float(rng.uniform(0.4, 1.0))
    return timbre


# ------------------------------------------------------------------------------ the recording

def _biquad_peak(f0, gain_db, q, sr):
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * f0 / sr
    alpha = np.sin(w) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w), 1 - alpha / a]
    return np.array(b) / den[0], np.array(den) / den[0]


def _microphone(rng, x, sr):
    out = signal.sosfilt(signal.butter(2, float(rng.uniform(50, 200)), "highpass", fs=sr,
                                       output="sos"), x)
    for _ in range(int(rng.integers(1, 4))):
        b, a = _biquad_peak(float(np.exp(rng.uniform(np.log(200), np.log(6000)))),
                            float(rng.uniform(-8, 8)), float(rng.uniform(0.5, 3)), sr)
        out = signal.lfilter(b, a, out)
    if rng.random() < 0.15:  # telephone-like band
        out = signal.sosfilt(signal.butter(4, [300, 3400], "bandpass", fs=sr, output="sos"), out)
    elif rng.random() < 0.4:
        out = signal.sosfilt(signal.butter(2, float(rng.uniform(3500, 7500)), "lowpass", fs=sr,
                                           output="sos"), out)
    return out


def room_impulse_response(rng: np.random.Generator, rt60_s: float, sample_rate: int) -> np.ndarray:
    """The reverberant part of a room's impulse response, unscaled: Gaussian noise whose level
    falls by 60 dB over `rt60_s` (the room's reverberation time), low-passed a little (walls
    absorb high frequencies first), silent for its first 5 ms so the direct sound comes first.
    Draws `rt60_s * sample_rate` normal values from `rng`."""
    n = int(rt60_s * sample_rate)
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)  # exp(-6.9) = -60 dB in amplitude
    ir = signal.lfilter([1 - 0.6], [1, -0.6], ir)
    ir[: int(0.005 * sample_rate)] = 0.0
    return ir


#: The reverberation times (seconds) `add_room_reverb` accepts: from a damped booth to a cathedral.
RT60_RANGE = (0.05, 10.0)


def _with_reverberation(x, ir, level):
    """`x` plus its convolution with `ir` scaled to energy `level ** 2` (white input: the
    reverberation's energy is the input's times the response's), cut to `x`'s length."""
    ir = ir * (level / (np.sqrt(np.sum(ir ** 2)) + 1e-12))
    return x + signal.fftconvolve(x, ir)[: len(x)]


def add_room_reverb(wav, sample_rate: int, rt60_s: float, direct_to_reverberant_db: float,
                    rng: np.random.Generator) -> np.ndarray:
    """`wav` as heard in a room: the dry signal plus its convolution with
    `room_impulse_response`, scaled so that the dry signal's energy is `direct_to_reverberant_db`
    above the reverberation's (0 dB: as much reverberation as direct sound, a singer in a hall or
    a heavily reverberated vocal; the training corpus's rooms span about +4 to +26 dB). Same
    length as `wav`; the tail after its end is cut. Seeded through `rng`."""
    if not (np.isfinite(rt60_s) and RT60_RANGE[0] <= rt60_s <= RT60_RANGE[1]):
        raise ValueError(f"rt60_s must be a reverberation time from {RT60_RANGE[0]:g} to "
                         f"{RT60_RANGE[1]:g} s, got {rt60_s!r}")
    if not np.isfinite(direct_to_reverberant_db):
        raise ValueError("direct_to_reverberant_db must be a finite number of dB, got "
                         f"{direct_to_reverberant_db!r}")
    ir = room_impulse_response(rng, rt60_s, sample_rate)
    return _with_reverberation(np.asarray(wav, dtype=np.float64), ir,
                               10 ** (-direct_to_reverberant_db / 20))


def _room(rng, x, sr, reverb_gain=(0.05, 0.6)):
    rt60 = float(np.exp(rng.uniform(np.log(0.15), np.log(1.5))))
    ir = room_impulse_response(rng, rt60, sr)
    return _with_reverberation(x, ir, float(rng.uniform(*reverb_gain)))


def _coloured_noise(rng, n, sr):
    kind = rng.integers(4)
    white = rng.standard_normal(n)
    if kind == 0:
        return white
    if kind == 3:  # mains hum and its harmonics
        t = np.arange(n) / sr
        base = 50.0 if rng.random() < 0.5 else 60.0
        return sum(np.sin(2 * np.pi * base * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    spectrum = np.fft.rfft(white)
    freqs = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    spectrum /= freqs ** (0.5 if kind == 1 else 1.0)  # pink or brown
    return np.fft.irfft(spectrum, n)


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x)))) + 1e-12


def _mix_at_snr(signal_, other, snr_db):
    return signal_ + other * (_rms(signal_) / _rms(other)) * 10 ** (-snr_db / 20)


def _level_changes(rng, x, sr):
    n_points = max(2, int(len(x) / sr / 3))
    gains_db = rng.uniform(-6, 6, n_points)
    envelope = np.interp(np.arange(len(x)), np.linspace(0, len(x) - 1, n_points), gains_db)
    return x * 10 ** (envelope / 20)


def render_recorded_song(seed, duration_s: float, style: CorpusStyle = CorpusStyle(),
                         voice: Optional[str] = None):
    """`(notes, audio, info)` of one song: notes `[onset, offset, sung_midi]`, 16-kHz float32
    audio peaking at -1..-20 dBFS, and a dict describing how it was made."""
    score_ss, voice_ss, record_ss, accomp_ss = np.random.SeedSequence(seed).spawn(4)
    score_rng, voice_rng = np.random.default_rng(score_ss), np.random.default_rng(voice_ss)
    record_rng = np.random.default_rng(record_ss)
    voice = voice or VOICES[int(score_rng.integers(len(VOICES)))]
    # Drawn from its own stream, so corpora without articulations stay as they were.
    articulation = (choose_articulation(np.random.default_rng([*np.atleast_1d(seed), 7]), style)
                    if style.articulations else "detached")
    notes = _performed_melody(score_rng, duration_s, voice, style, articulation)
    if style.intonation and len(notes):
        notes = _sung_pitches(score_rng, notes, duration_s)
    timbre = None
    if style.performance:
        timbre = _timbre(voice_rng, articulation) if style.articulations else _timbre(voice_rng)
    # No draws here: songs without gestures or sung-through rests stay byte-identical.
    if style.pitch_gestures > 0:
        timbre = {**(timbre or {}), "pitch_gestures": float(style.pitch_gestures)}
    if style.voiced_gaps > 0:
        timbre = {**(timbre or {}), "voiced_gaps": float(style.voiced_gaps)}
    recorded = (style.voice_bank_share > 0 and np.random.default_rng(
        [*np.atleast_1d(seed), 8]).random() < style.voice_bank_share)
    if recorded:
        from svt.synthetic.recorded_voices import render_voice_bank_singing

        vocals = render_voice_bank_singing(
            notes, SAMPLE_RATE, voice_rng, voice_bank(style), duration_s,
            melisma=0.7 if articulation == "melismatic" else None,
            vibrato=(timbre or {}).get("vibrato_scale", 1.0),
            glide=(timbre or {}).get("glide_scale", 1.0))
    else:
        vocals = render_singing(notes, SAMPLE_RATE, voice_rng, voice, duration_s, timbre=timbre)
    audio = vocals.astype(np.float64)
    info = {"voice": "recorded" if recorded else voice, "timbre": timbre,
            "accompaniment_snr_db": None, "articulation": articulation}
    if style.recording:
        audio = _room(record_rng, _microphone(record_rng, audio, SAMPLE_RATE), SAMPLE_RATE,
                      style.room_reverb_gain)
        audio = _level_changes(record_rng, audio, SAMPLE_RATE)
        noise_snr = float(record_rng.uniform(10, 40) if style.detached
                          else record_rng.uniform(15, 50))
        audio = _mix_at_snr(audio, _coloured_noise(record_rng, len(audio), SAMPLE_RATE),
                            noise_snr)
        info["noise_snr_db"] = noise_snr
    if record_rng.random() < style.accompaniment_probability and len(notes):
        lo, hi = style.accompaniment_snr_db
        snr = float(record_rng.uniform(lo, hi))
        # The backing is in the written key: the singer's tuning error shows against it.
        written = notes.copy()
        written[:, 2] = np.round(written[:, 2])
        accomp = render_accompaniment(written, SAMPLE_RATE, np.random.default_rng(accomp_ss),
                                      duration_s)
        audio = _mix_at_snr(audio, accomp.astype(np.float64), snr)
        info["accompaniment_snr_db"] = snr
    peak_db = float(record_rng.uniform(-20, -1)) if style.recording else -6.0
    audio *= 10 ** (peak_db / 20) / (np.max(np.abs(audio)) + 1e-12)
    return notes, audio.astype(np.float32), info


@functools.lru_cache(maxsize=4)
def _voice_bank(folder, festival_folder, speakers):
    from svt.synthetic.festival_voices import split_speakers
    from svt.synthetic.recorded_voices import find_voice_bank

    others, festival = split_speakers(speakers)
    folders = [folder] if others else []  # gcin-voice's speakers
    if festival:
        if festival_folder is None:
            raise ValueError(f"the Festival voices {festival} need festival_bank_folder (render "
                             "it with svt.synthetic.festival_voices.render_festival_bank)")
        folders.append(festival_folder)
    return find_voice_bank(folders, list(speakers))


def voice_bank(style: CorpusStyle):
    """The recorded voices `style` asks for (looked up once per process)."""
    return _voice_bank(style.voice_bank_folder, style.festival_bank_folder,
                       tuple(style.voice_bank_speakers))


def write_ssvd_notes(path, notes) -> None:
    """`onset<TAB>offset<TAB>midi` lines, the SSVD note-file layout."""
    lines = [f"{on:.6f}\t{off:.6f}\t{midi:.4f}" for on, off, midi in np.asarray(notes)]
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def usable_cpu_count() -> int:
    """The CPU cores this process may run on: its affinity where the system has one (a
    container's or `taskset`'s share of a larger machine), else every core; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _write_song(out: Path, song: str, seed: int, k: int, seconds: float,
                style: CorpusStyle) -> str:
    """Render song k and write it; the notes file last, its presence marking a complete song."""
    notes, audio, _ = render_recorded_song([seed, k], seconds, style)
    write_audio(out / f"{song}.wav", audio, SAMPLE_RATE)
    write_ssvd_notes(out / f"{song}.txt", notes)
    return song


def make_recorded_corpus(out_dir, num_songs: int, seed: int = 0, duration_range=(12.0, 30.0),
                         style: CorpusStyle = CorpusStyle(), progress: bool = True,
                         workers: int = 1) -> Path:
    """Write `num_songs` songs as `<id>.wav` + `<id>.txt` into `out_dir` (existing complete songs
    are kept, so an interrupted run resumes) and `corpus.json` describing the corpus.

    `workers` > 1 renders songs in that many processes. Each song is seeded on its own, so the
    files are the same for any number of workers. The processes are started with
    multiprocessing's "spawn" method, which imports the calling script again: call this from a
    script under `if __name__ == "__main__":` (as the recipe and this module's command line do)."""
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    description = {"num_songs": num_songs, "seed": seed, "duration_range": list(duration_range),
                   "style": json.loads(json.dumps(dataclasses.asdict(style))),
                   "sample_rate": SAMPLE_RATE,
                   "voices": {v: list(r) for v, r in VOICE_RANGES.items()}}
    _check_same_corpus(out, description)
    if style.voice_bank_share > 0:
        voice_bank(style)  # a missing bank or pyworld stops the run before any song is written
    todo = []
    for k in range(num_songs):
        song = f"song{k:05d}"
        if not ((out / f"{song}.wav").exists() and (out / f"{song}.txt").exists()):
            seconds = float(np.random.default_rng([seed, k, 1]).uniform(*duration_range))
            todo.append((out, song, seed, k, seconds, style))
    done = num_songs - len(todo)

    def report():
        if progress and (done % 50 == 0 or done == num_songs):
            print(f"{done}/{num_songs} songs", flush=True)

    if workers == 1 or len(todo) < 2:
        for task in todo:
            _write_song(*task)
            done += 1
            report()
    else:
        import concurrent.futures
        import multiprocessing

        # spawn, not fork: the parent may hold torch's thread pools, which a fork can deadlock.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)),
                                                    mp_context=context) as pool:
            futures = [pool.submit(_write_song, *task) for task in todo]
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()  # a song that failed stops the run with its error
                    done += 1
                    report()
            except concurrent.futures.BrokenExecutor:
                raise CorpusWorkerError(
                    f"{out}: a process rendering songs stopped before it finished (its error is "
                    "printed above). If make_recorded_corpus(workers > 1) was called from a "
                    "script, put the call under `if __name__ == \"__main__\":` (new processes "
                    "import the script again), or use workers=1") from None
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    write_text_atomic(out / "corpus.json", json.dumps(description, indent=2) + "\n")
    return out


class CorpusWorkerError(SvtUserError, RuntimeError):
    """A process rendering songs for `make_recorded_corpus` stopped."""


class CorpusMismatchError(SvtUserError, ValueError):
    """A corpus folder holds songs made with other settings."""


def _check_same_corpus(out: Path, description: dict) -> None:
    """Songs already in `out` are kept only if they were made the same way: a folder generated
    with another seed, style or length range would silently mix two corpora."""
    path = out / "corpus.json"
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # unreadable: rewritten at the end; the songs' own files decide what is kept
    if isinstance(previous.get("style"), dict):
        # Settings added since a corpus was made default to what it was made with.
        defaults = json.loads(json.dumps(dataclasses.asdict(CorpusStyle())))
        previous["style"] = {**defaults, **previous["style"]}
    differing = sorted(key for key in ("seed", "duration_range", "style", "sample_rate")
                       if previous.get(key) != description[key])
    if differing:
        raise CorpusMismatchError(
            f"{out}: the songs there were generated with other settings ({', '.join(differing)} "
            f"differ, see {path}); use another corpus folder or remove this one")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--num-songs", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clean", action="store_true", help="the old studio-stem corpus")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes rendering songs (the files are the same for any number)")
    args = parser.parse_args(argv)
    style = CorpusStyle.clean() if args.clean else CorpusStyle()
    make_recorded_corpus(args.out_dir, args.num_songs, args.seed, style=style,
                         workers=args.workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
