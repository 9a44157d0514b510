"""Deterministic synthetic singing corpus.

Why this module exists
----------------------
Real singing-transcription datasets (MIR-ST500, N20EMv2) cannot be downloaded
in this environment, yet the data loaders, training recipes, tests and the demo
need audio with exact note annotations in exactly those on-disk layouts.  This
module *stands in* for them: it composes music-like melodies, renders them with
a simple but singing-like source-filter voice (continuous f0 with glides and
vibrato, formants, consonants, breaths, reverb), renders a separate
accompaniment track, and writes everything in the real dataset layouts.

Everything is driven by a seeded ``numpy.random.Generator`` so the same seed
gives byte-identical files, and the rendering is vectorised (no per-sample
Python loops) so a whole corpus renders in seconds.

Public API
----------
``generate_melody``      -> ``(N, 3)`` array of ``[onset_s, offset_s, midi]``
``render_singing``       -> float32 mono vocal waveform
``pitch_gestures``       -> pitch movements inside notes (approach, fall, ...), in semitones
``voiced_gaps``          -> which rests between notes the voice sings through
``render_accompaniment`` -> float32 mono accompaniment waveform
``render_lip_video``     -> uint8 ``(T, 96, 96)`` grayscale mouth-region video
``make_corpus``          -> writes a MIR-ST500 or N20EMv2 style corpus
``main``                 -> CLI (``python -m svt.synthetic.singing OUT_DIR ...``)
"""
from __future__ import annotations

import argparse
import functools
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mir_eval.util import midi_to_hz
from scipy import signal

from svt.audio import write_audio
from svt.fileio import atomic_path, write_json_atomic

# --------------------------------------------------------------------------
# Musical constants
# --------------------------------------------------------------------------

#: MIDI pitch range per voice type (inclusive).  Everything stays in 36..83.
VOICE_RANGES: Dict[str, Tuple[int, int]] = {
    "bass": (40, 60),
    "tenor": (48, 67),
    "alto": (53, 74),
    "soprano": (60, 79),
    "child": (60, 81),
}
VOICES: Tuple[str, ...] = tuple(VOICE_RANGES)
MIDI_MIN, MIDI_MAX = 36, 83

#: Semitone offsets of the diatonic modes we use.  Natural minor only, so that
#: every melody's pitch classes are a subset of one 7-note diatonic set.
SCALES = {
    "major": np.array([0, 2, 4, 5, 7, 9, 11]),
    "minor": np.array([0, 2, 3, 5, 7, 8, 10]),
}

#: Note values in beats and their probabilities (eighth, quarter, dotted
#: quarter, half) for phrase-internal notes.
NOTE_VALUES = np.array([0.5, 1.0, 1.5, 2.0])
NOTE_VALUE_P = np.array([0.25, 0.45, 0.15, 0.15])
#: Phrase-final notes are longer (half, dotted half, whole).
FINAL_VALUES = np.array([2.0, 3.0, 4.0])
FINAL_VALUE_P = np.array([0.45, 0.35, 0.20])

#: Melodic motion in *scale degrees*: repeat, step, third, fourth, fifth,
#: octave.  Mostly stepwise, as in real vocal melodies.
STEP_SIZES = np.array([0, 1, 2, 3, 4, 7])
STEP_P = np.array([0.10, 0.68, 0.12, 0.05, 0.035, 0.015])

# --------------------------------------------------------------------------
# Voice-acoustics constants
# --------------------------------------------------------------------------

#: Formant frequencies F1..F4 (Hz) of sung vowels for an adult male voice
#: (roughly Peterson & Barney).  Other voices scale them, see FORMANT_SCALE.
VOWEL_FORMANTS = {
    "a": (730.0, 1090.0, 2440.0, 3400.0),
    "e": (530.0, 1840.0, 2480.0, 3500.0),
    "i": (270.0, 2290.0, 3010.0, 3700.0),
    "o": (570.0, 840.0, 2410.0, 3400.0),
    "u": (300.0, 870.0, 2240.0, 3400.0),
}
VOWELS = tuple(VOWEL_FORMANTS)
VOWEL_P = np.array([0.32, 0.18, 0.12, 0.26, 0.12])  # singers favour open vowels
FORMANT_BANDWIDTHS = np.array([110.0, 120.0, 150.0, 200.0])  # sung vowels: open glottis damps F1
FORMANT_SCALE = {"bass": 0.92, "tenor": 1.0, "alto": 1.1, "soprano": 1.15, "child": 1.25}

