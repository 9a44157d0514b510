"""Reference transcribers the shipped model is measured against (benchmarks/bench_real.py).

`pyin_notes` is the classic pitch-tracker-plus-rules transcriber (in the spirit of Tony): librosa's
probabilistic YIN gives an f0 contour at 100 frames/s, and `contour_to_notes` cuts it into notes
where the voicing stops or the pitch moves to a new level and stays there. Each note's pitch is the
median f0 of its frames: the sung pitch, fractional MIDI (`rounded=True` gives the semitone, which
is what integer-pitch transcribers report).
"""
from __future__ import annotations

import numpy as np
from mir_eval.util import hz_to_midi
from scipy.ndimage import median_filter

PYIN_HOP = 160  # 10 ms at 16 kHz
PYIN_SAMPLE_RATE = 16000


def contour_to_notes(midi, frame_rate: float, jump: float = 0.75, hold_frames: int = 5,
                     min_duration: float = 0.08, smooth_frames: int = 5, rounded: bool = False):
    """Notes `(N, 3)` from a per-frame pitch contour in fractional MIDI (NaN = unvoiced).

    A note runs over consecutive voiced frames; a new one starts where the (median-smoothed)
    pitch stays more than `jump` semitones away from the running note's median for `hold_frames`
    frames (a change of level, not vibrato or a scoop). Notes shorter than `min_duration` are
    dropped."""
    midi = np.asarray(midi, dtype=np.float64)
    voiced = np.isfinite(midi)
    smooth = midi.copy()
    if smooth_frames > 1 and voiced.any():
        filled = np.where(voiced, midi, np.interp(np.arange(len(midi)), np.flatnonzero(voiced),
                                                  midi[voiced]))
        smooth = np.where(voiced, median_filter(filled, size=smooth_frames, mode="nearest"),
                          np.nan)
    segments, start, level_frames = [], None, []
    away = 0
    for t in range(len(smooth) + 1):
        value = smooth[t] if t < len(smooth) else np.nan
        if not np.isfinite(value):
            if start is not None:
                segments.append((start, t))
            start, level_frames, away = None, [], 0
            continue
        if start is None:
            start, level_frames, away = t, [value], 0
            continue
        level = float(np.median(level_frames[-50:]))
        away = away + 1 if abs(value - level) > jump else 0
        if away >= hold_frames:
            cut = t - hold_frames + 1
            segments.append((start, cut))
            start, level_frames, away = cut, list(smooth[cut:t + 1]), 0
        else:
            level_frames.append(value)
    notes = []
    for a, b in segments:
        if (b - a) / frame_rate < min_duration:
            continue
        pitch = float(np.median(midi[a:b][np.isfinite(midi[a:b])]))
        notes.append((a / frame_rate, b / frame_rate, round(pitch) if rounded else pitch))
    return np.array(notes, dtype=np.float64).reshape(-1, 3)


def pyin_contour(wav, sample_rate: int = PYIN_SAMPLE_RATE, fmin: float = 65.0,
                 fmax: float = 1050.0) -> np.ndarray:
    """librosa's pYIN f0 of a mono waveform as fractional MIDI at 100 frames/s (NaN where
    unvoiced); 16 kHz expected, other rates are resampled."""
    import librosa

    from svt.audio import check_sample_rate, resample

    wav = np.asarray(wav, dtype=np.float32)
    if sample_rate != PYIN_SAMPLE_RATE:
        # The project's one resampler (soxr, librosa's own default): memory that does not
        # depend on the ratio, and refused rates no recording has.
        check_sample_rate(int(sample_rate), "pYIN")
        wav = resample(wav, int(sample_rate), PYIN_SAMPLE_RATE)
    f0, voiced, _ = librosa.pyin(wav, fmin=fmin, fmax=fmax, sr=PYIN_SAMPLE_RATE,
                                 frame_length=1024, hop_length=PYIN_HOP, center=True)
    return np.where(voiced & np.isfinite(f0), hz_to_midi(np.nan_to_num(f0, nan=1.0)), np.nan)


def pyin_notes(wav, sample_rate: int = PYIN_SAMPLE_RATE, rounded: bool = False,
               fmin: float = 65.0, fmax: float = 1050.0):
    """Transcribe a mono waveform with pYIN (`pyin_contour`) + `contour_to_notes`."""
    midi = pyin_contour(wav, sample_rate, fmin, fmax)
    return contour_to_notes(midi, PYIN_SAMPLE_RATE / PYIN_HOP, rounded=rounded)


def sung_pitches(notes, contour, frame_rate: float = PYIN_SAMPLE_RATE / PYIN_HOP) -> np.ndarray:
    """The pitch sung during each note `[onset, offset, midi]`: the median of the f0 `contour`
    (fractional MIDI, NaN = unvoiced) over the note's frames; NaN where none is voiced.

    Annotators write down a pitch per note; comparing it with what was sung tells an annotation
    convention (or a mistake) from a transcriber's error (benchmarks/bench_real.py
    --sung-reference)."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    out = np.full(len(notes), np.nan)
    for k, (onset, offset, _) in enumerate(notes):
        span = contour[int(round(onset * frame_rate)):max(int(round(offset * frame_rate)),
                                                           int(round(onset * frame_rate)) + 1)]
        span = span[np.isfinite(span)]
        if len(span):
            out[k] = float(np.median(span))
    return out