CONTROL_PERIOD_S = 0.001  # f0/amplitude/formant tracks are computed every ~1 ms


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _as_rng(rng: Union[None, int, np.random.Generator]) -> np.random.Generator:
    """Accept a Generator, an int seed, or None (seed 0, to stay deterministic)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


def _check_voice(voice: str) -> None:
    if voice not in VOICE_RANGES:
        raise ValueError(f"unknown voice {voice!r}; choose from {VOICES}")


def _notes_array(notes) -> np.ndarray:
    arr = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    return arr[np.argsort(arr[:, 0], kind="stable")]


# --------------------------------------------------------------------------
# Melody composition
# --------------------------------------------------------------------------


def _scale_pitches(tonic_pc: int, mode: str, lo: int, hi: int) -> np.ndarray:
    """All MIDI pitches in ``[lo, hi]`` that belong to the key."""
    pcs = (tonic_pc + SCALES[mode]) % 12
    pitches = np.arange(lo, hi + 1)
    return pitches[np.isin(pitches % 12, pcs)]


def _phrase_degrees(rng: np.random.Generator, n: int, start: int, n_deg: int) -> List[int]:
    """Random walk over scale-degree indices: mostly steps, occasional leaps.

    Two rules from melody writing keep it singable: a leap is followed by a
    step back in the opposite direction ("gap fill"), and a phrase has at
    most one leap per three intervals.  Moves that would leave the voice
    range are mirrored (melodies turn back at the edges of a singer's range).
    """
    idx = [int(np.clip(start, 0, n_deg - 1))]
    leaps_left = max(1, (n - 1) // 3)
    last_move = 0
    for _ in range(n - 1):
        size = int(rng.choice(STEP_SIZES, p=STEP_P))
        sign = 1 if rng.random() < 0.5 else -1
        if abs(last_move) >= 2:  # gap fill after a leap
            size, sign = 1, -int(np.sign(last_move))
        elif size >= 2:
            if leaps_left == 0:
                size = 1
            else:
                leaps_left -= 1
        nxt = idx[-1] + sign * size
        if not 0 <= nxt < n_deg:
            nxt = idx[-1] - sign * size
        if not 0 <= nxt < n_deg:  # leap too large either way: step towards the middle
            nxt = idx[-1] + (1 if idx[-1] < n_deg // 2 else -1)
        idx.append(int(np.clip(nxt, 0, n_deg - 1)))
        last_move = idx[-1] - idx[-2]
    return idx


def _phrase_rhythm(rng: np.random.Generator, n: int) -> List[float]:
    """Note values (in beats) for a phrase; the last note is held longer."""
    values = list(rng.choice(NOTE_VALUES, size=n - 1, p=NOTE_VALUE_P))
    values.append(float(rng.choice(FINAL_VALUES, p=FINAL_VALUE_P)))
    return [float(v) for v in values]


def generate_melody(
    rng: Union[None, int, np.random.Generator],
    duration_s: float,
    voice: str = "tenor",
    tempo_bpm: Optional[float] = None,
) -> np.ndarray:
    """Compose a music-like vocal melody.

    Picks a key (random tonic, major or natural minor) and a tempo (70-140
    bpm unless given), then writes phrases of 4-8 notes that move mostly
    stepwise within the voice's range, with rhythms built from eighth,
    quarter, dotted-quarter and half notes, a longer phrase-final note, and
    rests of 0.3-1.5 s between phrases.  Earlier phrases are sometimes
    repeated (transposed within the scale) to create motifs, as real songs do.

    Returns a float64 array of shape ``(N, 3)`` with rows
    ``[onset_s, offset_s, midi]``: sorted, non-overlapping, integer MIDI
    numbers, every note >= 0.1 s, everything inside ``[0, duration_s]``.
    Times are rounded to 6 decimals so they equal what is written to the
    annotation files.
    """
    _check_voice(voice)
    rng = _as_rng(rng)
    lo, hi = VOICE_RANGES[voice]
    lo, hi = max(lo, MIDI_MIN), min(hi, MIDI_MAX)

    tempo = float(rng.uniform(70.0, 140.0)) if tempo_bpm is None else float(tempo_bpm)
    beat = 60.0 / tempo
    tonic_pc = int(rng.integers(12))
    mode = "major" if rng.random() < 0.6 else "minor"
    pitches = _scale_pitches(tonic_pc, mode, lo, hi)
    n_deg = len(pitches)

    notes: List[Tuple[float, float, float]] = []
    motifs: List[Tuple[List[int], List[float]]] = []  # (degree indices, rhythm)
    t = float(rng.uniform(0.3, 1.0))  # leading silence
    pos = n_deg // 2 + int(rng.integers(-2, 3))
    end_limit = duration_s - 0.3  # leave room for the release / reverb tail

    while True:
        # Either repeat an earlier motif (shifted by a few scale degrees, if it
        # still fits the range) or compose a new phrase near the last pitch.
        phrase = None
        if motifs and rng.random() < 0.35:
            degs, rhythm = motifs[int(rng.integers(len(motifs)))]
            shift = int(rng.choice([0, 0, 1, -1, 2, -2]))
            shifted = [d + shift for d in degs]
            if min(shifted) >= 0 and max(shifted) < n_deg:
                phrase = (shifted, list(rhythm))
        if phrase is None:
            n = int(rng.integers(4, 9))
            start = pos + int(rng.integers(-2, 3))
            phrase = (_phrase_degrees(rng, n, start, n_deg), _phrase_rhythm(rng, n))
            motifs.append(phrase)
        degs, rhythm = phrase

        # Shorten the phrase (down to 4 notes) if it would run past the end.
        while len(rhythm) > 4 and t + sum(rhythm) * beat > end_limit:
            degs, rhythm = degs[:-1], rhythm[:-2] + [max(rhythm[-2], 2.0)]
        if t + sum(rhythm) * beat > end_limit:
            fit = (end_limit - t) / sum(rhythm)
            if notes or fit * min(rhythm) < 0.12:
                break  # song is full
            beat = fit  # a very short song sings its one phrase faster rather than stay silent

        for d, value in zip(degs, rhythm):
            span = value * beat
            # Articulation: a short silent gap before the next note (legato
            # singing), capped so that phrase-internal gaps stay < 0.1 s.
            gap = float(np.clip(span * rng.uniform(0.03, 0.15), 0.02, 0.08))
            notes.append((t, t + span - gap, float(pitches[d])))
            t += span
        pos = degs[-1]
        t += float(rng.uniform(0.3, 1.5))  # breath rest between phrases

    arr = np.array(notes, dtype=np.float64).reshape(-1, 3)
    arr[:, :2] = np.round(arr[:, :2], 6)
    return arr


# --------------------------------------------------------------------------
# Singing-voice rendering
# --------------------------------------------------------------------------


def _frame_note_index(frame_t: np.ndarray, onsets: np.ndarray) -> np.ndarray:
    """Index of the latest note whose onset is <= t (-1 before the first)."""
    return np.searchsorted(onsets, frame_t, side="right") - 1


def _lowpass_noise(rng: np.random.Generator, n: int, cutoff_hz: float, fs: float) -> np.ndarray:
    """Unit-variance low-pass noise: the basis for slow pitch drift/jitter."""
    sos = signal.butter(2, cutoff_hz / (fs / 2), output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n + 500))[500:]  # drop filter warm-up
    return x / (np.std(x) + 1e-12)


#: The pitch gestures `pitch_gestures` draws, with their shares: movements of a real voice's
#: pitch *inside* a note, which no annotator marks as a new note.
PITCH_GESTURES = (("approach", 0.3), ("overshoot", 0.15), ("correction", 0.2), ("fall", 0.15),
                  ("dip", 0.1), ("drift", 0.1))


#: A note that starts less than this after the previous one ends is joined to it: its gesture
#: fades in over this time, so the pitch does not jump while the voice sounds.
JOINED_GAP_S = 0.05


def _ramp(x: np.ndarray) -> np.ndarray:
    """Raised-cosine step: 0 for x <= 0, 1 for x >= 1."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(x, 0.0, 1.0)))


def pitch_gestures(notes, frame_t: np.ndarray, rng: np.random.Generator, share: float,
                   kinds: Sequence[Tuple[str, float]] = PITCH_GESTURES) -> np.ndarray:
    """Pitch movements inside notes (semitones, one value per time in `frame_t`) to add to a
    note-following f0 contour: each note gets one gesture with probability `share`, its kind
    drawn from `kinds` (`(name, share)` pairs of `PITCH_GESTURES`):

    * ``approach``: the note starts 0.5-1.5 semitones below its pitch (a fifth of them 0.3-0.8
      above) and reaches it over 80-250 ms;
    * ``overshoot``: after a connected step (rest < 0.25 s, pitch changed by >= 0.5) the voice
      passes the new pitch by 0.2-0.7 semitones and comes back within 100-300 ms;
    * ``correction``: the note's first 10-35 % sits 0.25-0.7 semitones off, then moves to the
      pitch over 50-150 ms (at most 15 % of the note; notes of 0.3 s and longer);
    * ``fall``: before a rest of >= 0.1 s (or the end), the last 80-250 ms fall 1-4 semitones;
    * ``dip``: a 60-200-ms excursion (at most 40 % of the note) of 0.3-0.9 semitones up or down
      and back, in the note's middle (notes of 0.35 s and longer);
    * ``drift``: the pitch slides 0.15-0.4 semitones over the note, centred on it.

    A gesture that does not fit its note (too short, no connected step) leaves it alone; on a
    note joined to the previous one it fades in over `JOINED_GAP_S`. Each gesture is bounded so
    that the note's median pitch, its label, stays its own: it moves the pitch in at most half
    of the note, or (``drift``) is centred on it. Between notes the last note's value is held,
    as `_f0_track` holds the pitch.
    """
    notes = _notes_array(notes)
    n = len(notes)
    out = np.zeros(len(frame_t))
    if n == 0 or share <= 0:
        return out
    names = [name for name, _ in kinds]
    p = np.array([w for _, w in kinds], dtype=np.float64)
    on, off, midi = notes[:, 0], notes[:, 1], notes[:, 2]
    has = rng.random(n) < share
    kind = rng.choice(len(names), size=n, p=p / p.sum())
    u = rng.random((n, 4))  # each gesture's own draws, so one kind's range never shifts another
    prev_gap = np.r_[np.inf, on[1:] - off[:-1]]
    next_gap = np.r_[on[1:] - off[:-1], np.inf]
    step = np.r_[0.0, midi[1:] - midi[:-1]]
    idx = _frame_note_index(frame_t, on)
    for i in np.flatnonzero(has):
        rows = idx == i
        if not rows.any():
            continue
        tau = frame_t[rows] - on[i]
        dur = off[i] - on[i]
        a, b, c, d = u[i]
        name = names[kind[i]]
        if name == "approach":
            depth = -(0.5 + 1.0 * a) if b < 0.8 else 0.3 + 0.5 * a
            span = min(0.08 + 0.17 * c, 0.3 * dur)
            out[rows] = depth * (1.0 - _ramp(tau / span))
        elif name == "overshoot" and prev_gap[i] < 0.25 and abs(step[i]) >= 0.5:
            size = np.sign(step[i]) * (0.2 + 0.5 * a)
            span = min(0.1 + 0.2 * b, 0.4 * dur)
            out[rows] = size * np.sin(np.pi * np.clip(tau / span, 0.0, 1.0))
        elif name == "correction" and dur >= 0.3:
            error = (0.25 + 0.45 * a) * (1.0 if b < 0.5 else -1.0)
            at, move = (0.1 + 0.25 * c) * dur, min(0.05 + 0.1 * d, 0.15 * dur)
            out[rows] = error * (1.0 - _ramp((tau - at) / move))
        elif name == "fall" and next_gap[i] >= 0.1:
            span = min(0.08 + 0.17 * b, 0.3 * dur)
            out[rows] = -(1.0 + 3.0 * a) * _ramp((tau - (dur - span)) / span)
        elif name == "dip" and dur >= 0.35:
            size = (0.3 + 0.6 * a) * (1.0 if b < 0.5 else -1.0)
            span, centre = min(0.06 + 0.14 * c, 0.4 * dur), (0.3 + 0.4 * d) * dur
            x = (tau - centre) / span + 0.5
            out[rows] = size * np.sin(np.pi * np.clip(x, 0.0, 1.0)) ** 2
        elif name == "drift":
            out[rows] = (0.15 + 0.25 * a) * (1.0 if b < 0.5 else -1.0) * (
                np.clip(tau / dur, 0.0, 1.0) - 0.5)
        if prev_gap[i] < JOINED_GAP_S:  # a joined note: the voice is already sounding, no jump
            out[rows] *= _ramp(tau / JOINED_GAP_S)
    return out


#: The rests `voiced_gaps` may sing through (seconds): a consonant or a transition, not a breath.
VOICED_GAP_RANGE_S = (0.015, 0.3)
#: The voiced consonants a sung-through rest is sung on (`murmur_tracks`): formants F1..F4 (Hz,
#: an adult male voice, scaled like the vowels) and the range of the low-pass corner (Hz) above
#: which the murmur's harmonics fall off. Nasals radiate through the nose, their energy below
#: about 500 Hz; a lateral or an approximant keeps more of the upper spectrum. (Rough textbook
#: values for these consonants, not fitted to any recording.)
MURMURS = {
    "m": ((250.0, 1100.0, 2200.0, 3300.0), (350.0, 600.0)),
    "n": ((250.0, 1650.0, 2550.0, 3400.0), (350.0, 600.0)),
    "l": ((360.0, 1050.0, 2700.0, 3500.0), (700.0, 1400.0)),
    "r": ((350.0, 1100.0, 1550.0, 3300.0), (700.0, 1400.0)),
}
#: Raised-cosine crossfade (seconds) between a vowel and a sung-through rest's murmur.
MURMUR_FADE_S = 0.02


def voiced_gaps(notes, rng: np.random.Generator, share: float) -> np.ndarray:
    """Which rests between notes the voice sings through: an `(N, 2)` array, one row per note
    for the rest before it: the rest's level relative to the notes around it (0.2-0.8; 0 where
    the voice stops) and the part of the rest over which the pitch moves to the note (0.2-0.7:
    the move starts where the previous note ends). Each rest of `VOICED_GAP_RANGE_S` is sung
    through with probability `share`.

    In a sung-through rest the voice keeps sounding, quieter (a voiced consonant, or the
    transition between syllables), while its pitch moves from the previous note to the next,
    and may arrive before the note does (a consonant sung on the new pitch); the annotation
    keeps the rest. Annotators of recorded sight-singing mark notes this way (on SSVD 55 % of
    the rests of 15-300 ms are voiced throughout, the pitch in them a median 65 % of the way to
    the next note): each note starts where its pitch has arrived and its vowel begins, the move
    belongs to neither note. `_f0_track` and `_amplitude_track` render it, and
    `murmur_tracks` sings it on a voiced consonant (a nasal, a lateral or an approximant): the
    spectrum changes from the vowel to the murmur and back, which is what tells such a rest from
    a legato step, where the vowel goes on while the pitch moves."""
    notes = _notes_array(notes)
    out = np.zeros((len(notes), 2))
    if len(notes) < 2 or share <= 0:
        return out
    gap = notes[1:, 0] - notes[:-1, 1]
    lo, hi = VOICED_GAP_RANGE_S
    sung = (gap >= lo) & (gap <= hi) & (rng.random(len(gap)) < share)
    out[1:, 0] = np.where(sung, rng.uniform(0.2, 0.8, len(gap)), 0.0)
    out[1:, 1] = np.where(sung, rng.uniform(0.2, 0.7, len(gap)), 0.0)
    return out


def murmur_tracks(notes, frame_t: np.ndarray, gap_plan: np.ndarray, rng: np.random.Generator,
                  formant_scale: float = 1.0):
    """The voiced consonant each sung-through rest of `gap_plan` (`voiced_gaps`) is sung on.

    Returns the murmur's weight per control frame `(frames,)` (1 inside a sung-through rest,
    0 in the vowels, `MURMUR_FADE_S` raised-cosine crossfades centred on the previous note's
    offset and on the next note's onset), its formants `(frames, 4)` (one of `MURMURS` drawn per
    rest, +-5 %, times `formant_scale`) and its low-pass corner in Hz `(frames,)` (drawn in the
    consonant's range; the vowel's frames hold 1e9, no low-pass). `render_singing` crossfades the
    vowels' formants into the murmur's and low-passes the harmonics by the weight."""
    notes = _notes_array(notes)
    on, off = notes[:, 0], notes[:, 1]
    weight = np.zeros(len(frame_t))
    formants = np.zeros((len(frame_t), 4))
    corner = np.full(len(frame_t), 1e9)
    names = list(MURMURS)
    half = MURMUR_FADE_S / 2
    for i in np.flatnonzero(gap_plan[:, 0] > 0):
        table, (lo, hi) = MURMURS[names[int(rng.integers(len(names)))]]
        rows = (frame_t >= off[i - 1] - half) & (frame_t < on[i] + half)
        t = frame_t[rows]
        w = _ramp((t - off[i - 1] + half) / MURMUR_FADE_S) * (
            1.0 - _ramp((t - on[i] + half) / MURMUR_FADE_S))
        weight[rows] = np.maximum(weight[rows], w)
        formants[rows] = np.array(table) * formant_scale * rng.uniform(0.95, 1.05, 4)
        corner[rows] = rng.uniform(lo, hi)
    return weight, formants, corner


def _f0_track(notes: np.ndarray, frame_t: np.ndarray, rng: np.random.Generator,
              vibrato_scale: float = 1.0, glide_scale: float = 1.0,
              gesture_share: float = 0.0, gap_plan: Optional[np.ndarray] = None) -> np.ndarray:
    """Continuous f0 contour (in fractional MIDI) at the control rate.

    Per note: a short glide (30-80 ms, raised-cosine) from the previous pitch
    when the notes are connected (portamento), or a small scoop from below
    after a rest; vibrato (5-6.5 Hz, 20-60 cents) fading in ~200 ms after the
    onset; plus slow drift and fast jitter of a few cents everywhere.
    Between notes the pitch is held (it is inaudible there anyway).
    With ``gesture_share`` > 0, that share of the notes also moves inside the
    note (`pitch_gestures`), drawn from a generator of its own so that the
    other draws stay those of a song without gestures.  Where ``gap_plan``
    (`voiced_gaps`) sings a rest through, the pitch moves to the next note
    *during* the rest (raised-cosine over its drawn part, the vibrato fading
    out) and the note starts on its pitch.
    """
    n = len(notes)
    on, off, midi = notes[:, 0], notes[:, 1], notes[:, 2]
    glide = rng.uniform(0.03, 0.08, n) * glide_scale
    prev_gap = np.r_[np.inf, on[1:] - off[:-1]]
    prev_pitch = np.r_[midi[0], midi[:-1]]
    scoop = midi - rng.uniform(0.4, 1.2, n)
    start_pitch = np.where(prev_gap < 0.25, prev_pitch, scoop)
    sung_gap = np.zeros(n, dtype=bool) if gap_plan is None else gap_plan[:, 0] > 0
    start_pitch = np.where(sung_gap, midi, start_pitch)  # it moved during the rest
    vib_rate = rng.uniform(5.0, 6.5, n)
    vib_depth = rng.uniform(0.20, 0.60, n) * vibrato_scale  # semitones (= 20-60 cents)
    vib_delay = rng.uniform(0.15, 0.3, n)
    vib_phase = rng.uniform(0, 2 * np.pi, n)

    idx = np.clip(_frame_note_index(frame_t, on), 0, n - 1)
    tau = np.maximum(frame_t - on[idx], 0.0)  # time since the current onset
    w = _ramp(tau / glide[idx])
    pitch = start_pitch[idx] + (midi[idx] - start_pitch[idx]) * w
    before_first = frame_t < on[0]
    pitch[before_first] = midi[0]

    ramp = np.clip((tau - vib_delay[idx]) / 0.15, 0.0, 1.0)
    for i in np.flatnonzero(sung_gap):  # the move to note i, within the rest before it
        rows = (frame_t >= off[i - 1]) & (frame_t < on[i])
        x = _ramp((frame_t[rows] - off[i - 1]) / ((on[i] - off[i - 1]) * gap_plan[i, 1]))
        pitch[rows] += (midi[i] - midi[i - 1]) * x
        ramp[rows] *= 1.0 - x
    pitch += vib_depth[idx] * ramp * np.sin(2 * np.pi * vib_rate[idx] * tau + vib_phase[idx])
    fs = 1.0 / (frame_t[1] - frame_t[0])
    pitch += 0.08 * _lowpass_noise(rng, len(frame_t), 0.7, fs)  # drift, ~8 cents
    pitch += 0.03 * _lowpass_noise(rng, len(frame_t), 25.0, fs)  # jitter, ~3 cents
    if gesture_share > 0:
        pitch += pitch_gestures(notes, frame_t, rng.spawn(1)[0], gesture_share)
    return pitch


def _amplitude_track(
    notes: np.ndarray, frame_t: np.ndarray, rng: np.random.Generator,
    gap_plan: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Linear amplitude envelope at the control rate.

    Each note gets a raised-cosine attack (20-60 ms), a gentle swell/decay and
    a per-note loudness; after the offset it releases exponentially (15-30 ms
    time constant).  Where a release overlaps the next attack we take the
    maximum, which gives smooth legato joins.  A rest that ``gap_plan``
    (`voiced_gaps`) sings through stays at its drawn fraction of the quieter of
    its two notes until the next note's attack has risen above it.
    """
    n = len(notes)
    on, off = notes[:, 0], notes[:, 1]
    attack = rng.uniform(0.02, 0.06, n)
    release = rng.uniform(0.015, 0.03, n)
    level = rng.uniform(0.6, 1.0, n)
    swell = rng.uniform(-0.25, 0.15, n)  # change of level over the note

    # Sounding part of the note that starts at or before t.
    idx = _frame_note_index(frame_t, on)
    ok = idx >= 0
    i = np.clip(idx, 0, n - 1)
    tau = frame_t - on[i]
    dur = off[i] - on[i]
    inside = ok & (tau < dur)
    att = _ramp(tau / attack[i])
    shape = 1.0 + swell[i] * np.clip(tau / dur, 0.0, 1.0)
    env_on = np.where(inside, level[i] * att * shape, 0.0)

    # Release tail of the latest note that has already ended.
    j = np.searchsorted(off, frame_t, side="right") - 1
    jj = np.clip(j, 0, n - 1)
    since = frame_t - off[jj]
    end_level = level[jj] * (1.0 + swell[jj])
    env_off = np.where(j >= 0, end_level * np.exp(-np.maximum(since, 0.0) / release[jj]), 0.0)
    env_off[since > 0.3] = 0.0
    env = np.maximum(env_on, env_off)
    sung_gap = [] if gap_plan is None else np.flatnonzero(gap_plan[:, 0] > 0)
    for i in sung_gap:
        floor = gap_plan[i, 0] * min(level[i - 1] * (1.0 + swell[i - 1]), level[i])
        rows = (frame_t >= off[i - 1]) & (frame_t < on[i] + attack[i])
        env[rows] = np.maximum(env[rows], floor)
    return env


def _formant_tracks(
    notes: np.ndarray, frame_t: np.ndarray, rng: np.random.Generator, voice: str, nyquist: float,
    formant_scale: float = 1.0,
) -> np.ndarray:
    """Formant frequencies ``(frames, 4)``: one vowel per note (syllable),
    smoothed over ~40 ms so vowels glide into each other (coarticulation)."""
    n = len(notes)
    vowel_ids = rng.choice(len(VOWELS), size=n, p=VOWEL_P)
    table = np.array([VOWEL_FORMANTS[v] for v in VOWELS]) * FORMANT_SCALE[voice] * formant_scale
    # Small per-note deviations so no two syllables sound exactly alike.
    per_note = table[vowel_ids] * rng.uniform(0.95, 1.05, size=(n, 4))
    idx = np.clip(_frame_note_index(frame_t, notes[:, 0]), 0, n - 1)
    tracks = per_note[idx]
    k = 41
    kernel = np.hanning(k) / np.hanning(k).sum()
    padded = np.pad(tracks, ((k // 2, k // 2), (0, 0)), mode="edge")
    tracks = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(4)], axis=1)
    return np.minimum(tracks, 0.9 * nyquist)


def _harmonic_amplitudes(
    f0_hz: np.ndarray, formants: np.ndarray, n_harm: int, tilt: float, nyquist: float
) -> np.ndarray:
    """Per-frame harmonic amplitudes ``(n_harm, frames)``.

    Source: glottal-like spectral tilt ``k**-tilt``.  Filter: a cascade of
    four second-order resonators evaluated at each harmonic's frequency
    (unity gain at DC, peaks of F/B at the formants), i.e. the classic
    source-filter model applied in the frequency domain per frame, which is
    vectorised and avoids time-varying IIR filtering.  F1 is raised to sit
    above f0 for high notes ("formant tuning", as trained sopranos do), so
    the fundamental is never strongly cut.
    """
    k = np.arange(1, n_harm + 1, dtype=np.float64)[:, None]
    freqs = k * f0_hz[None, :]
    source = k[:, 0] ** -tilt
    source[0] *= 1.6  # open-phase glottal pulses carry a strong fundamental (H1-H2 > 0)
    amps = np.broadcast_to(source[:, None], freqs.shape).copy()
    fmt = formants.copy()
    fmt[:, 0] = np.maximum(fmt[:, 0], 1.15 * f0_hz)
    # Bandwidths grow mildly with formant frequency (relative to vowel /a/).
    bws = FORMANT_BANDWIDTHS * (fmt / np.array(VOWEL_FORMANTS["a"])) ** 0.3
    for c in range(4):
        fc = fmt[:, c][None, :]
        bw = bws[:, c][None, :]
        amps *= fc**2 / np.sqrt((fc**2 - freqs**2) ** 2 + (bw * freqs) ** 2)
    # Fade out harmonics approaching Nyquist (band-limited, no aliasing).
    amps *= np.clip((0.95 * nyquist - freqs) / (0.1 * nyquist), 0.0, 1.0)
    return amps


def _upsample(track: np.ndarray, hop: int) -> np.ndarray:
    """Linear interpolation from the control rate to the audio rate, returned
    as a ``(frames - 1, hop)`` block matrix (row f covers samples
    ``f*hop .. f*hop+hop-1``).  Pure broadcasting, no gathers, so it is cheap
    enough to call once per harmonic."""
    w = np.arange(hop) / hop
    return track[:-1, None] * (1.0 - w) + track[1:, None] * w


def _upsample_rows(track: np.ndarray, rows: np.ndarray, hop: int) -> np.ndarray:
    """Like ``_upsample(track, hop)[rows]`` without building the full matrix."""
    w = np.arange(hop) / hop
    return track[rows, None] * (1.0 - w) + track[rows + 1, None] * w


@functools.lru_cache(maxsize=64)
def _band_sos(lo: float, hi: float, sr: int, order: int) -> np.ndarray:
    """Butterworth band-pass design, cached: the same few bands are reused
    for every consonant, breath and click."""
    nyq = sr / 2.0
    hi = min(hi, 0.95 * nyq)
    lo = min(lo, 0.5 * hi)  # keep the band valid at low sample rates
    return signal.butter(order, [lo / nyq, hi / nyq], btype="band", output="sos")


def _bandpass(x: np.ndarray, lo: float, hi: float, sr: int, order: int = 2) -> np.ndarray:
    return signal.sosfilt(_band_sos(float(lo), float(hi), int(sr), int(order)), x)


def _consonants(
    notes: np.ndarray, n_samples: int, sr: int, rng: np.random.Generator,
    sung_through: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Short filtered-noise bursts just before some note onsets.

    Fricatives ("s", "sh", "f": 40-90 ms band noise) and plosive releases
    ("t", "k": 10-20 ms broadband click) mark syllable starts, which is what
    makes onsets of real singing harder than clean tone onsets.  They are
    placed so that they end shortly after the annotated onset.  A note whose rest
    ``sung_through`` marks (`voiced_gaps`) gets none: its consonant is the voiced murmur
    (`murmur_tracks`); its draws are still made, so the other notes' bursts stay the same.
    """
    out = np.zeros(n_samples)
    prev_gap = np.r_[np.inf, notes[1:, 0] - notes[:-1, 1]]
    murmured = np.zeros(len(notes), bool) if sung_through is None else sung_through
    for onset, gap, sung in zip(notes[:, 0], prev_gap, murmured):
        if gap < 0.05 or rng.random() > 0.45:
            continue  # legato or vowel-initial syllable: no consonant
        if rng.random() < 0.5:  # fricative
            dur = float(rng.uniform(0.04, 0.09))
            lo, hi = [(3500.0, 7500.0), (2000.0, 5000.0), (1200.0, 7000.0)][int(rng.integers(3))]
            level = rng.uniform(0.05, 0.12)
        else:  # plosive burst
            dur = float(rng.uniform(0.01, 0.02))
            lo, hi = 800.0, 6000.0
            level = rng.uniform(0.08, 0.18)
        dur = min(dur, max(gap - 0.01, 0.01))
        length = int(dur * sr)
        start = int((onset + 0.01) * sr) - length
        if length < 8 or start < 0 or start + length > n_samples:
            continue
        burst = _bandpass(rng.standard_normal(length), lo, hi, sr)
        burst *= np.hanning(length) * level / (np.std(burst) + 1e-12)
        if not sung:
            out[start : start + length] += burst
    return out


def _breaths(notes: np.ndarray, n_samples: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Quiet inhalation noise in the longer rests before phrases."""
    out = np.zeros(n_samples)
    prev_end = np.r_[0.0, notes[:-1, 1]]
    for onset, rest_start in zip(notes[:, 0], prev_end):
        if onset - rest_start < 0.4 or rng.random() > 0.7:
            continue
        dur = float(min(rng.uniform(0.2, 0.4), onset - rest_start - 0.15))
        end = onset - float(rng.uniform(0.05, 0.12))
        start_s, length = int((end - dur) * sr), int(dur * sr)
        if length < 16 or start_s < 0 or start_s + length > n_samples:
            continue
        noise = _bandpass(rng.standard_normal(length), 400.0, 3000.0, sr)
        env = np.sin(np.pi * np.linspace(0, 1, length)) ** 2
        level = rng.uniform(0.01, 0.02)
        out[start_s : start_s + length] += noise / (np.std(noise) + 1e-12) * env * level
    return out


def _reverb(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Small-room reverb: convolution with exponentially decaying, slightly
    low-passed noise (0.3-0.6 s).  Real vocal stems are rarely fully dry."""
    length = float(rng.uniform(0.3, 0.6))
    n = int(length * sr)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / length)  # -60 dB at the end
    ir = signal.lfilter([0.3], [1.0, -0.7], ir)  # darker tail
    ir[: int(0.01 * sr)] = 0.0  # pre-delay: direct sound first
    ir *= float(rng.uniform(0.15, 0.3)) / (np.sqrt(np.sum(ir**2)) + 1e-12)
    wet = signal.fftconvolve(x, ir)[: len(x)]
    return x + wet


def _normalise(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m) if m > 0 else x).astype(np.float32)


def _output_length(notes: np.ndarray, duration_s, sr: int) -> int:
    """Samples of a rendered track: `duration_s`, or the last offset plus a 0.6-s release tail."""
    if duration_s is None:
        duration_s = (notes[-1, 1] if len(notes) else 0.0) + 0.6
    return int(round(duration_s * sr))


def render_singing(
    notes,
    sample_rate: int = 16000,
    rng: Union[None, int, np.random.Generator] = None,
    voice: str = "tenor",
    duration_s: Optional[float] = None,
    timbre: Optional[Dict[str, float]] = None,
) -> np.ndarray:
    """Render a singing-like voice that sings ``notes`` (rows ``[on, off, midi]``).

    Source-filter synthesis, vectorised over time:

    * band-limited harmonic source (up to 40 harmonics below Nyquist) with a
      glottal-like spectral tilt;
    * continuous f0 following the notes with portamento/scoops, delayed
      vibrato, drift and jitter (see ``_f0_track``);
    * per-note attack/release envelope and loudness;
    * vowel formants (one vowel per note, gliding between notes);
    * consonant noise bursts at some onsets, breath noise in rests, a touch of
      aspiration noise while singing, and a short reverb.

    ``timbre`` varies the singer (every key optional): ``tilt`` (spectral tilt of the source,
    about 0.6 = pressed/bright .. 2.2 = breathy/dark; default drawn from 1.0-1.5), ``aspiration``
    (breath noise relative to the voiced level, default 0.04), ``vibrato_scale`` and
    ``glide_scale`` (multipliers of the drawn vibrato depths and glide times) and
    ``formant_scale`` (vocal-tract length relative to the voice type) and ``pitch_gestures``
    (the share of notes whose pitch also moves inside the note: approaches, overshoots,
    corrections, falls, dips, drifts; see `pitch_gestures`) and ``voiced_gaps`` (the share of
    short rests the voice sings through, on a voiced consonant, while its pitch moves to the
    next note; see `voiced_gaps` and `murmur_tracks`).  Without it every random
    draw is as before, so existing corpora stay byte-identical.

    Returns float32 mono audio peak-normalised to 0.5, of length
    ``duration_s`` (default: last offset + 0.6 s).  Outside notes there is
    only breath noise and the reverb/release tail.
    """
    timbre = dict(timbre or {})
    _check_voice(voice)
    rng = _as_rng(rng)
    notes = _notes_array(notes)
    sr = int(sample_rate)
    n_samples = _output_length(notes, duration_s, sr)
    if len(notes) == 0 or n_samples == 0:
        return np.zeros(n_samples, dtype=np.float32)
    nyquist = sr / 2.0

    # Control-rate tracks: one frame every `hop` samples (~1 ms), plus spare
    # frames so the block-wise upsampling below covers every sample.
    hop = max(1, int(round(sr * CONTROL_PERIOD_S)))
    n_blocks = -(-n_samples // hop)
    n_frames = n_blocks + 1
    ctrl_rate = sr / hop
    frame_t = np.arange(n_frames) / ctrl_rate
    gap_plan = None
    if timbre.get("voiced_gaps", 0.0) > 0:  # a generator of its own: the other draws stay
        gap_plan = voiced_gaps(notes, rng.spawn(1)[0], timbre["voiced_gaps"])
    f0_hz = midi_to_hz(_f0_track(notes, frame_t, rng, timbre.get("vibrato_scale", 1.0),
                                 timbre.get("glide_scale", 1.0),
                                 timbre.get("pitch_gestures", 0.0), gap_plan))
    env = _amplitude_track(notes, frame_t, rng, gap_plan)
    env *= 1.0 + 0.03 * _lowpass_noise(rng, n_frames, 15.0, ctrl_rate)  # shimmer
    formants = _formant_tracks(notes, frame_t, rng, voice, nyquist,
                               timbre.get("formant_scale", 1.0))
    murmur = None
    if gap_plan is not None and gap_plan[:, 0].any():  # its own generator again (see above)
        murmur, murmur_formants, murmur_corner = murmur_tracks(
            notes, frame_t, gap_plan, rng.spawn(1)[0],
            FORMANT_SCALE[voice] * timbre.get("formant_scale", 1.0))
        formants = formants + murmur[:, None] * (np.minimum(murmur_formants, 0.9 * nyquist)
                                                 - formants)
    n_harm = int(min(40, max(1, np.floor(0.95 * nyquist / midi_to_hz(notes[:, 2].min())))))
    tilt = float(rng.uniform(1.0, 1.5))
    tilt = float(timbre.get("tilt", tilt))

    # Audio-rate phase from the upsampled f0 (blocks of `hop` samples).
    phase = 2 * np.pi * np.cumsum(_upsample(f0_hz, hop).ravel()) / sr
    phase = phase.reshape(n_blocks, hop)
    # Only synthesise blocks where the voice is audible (saves ~1/3 of work).
    active = np.flatnonzero((env[:-1] > 1e-6) | (env[1:] > 1e-6))
    amps = _harmonic_amplitudes(f0_hz, formants, n_harm, tilt, nyquist) * env[None, :]
    if murmur is not None:  # the murmur's upper harmonics fall off (12 dB per octave)
        harmonic_hz = np.arange(1, n_harm + 1)[:, None] * f0_hz[None, :]
        low_pass = 1.0 / np.sqrt(1.0 + (harmonic_hz / murmur_corner[None, :]) ** 4)
        amps *= 1.0 - murmur[None, :] + murmur[None, :] * low_pass

    # Harmonics via the complex recurrence z_k = z_{k-1} * z_1 (cheaper than
    # calling sin per harmonic); amplitudes are upsampled block-wise.  All
    # harmonics start in sine phase, so the source is a coherent, pulse-like
    # (sawtooth-ish) glottal wave rather than noise-like random phases.
    z1 = np.exp(1j * phase[active])
    z = np.ones_like(z1)
    voiced_blocks = np.zeros(z1.shape)
    for k in range(n_harm):
        z *= z1
        voiced_blocks += _upsample_rows(amps[k], active, hop) * z.imag
    voiced = np.zeros((n_blocks, hop))
    voiced[active] = voiced_blocks
    voiced = voiced.ravel()[:n_samples]

    # Aspiration: a little high-passed noise riding on the voiced envelope.
    asp = _bandpass(rng.standard_normal(n_samples), 1500.0, 6000.0, sr)
    voiced_rms = np.sqrt(np.mean(voiced**2)) + 1e-12
    # A murmur is sung with the mouth closed or nearly so: no breath noise rides on it.
    env_audio = _upsample(env if murmur is None else env * (1.0 - murmur), hop).ravel()[:n_samples]
    voiced += timbre.get("aspiration", 0.04) * voiced_rms * asp / (np.std(asp) + 1e-12) * env_audio

    # Consonants and breaths are scaled relative to the typical voiced level.
    ref = np.percentile(np.abs(voiced), 99) + 1e-12
    sung_through = None if gap_plan is None else gap_plan[:, 0] > 0
    noises = (_consonants(notes, n_samples, sr, rng, sung_through)
              + _breaths(notes, n_samples, sr, rng))
    out = voiced + ref * noises
    return _normalise(_reverb(out, sr, rng))


# --------------------------------------------------------------------------
# Accompaniment
# --------------------------------------------------------------------------


def infer_key(notes) -> Tuple[int, str]:
    """Guess ``(tonic_pitch_class, mode)`` of a melody.

    Chooses the diatonic set covering the most note duration, then among its
    major/relative-minor tonics the one favoured by the last note (melodies
    usually end on the tonic) and by duration-weighted tonic/dominant usage.
    """
    notes = _notes_array(notes)
    pcs = notes[:, 2].astype(int) % 12
    durs = notes[:, 1] - notes[:, 0]
    hist = np.bincount(pcs, weights=durs, minlength=12)
    best, best_score = (0, "major"), -np.inf
    for tonic in range(12):
        for mode in ("major", "minor"):
            scale = (tonic + SCALES[mode]) % 12
            coverage = hist[scale].sum() / (hist.sum() + 1e-12)
            score = 10.0 * coverage + hist[tonic] / (hist.sum() + 1e-12)
            score += 0.5 * hist[(tonic + 7) % 12] / (hist.sum() + 1e-12)
            score += 0.5 * float(len(pcs) > 0 and pcs[-1] == tonic)
            score += 0.01 * (mode == "major")  # deterministic tie-break
            if score > best_score:
                best, best_score = (tonic, mode), score
    return best


def _phrase_starts(notes: np.ndarray, min_rest: float = 0.2) -> np.ndarray:
    """Onsets of the notes that begin a phrase (preceded by a rest)."""
    gaps = notes[1:, 0] - notes[:-1, 1]
    return np.r_[notes[0, 0], notes[1:, 0][gaps > min_rest]]


def _estimate_beat(notes: np.ndarray) -> float:
    """Beat period (s) from the median phrase-internal inter-onset interval,
    folded into the 70-140 bpm range used by ``generate_melody``."""
    gaps = notes[1:, 0] - notes[:-1, 1]
    ioi = np.diff(notes[:, 0])[gaps <= 0.2]
    beat = float(np.median(ioi)) if len(ioi) else 0.6
    while beat < 60.0 / 140.0:
        beat *= 2.0
    while beat > 60.0 / 70.0:
        beat /= 2.0
    return beat


def _bar_grid(notes: np.ndarray, beat: float, end_s: float) -> Tuple[np.ndarray, np.ndarray]:
    """``(bar_starts, bar_ends)`` for 4-beat bars, restarted at every phrase
    so the backing stays in time with the singer across the free-length
    rests between phrases (like a band following the vocalist)."""
    starts = _phrase_starts(notes)
    seg_ends = np.r_[starts[1:], min(notes[-1, 1] + beat, end_s)]
    bar_starts, bar_ends = [], []
    for s0, s1 in zip(starts, seg_ends):
        b = np.arange(s0, s1, 4 * beat)
        bar_starts.extend(b)
        bar_ends.extend(np.minimum(b + 4 * beat, s1))
    return np.array(bar_starts), np.array(bar_ends)


def _choose_chords(
    notes: np.ndarray, bar_starts: np.ndarray, bar_ends: np.ndarray, tonic: int, mode: str
) -> List[np.ndarray]:
    """One diatonic triad per bar that best fits the melody notes in the bar
    (duration-weighted chord-tone coverage, with a preference for I, IV, V)."""
    scale = (tonic + SCALES[mode]) % 12
    triads = [scale[[d, (d + 2) % 7, (d + 4) % 7]] for d in range(7)]
    prior = np.array([0.3, 0.05, 0.0, 0.2, 0.2, 0.1, -1.0])  # I ii iii IV V vi vii
    if mode == "minor":
        prior = np.array([0.3, -1.0, 0.1, 0.2, 0.2, 0.1, 0.1])  # i ii° III iv v VI VII
    pcs = notes[:, 2].astype(int) % 12
    chords = []
    for b, (start, end) in enumerate(zip(bar_starts, bar_ends)):
        overlap = np.minimum(notes[:, 1], end) - np.maximum(notes[:, 0], start)
        overlap = np.clip(overlap, 0.0, None)
        scores = [
            np.sum(overlap * np.where(np.isin(pcs, tr), 1.0, -0.5)) + prior[d]
            for d, tr in enumerate(triads)
        ]
        d = 0 if b == len(bar_starts) - 1 else int(np.argmax(scores))  # end on the tonic
        chords.append(triads[d])
    return chords


WAVETABLE_SIZE = 4096


@functools.lru_cache(maxsize=32)
def _wavetable(n_harm: int, tilt: float) -> np.ndarray:
    """One period of a harmonic tone with ``k**-tilt`` partials, cached so
    each accompaniment note costs a table lookup instead of a sine per
    partial."""
    x = np.arange(WAVETABLE_SIZE) / WAVETABLE_SIZE
    k = np.arange(1, n_harm + 1)[:, None]
    return np.sum(k**-tilt * np.sin(2 * np.pi * k * x), axis=0)


def _tone(
    freq: float, n: int, sr: int, n_harm: int, tilt: float, decay_s: Optional[float]
) -> np.ndarray:
    """Wavetable tone.  ``decay_s`` set -> plucked: a bright component that
    decays 4x faster than a dark one, so the tone mellows like a string;
    None -> organ-like (steady, 20 ms fades)."""
    n_harm = max(1, min(n_harm, int(0.45 * sr / freq)))  # stay band-limited
    pos = np.arange(n) * (freq * WAVETABLE_SIZE / sr)
    i0 = pos.astype(np.int64)
    frac = pos - i0
    i0 %= WAVETABLE_SIZE
    i1 = (i0 + 1) % WAVETABLE_SIZE

    def lookup(table: np.ndarray) -> np.ndarray:  # linear interpolation avoids spurs
        return table[i0] * (1.0 - frac) + table[i1] * frac

    bright = lookup(_wavetable(n_harm, tilt))
    if decay_s is None:
        out = bright
    else:
        t = np.arange(n) / sr
        dark = lookup(_wavetable(min(n_harm, 2), 1.0))
        out = dark * np.exp(-t / decay_s) + (bright - dark) * np.exp(-4.0 * t / decay_s)
    fade = min(int(0.02 * sr), n // 2)
    if fade > 0:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:fade] *= ramp
        out[-fade:] *= ramp[::-1]
    return out


def render_accompaniment(
    notes,
    sample_rate: int = 16000,
    rng: Union[None, int, np.random.Generator] = None,
    duration_s: Optional[float] = None,
) -> np.ndarray:
    """Render a simple backing track in the melody's key.

    One diatonic chord per 4-beat bar (the bar grid restarts with each sung
    phrase) chosen to fit the melody, played as an
    organ-like triad (around MIDI 52-64) plus a plucked bass root (MIDI
    36-47), and a light percussion click on every beat (accented downbeat).
    It is a separate track so tests and recipes can mix vocals with
    accompaniment at any SNR, like the source-separated stems of the real
    datasets.  Returns float32 mono audio peak-normalised to 0.5.
    """
    rng = _as_rng(rng)
    notes = _notes_array(notes)
    sr = int(sample_rate)
    n_samples = _output_length(notes, duration_s, sr)
    out = np.zeros(n_samples)
    if len(notes) == 0 or n_samples == 0:
        return out.astype(np.float32)

    tonic, mode = infer_key(notes)
    beat = _estimate_beat(notes)
    bar_starts, bar_ends = _bar_grid(notes, beat, duration_s)
    chords = _choose_chords(notes, bar_starts, bar_ends, tonic, mode)
    organ_tilt = float(rng.uniform(1.2, 2.0))
    bass_decay = float(rng.uniform(0.8, 1.6))
    click_len = int(0.03 * sr)
    click_env = np.exp(-np.arange(click_len) / (0.006 * sr))

    for start, end, triad in zip(bar_starts, bar_ends, chords):
        s0 = int(start * sr)
        n = min(int((end - start) * sr), n_samples - s0)
        if n <= 0:
            break
        # Organ-like triad voiced in MIDI 52..63, held for the bar.
        for pc in triad:
            midi = 52 + (int(pc) - 52) % 12
            out[s0 : s0 + n] += 0.25 * _tone(float(midi_to_hz(midi)), n, sr, 6, organ_tilt, None)
        # Plucked bass root (MIDI 36..47) on beats 1 and 3.
        root = 36 + (int(triad[0]) - 36) % 12
        for h0_s in np.arange(start, end - 0.05, 2 * beat):
            h0 = int(h0_s * sr)
            hn = min(int(min(2 * beat, end - h0_s) * sr), n_samples - h0)
            if hn > 0:
                bass = _tone(float(midi_to_hz(root)), hn, sr, 8, 1.0, bass_decay)
                out[h0 : h0 + hn] += 0.5 * bass
        # Percussion: short high-passed noise clicks on every beat.
        for i, bt in enumerate(np.arange(start, end - 0.05, beat)):
            c0 = int(bt * sr)
            if c0 + click_len > n_samples:
                break
            click = _bandpass(rng.standard_normal(click_len), 2000.0, 7000.0, sr) * click_env
            gain = 0.35 if i == 0 else 0.18  # accent the downbeat
            out[c0 : c0 + click_len] += gain * click / (np.max(np.abs(click)) + 1e-12)
    return _normalise(out)


# --------------------------------------------------------------------------
# Lip video
# --------------------------------------------------------------------------

#: Frame rate of the N20EMv2 lip videos (``data/<entry>/video_50fps.npy``).
VIDEO_FPS = 50
#: Mouth opening per sung vowel (1 = widest), and mouth width relative to a
#: neutral mouth: /a/ is open, /i/ spread and narrow, /o/ and /u/ rounded.
VOWEL_OPENING = {"a": 1.0, "e": 0.75, "i": 0.5, "o": 0.8, "u": 0.55}
VOWEL_WIDTH = {"a": 1.0, "e": 1.05, "i": 1.1, "o": 0.75, "u": 0.65}
#: Opening of the lightly closed lips in rests.
REST_OPENING = 0.03
#: A gap longer than this between notes is a rest: the mouth closes and stays closed.
LIP_REST_GAP_S = 0.15


def _mouth_tracks(
    notes: np.ndarray, frame_t: np.ndarray, rng: np.random.Generator, vowels=None
) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame mouth ``(opening, width_factor)`` from the sung syllables.

    Piecewise-linear keyframes per note: the lips close (bilabial consonant,
    opening 0) or narrow (other consonants, 12-30 % of the vowel opening)
    20-45 ms before the onset, open to the vowel's opening (scaled by a
    per-note loudness) 40-90 ms after it, hold (slightly decaying) to the
    offset, and close within 50-90 ms when a rest follows.  Legato notes thus
    still show a dip-then-rise at every onset.
    """
    n = len(notes)
    if n == 0:
        return np.full(len(frame_t), REST_OPENING), np.ones(len(frame_t))
    if vowels is None:
        ids = rng.choice(len(VOWELS), size=n, p=VOWEL_P)
        vowels = [VOWELS[i] for i in ids]
    elif len(vowels) != n:
        raise ValueError(f"got {len(vowels)} vowels for {n} notes")
    opening = np.array([VOWEL_OPENING[v] for v in vowels]) * rng.uniform(0.8, 1.0, n)
    width = np.array([VOWEL_WIDTH[v] for v in vowels])
    lead = rng.uniform(0.02, 0.045, n)
    rise = rng.uniform(0.04, 0.09, n)
    release = rng.uniform(0.05, 0.09, n)
    sustain = rng.uniform(0.85, 1.0, n)
    closure = np.where(rng.random(n) < 0.4, 0.0, rng.uniform(0.05, 0.2, n))

    on, off = notes[:, 0], notes[:, 1]
    key_t, key_open, key_width = [0.0], [REST_OPENING], [1.0]
    for k in range(n):
        legato = k > 0 and on[k] - off[k - 1] <= LIP_REST_GAP_S
        closed_at = on[k] - lead[k] if k == 0 else max(on[k] - lead[k], off[k - 1])
        depth = closure[k] * min(opening[k - 1], opening[k]) if legato else REST_OPENING
        peak = on[k] + min(rise[k], 0.4 * (off[k] - on[k]))
        key_t += [closed_at, peak, off[k] - 0.03]
        key_open += [depth, opening[k], opening[k] * sustain[k]]
        key_width += [1.0, width[k], width[k]]
        if k == n - 1 or on[k + 1] - off[k] > LIP_REST_GAP_S:
            key_t.append(off[k] + release[k])
            key_open.append(REST_OPENING)
            key_width.append(1.0)
    # Strictly increasing key times whatever the notes (very short or
    # overlapping notes squeeze their keyframes together).
    key_t = np.asarray(key_t)
    for i in range(1, len(key_t)):
        key_t[i] = max(key_t[i], key_t[i - 1] + 1e-4)
    return (np.interp(frame_t, key_t, key_open), np.interp(frame_t, key_t, key_width))


def _smooth_noise(rng: np.random.Generator, shape: Tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance 2-D noise low-passed with a Gaussian of ``sigma`` px (via FFT)."""
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=shape)
    return out / (np.std(out) + 1e-12)


def render_lip_video(
    notes,
    duration_s: float,
    fps: float = VIDEO_FPS,
    rng: Union[None, int, np.random.Generator] = None,
    size: int = 96,
    vowels: Optional[Sequence[str]] = None,
    chunk_frames: int = 256,
) -> np.ndarray:
    """Render a grayscale mouth-region video of a singer singing ``notes``.

    Stands in for the N20EMv2 lip videos (96x96 lip regions, 50 fps).  The
    mouth is drawn per frame as soft-edged ellipses (skin, lips, dark mouth
    interior with upper teeth) whose opening follows the syllables (see
    ``_mouth_tracks``): closed or narrowed at the consonant just before each
    onset, open on the vowel through the note (wider for /a/, rounded for
    /o/, /u/; louder notes open more), closed in rests, with a small tremor.
    Per singer (drawn from ``rng``): mouth size and position, lip thickness,
    teeth visibility, skin/lip/interior brightness, a lighting gradient and
    skin texture; per frame: slow head motion, jaw drop with the opening,
    brightness flicker and sensor noise.

    ``vowels``: optional vowel (``"a"``, ``"e"``, ``"i"``, ``"o"``, ``"u"``)
    per note; drawn at random otherwise.  Returns uint8 ``(T, size, size)``
    with ``T = round(duration_s * fps)``, frame ``i`` showing time ``i / fps``.
    Vectorised over pixels and frames (``chunk_frames`` at a time): a 30-s
    song (1500 frames of 96x96) takes a few hundred milliseconds.
    """
    rng = _as_rng(rng)
    notes = _notes_array(notes)
    num_frames = int(round(duration_s * fps))
    size = int(size)
    if num_frames <= 0:
        return np.zeros((0, size, size), dtype=np.uint8)
    scale = size / 96.0
    frame_t = np.arange(num_frames) / fps

    # Singer and recording.
    half_width = rng.uniform(17.0, 24.0) * scale
    open_height = rng.uniform(9.0, 14.0) * scale
    lip_v, lip_h = rng.uniform(3.5, 6.0) * scale, rng.uniform(2.0, 4.0) * scale
    cx0 = size / 2 + rng.uniform(-4.0, 4.0) * scale
    cy0 = size * 0.55 + rng.uniform(-4.0, 4.0) * scale
    skin = rng.uniform(105.0, 175.0)
    lip = skin * rng.uniform(0.6, 0.85)
    interior = rng.uniform(10.0, 45.0)
    teeth = rng.uniform(150.0, 220.0) if rng.random() < 0.6 else interior
    teeth_h = rng.uniform(2.0, 4.0) * scale
    grad_x, grad_y = rng.uniform(-0.35, 0.35, 2)
    noise_sigma = rng.uniform(1.5, 4.5)
    motion = rng.uniform(0.5, 2.5) * scale
    texture = 6.0 * _smooth_noise(rng, (size, size), 3.0 * scale)

    # Per-frame tracks.
    opening, width = _mouth_tracks(notes, frame_t, rng, vowels)
    voiced = opening > 2 * REST_OPENING
    opening = np.clip(opening + 0.02 * _lowpass_noise(rng, num_frames, 8.0, fps) * voiced, 0, 1.1)
    cx = cx0 + motion * _lowpass_noise(rng, num_frames, 0.4, fps)
    cy = cy0 + motion * _lowpass_noise(rng, num_frames, 0.4, fps)
    gain = 1.0 + 0.005 * _lowpass_noise(rng, num_frames, 1.0, fps)
    a_in = half_width * width * (1.0 + 0.1 * opening)  # the mouth widens a little as it opens
    b_in = 0.7 * scale + open_height * opening
    cy = cy + 0.3 * open_height * opening  # the jaw drops: the mouth centre moves down

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    background = (skin + grad_x * (xs - size / 2) + grad_y * (ys - size / 2) + texture)
    background = background.astype(np.float32)[None]
    out = np.empty((num_frames, size, size), dtype=np.uint8)
    for s in range(0, num_frames, chunk_frames):
        sl = slice(s, min(s + chunk_frames, num_frames))

        def col(x):
            return np.asarray(x[sl], dtype=np.float32)[:, None, None]

        dx, dy = xs[None] - col(cx), ys[None] - col(cy)
        a, b = col(a_in), col(b_in)

        def inside(ax, bx):  # soft ellipse mask, ~1 px anti-aliased edge
            r2 = (dx / ax) ** 2 + (dy / bx) ** 2
            return np.clip((1.0 - r2) * (0.5 * np.minimum(ax, bx)) + 0.5, 0.0, 1.0)

        m_lips = inside(a + lip_h, b + lip_v)
        m_mouth = inside(a, b)
        m_teeth = m_mouth * np.clip(col(cy) - b + teeth_h - ys[None] + 0.5, 0.0, 1.0)
        frame = background + (lip - background) * m_lips
        frame += (interior - lip) * m_mouth + (teeth - interior) * m_teeth
        frame *= col(gain)
        frame += noise_sigma * rng.standard_normal(frame.shape, dtype=np.float32)
        out[sl] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------
# Corpus writing
# --------------------------------------------------------------------------


def _note_list(notes: np.ndarray) -> List[list]:
    """JSON-ready ``[[onset, offset, midi], ...]`` with 6-decimal times and int midi."""
    return [[round(float(a), 6), round(float(b), 6), int(m)] for a, b, m in notes]


def _save_npy(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def render_song(
    seed_seq: np.random.SeedSequence, voice: str, duration_s: float, sample_rate: int
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compose and render one song: ``(notes, vocals, accompaniment)``.

    Uses independent generators for melody, voice and accompaniment, so
    changing one renderer does not change the others' random draws."""
    mel_ss, voc_ss, acc_ss = seed_seq.spawn(3)
    notes = generate_melody(np.random.default_rng(mel_ss), duration_s, voice=voice)
    vocals = render_singing(notes, sample_rate, np.random.default_rng(voc_ss), voice, duration_s)
    accomp = render_accompaniment(notes, sample_rate, np.random.default_rng(acc_ss), duration_s)
    return notes, vocals, accomp


def make_corpus(
    out_dir: str,
    layout: str = "mir_st500",
    num_train: int = 20,
    num_valid: int = 0,
    num_test: int = 4,
    song_duration_s: float = 30.0,
    seed: int = 0,
    sample_rate: int = 16000,
    with_video: bool = False,
) -> dict:
    """Write a synthetic corpus in the on-disk layout of a real dataset.

    ``layout="mir_st500"``::

        out_dir/Annotations.json            {"1": [[on, off, midi], ...], ...}
        out_dir/wav16kHz/train/<id>/vocals.wav  (+ accomp.wav)
        out_dir/wav16kHz/test/<id>/vocals.wav   (+ accomp.wav)

      Song ids are "1".."N", train first then test.  MIR-ST500 has no
      validation split, so ``num_valid`` songs become extra train ids.

    ``layout="n20emv2"``::

        out_dir/annotations.json  {"song_001": {"midi": [...], "split": "train"}, ...}
        out_dir/data/<entry>/vocals.wav  (+ accomp.wav)
        out_dir/data/<entry>/video_50fps.npy  with ``with_video=True``: uint8
            (T, 96, 96) lip video (``render_lip_video``), T = round(duration * 50),
            aligned with vocals.wav

    ``with_video`` is off by default (a 30-s video takes 13.8 MB) and only
    valid for the n20emv2 layout.  The videos have their own random streams,
    so the audio and notes are the same with and without them.

    Voices cycle through a seeded permutation of ``VOICES``.  Same seed ->
    byte-identical files.  Returns ``{"layout", "root", "annotations",
    "sample_rate", "splits": {split: [ids]}, "songs": {id: {"split", "voice",
    "vocals", "accomp", "num_notes"[, "video"]}}}``.
    """
    if layout not in ("mir_st500", "n20emv2"):
        raise ValueError(f"unknown layout {layout!r}; use 'mir_st500' or 'n20emv2'")
    if with_video and layout != "n20emv2":
        raise ValueError("with_video=True needs layout='n20emv2' (only N20EMv2 has lip videos)")
    counts = [int(num_train), int(num_valid), int(num_test)]
    if min(counts) < 0:
        raise ValueError("song counts must be >= 0")
    total = sum(counts)
    root = os.path.abspath(out_dir)
    os.makedirs(root, exist_ok=True)

    rng = np.random.default_rng(seed)
    perm = [VOICES[i] for i in rng.permutation(len(VOICES))]
    song_seeds = np.random.SeedSequence(seed).spawn(total)

    splits = ["train"] * counts[0] + ["valid"] * counts[1] + ["test"] * counts[2]
    if layout == "mir_st500":
        splits = ["train" if s == "valid" else s for s in splits]

    annotations: dict = {}
    result = {
        "layout": layout,
        "root": root,
        "sample_rate": int(sample_rate),
        "splits": {s: [] for s in ("train", "valid", "test")},
        "songs": {},
    }
    if layout == "mir_st500":
        del result["splits"]["valid"]

    for i in range(total):
        voice = perm[i % len(perm)]
        notes, vocals, accomp = render_song(song_seeds[i], voice, song_duration_s, sample_rate)
        split = splits[i]
        if layout == "mir_st500":
            song_id = str(i + 1)
            song_dir = os.path.join(root, "wav16kHz", split, song_id)
            annotations[song_id] = _note_list(notes)
        else:
            song_id = f"song_{i + 1:03d}"
            song_dir = os.path.join(root, "data", song_id)
            annotations[song_id] = {"midi": _note_list(notes), "split": split}
        vocals_path = os.path.join(song_dir, "vocals.wav")
        accomp_path = os.path.join(song_dir, "accomp.wav")
        write_audio(vocals_path, vocals, sample_rate)
        write_audio(accomp_path, accomp, sample_rate)
        result["splits"][split].append(song_id)
        result["songs"][song_id] = {
            "split": split,
            "voice": voice,
            "vocals": vocals_path,
            "accomp": accomp_path,
            "num_notes": int(len(notes)),
        }
        if with_video:
            # A fourth child of the song's seed, next to render_song's three.
            ss = song_seeds[i]
            video_rng = np.random.default_rng(
                np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (3,)))
            video_path = os.path.join(song_dir, "video_50fps.npy")
            _save_npy(video_path, render_lip_video(notes, song_duration_s, VIDEO_FPS, video_rng))
            result["songs"][song_id]["video"] = video_path

    ann_name = "Annotations.json" if layout == "mir_st500" else "annotations.json"
    result["annotations"] = os.path.join(root, ann_name)
    write_json_atomic(result["annotations"], annotations)
    return result


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m svt.synthetic.singing OUT_DIR --layout mir_st500 --num-train 20 --num-test 4``"""
    p = argparse.ArgumentParser(
        prog="python -m svt.synthetic.singing",
        description="Write a deterministic synthetic singing corpus in a real dataset layout.",
    )
    p.add_argument("out_dir", help="output directory")
    p.add_argument("--layout", choices=["mir_st500", "n20emv2"], default="mir_st500")
    p.add_argument("--num-train", type=int, default=20)
    p.add_argument("--num-valid", type=int, default=0)
    p.add_argument("--num-test", type=int, default=4)
    p.add_argument("--duration", type=float, default=30.0, help="song duration in seconds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--video", action="store_true",
                   help="also write data/<entry>/video_50fps.npy lip videos (n20emv2 layout)")
    args = p.parse_args(argv)
    info = make_corpus(
        args.out_dir,
        layout=args.layout,
        num_train=args.num_train,
        num_valid=args.num_valid,
        num_test=args.num_test,
        song_duration_s=args.duration,
        seed=args.seed,
        sample_rate=args.sample_rate,
        with_video=args.video,
    )
    sizes = ", ".join(f"{k}={len(v)}" for k, v in info["splits"].items())
    print(f"wrote {len(info['songs'])} songs ({sizes}) to {info['root']} [{info['layout']}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
