"""Notes decoded from frame-level predictions.

`frames_to_notes` is the original recipes' `frame2note` post-processor (docs/original-recipes.md §5.2) in
whole-array form: onsets are local maxima of the onset probability over a 7-frame window above
`onset_threshold`; a note ends at the next onset or at the first frame whose offset probability
reaches `offset_threshold`; its pitch is the most frequent `octave*12 + pitch_class` among its
non-silent frames, plus 36. Deliberate differences from the original (its bugs, docs/original-recipes.md §9):

* pitch-vote ties go to the lowest pitch (the original used Python set iteration order);
* a zero-length note (onset tie at the very last frame) is never emitted (mir_eval rejects it);
* 0 or 1 frames give an empty result instead of crashing on an empty window.

Extension (not in the original): with `sung_pitch` (per-frame fractional MIDI from a pitch network,
NaN where unvoiced), each note's pitch is the median sung pitch of its frames, as annotators of
recorded singing mark it, and the class vote only where the note has no voiced frame.
"""
from __future__ import annotations

import numpy as np

from svt.notes.labels import (
    LOWEST_MIDI,
    NUM_OCTAVE_CLASSES,
    NUM_PITCH_CLASSES,
    SILENT_OCTAVE,
    SILENT_PITCH_CLASS,
)

#: The onset-peak window spans frames i-3 .. i+3.
ONSET_HALF_WINDOW = 3
_NUM_VOICED_PITCHES = SILENT_OCTAVE * 12


def _as_1d(name, values, dtype=None):
    if hasattr(values, "detach"):  # torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"frames_to_notes: {name} must be 1-D (one value per frame), "
                         f"got shape {array.shape}")
    return array


def _window_max(onset_prob):
    """max(onset_prob[max(0, i-3) : min(i+4, N-1)]) for every frame i, as the original computes it
    (the N-1 cap excludes the last frame from every window)."""
    n = len(onset_prob)
    padded = np.full(n + 2 * ONSET_HALF_WINDOW, -np.inf, dtype=np.float64)
    padded[ONSET_HALF_WINDOW:ONSET_HALF_WINDOW + n - 1] = onset_prob[:-1]
    # Running maximum of 7 shifted views: much faster than reducing a sliding-window view.
    result = padded[:n].copy()
    for shift in range(1, 2 * ONSET_HALF_WINDOW + 1):
        np.maximum(result, padded[shift:shift + n], out=result)
    return result


def frames_to_notes(onset_prob, offset_prob, octave, pitch_class, onset_threshold: float = 0.4,
                    offset_threshold: float = 0.5, frame_rate: float = 49.8,
                    sung_pitch=None) -> np.ndarray:
    """Decode per-frame predictions to a float64 `(N, 3)` array of `[onset_s, offset_s, midi]`.

    Args:
        onset_prob, offset_prob: per-frame probabilities (1-D numpy arrays or torch tensors).
        octave: per-frame octave class indices 0..4 (4 = silence).
        pitch_class: per-frame pitch-class indices 0..12 (12 = silence).
        onset_threshold, offset_threshold: decision thresholds (paper: 0.4 and 0.5).
        frame_rate: frames per second of the predictions (49.8 for wav2vec2-style audio encoders,
            50 for AV-HuBERT video).
        sung_pitch: optional per-frame fractional MIDI (NaN = unvoiced): each note then gets the
            median over its frames instead of the integer class vote.
    """
    onset_prob = _as_1d("onset_prob", onset_prob, np.float64)
    offset_prob = _as_1d("offset_prob", offset_prob, np.float64)
    octave = _as_1d("octave", octave).astype(np.int64)
    pitch_class = _as_1d("pitch_class", pitch_class).astype(np.int64)
    n = len(onset_prob)
    if not (len(offset_prob) == len(octave) == len(pitch_class) == n):
        raise ValueError(
            "frames_to_notes: onset_prob, offset_prob, octave and pitch_class must have the same "
            f"length, got {n}, {len(offset_prob)}, {len(octave)}, {len(pitch_class)}")
    if n and (octave.min() < 0 or octave.max() >= NUM_OCTAVE_CLASSES):
        raise ValueError(f"frames_to_notes: octave classes must be in 0..{NUM_OCTAVE_CLASSES - 1}")
    if n and (pitch_class.min() < 0 or pitch_class.max() >= NUM_PITCH_CLASSES):
        raise ValueError(
            f"frames_to_notes: pitch classes must be in 0..{NUM_PITCH_CLASSES - 1}")
    empty = np.zeros((0, 3), dtype=np.float64)
    if n < 2:
        return empty
    period = 1 / frame_rate

    is_onset = (onset_prob >= onset_threshold) & (onset_prob == _window_max(onset_prob))
    onsets = np.flatnonzero(is_onset)
    if len(onsets) == 0:
        return empty
    # An offset frame closes the open note unless it is itself an onset (onsets are tested first).
    is_offset = (offset_prob >= offset_threshold) & ~is_onset
    # next_offset[i] = first offset frame >= i (n where there is none).
    next_offset = np.where(is_offset, np.arange(n), n)
    next_offset = np.minimum.accumulate(next_offset[::-1])[::-1]
    next_offset = np.append(next_offset, n)

    next_onset = np.append(onsets[1:], n)
    closing = np.minimum(next_offset[onsets + 1], next_onset)  # frame that ends each note, or n

    # Pitch votes: frames [onset, closing) that are not silent. Histogram per note, argmax picks
    # the most frequent pitch and, on ties, the lowest one.
    voiced = (octave != SILENT_OCTAVE) & (pitch_class != SILENT_PITCH_CLASS)
    note_index = np.cumsum(is_onset) - 1  # note opened most recently at or before each frame
    frame_idx = np.arange(n)
    in_note = (note_index >= 0) & voiced
    in_note[in_note] &= frame_idx[in_note] < closing[note_index[in_note]]
    votes = np.bincount(
        note_index[in_note] * _NUM_VOICED_PITCHES + octave[in_note] * 12 + pitch_class[in_note],
        minlength=len(onsets) * _NUM_VOICED_PITCHES).reshape(len(onsets), _NUM_VOICED_PITCHES)

    has_votes = votes.sum(axis=1) > 0
    offset_frame = np.where(closing < n, closing, n - 1)  # an open note ends at the last frame
    keep = has_votes & (offset_frame > onsets)
    notes = np.empty((int(keep.sum()), 3), dtype=np.float64)
    notes[:, 0] = onsets[keep] * period
    notes[:, 1] = offset_frame[keep] * period
    notes[:, 2] = votes[keep].argmax(axis=1) + LOWEST_MIDI
    if sung_pitch is not None:
        sung = _as_1d("sung_pitch", sung_pitch, np.float64)
        if len(sung) != n:
            raise ValueError(f"frames_to_notes: sung_pitch has {len(sung)} frames, expected {n}")
        spans = zip(onsets[keep], offset_frame[keep])
        medians = np.array([_median_or_nan(sung[a:max(b, a + 1)]) for a, b in spans])
        if len(medians):
            voiced_median = np.isfinite(medians)
            notes[voiced_median, 2] = medians[voiced_median]
    return notes


def _median_or_nan(values):
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else np.nan


def voiced_runs(voiced, bridge_frames: int = 1, min_frames: int = 5) -> np.ndarray:
    """`(R, 2)` frame spans `[start, stop)` of the voiced runs of a boolean sequence: gaps of at
    most `bridge_frames` unvoiced frames are bridged, runs shorter than `min_frames` dropped."""
    voiced = np.asarray(voiced, dtype=bool)
    frames = np.flatnonzero(voiced)
    if len(frames) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(frames) > bridge_frames + 1)
    starts = np.r_[frames[0], frames[breaks + 1]]
    stops = np.r_[frames[breaks] + 1, frames[-1] + 1]
    keep = stops - starts >= min_frames
    return np.stack([starts[keep], stops[keep]], axis=1)


def voiced_frames_to_notes(onset_prob, sung_pitch, onset_threshold: float = 0.2,
                           frame_rate: float = 100.0, min_frames: int = 5,
                           bridge_frames: int = 1) -> np.ndarray:
    """Notes where the pitch network hears a voice, split at the model's onsets.

    For models with a pitch network (`sung_pitch`: per-frame fractional MIDI, NaN = unvoiced).
    Every voiced run (`voiced_runs`) is a note, cut at each onset peak (a local maximum of
    `onset_prob` over 7 frames, as in `frames_to_notes`, at or above `onset_threshold`) that lies
    at least `min_frames` inside it: a sung note cannot sound without voicing, and a change of
    note inside a voiced stretch (legato, a glide, a repeated note on a breathless syllable) is
    what the learned onset marks. Each piece of at least `min_frames` frames is a note whose pitch
    is the median sung pitch over its frames."""
    onset_prob = _as_1d("onset_prob", onset_prob, np.float64)
    sung = _as_1d("sung_pitch", sung_pitch, np.float64)
    if len(onset_prob) != len(sung):
        raise ValueError(f"voiced_frames_to_notes: onset_prob has {len(onset_prob)} frames but "
                         f"sung_pitch {len(sung)}")
    if len(sung) < 2:
        return np.zeros((0, 3), dtype=np.float64)
    is_peak = (onset_prob >= onset_threshold) & (onset_prob == _window_max(onset_prob))
    peaks = np.flatnonzero(is_peak)
    notes = []
    for start, stop in voiced_runs(np.isfinite(sung), bridge_frames, min_frames):
        inside = peaks[(peaks >= start + min_frames) & (peaks <= stop - min_frames)]
        cuts = np.r_[start, inside, stop]
        for a, b in zip(cuts[:-1], cuts[1:]):
            pitch = _median_or_nan(sung[a:b])
            if b - a >= min_frames and np.isfinite(pitch):
                notes.append((a / frame_rate, b / frame_rate, pitch))
    return np.array(notes, dtype=np.float64).reshape(-1, 3)


#: Decoders a bundle or recipe can name (`decoder:`): the paper's, or voicing-gated (pitch network).
DECODERS = ("paper", "voiced")


def decode_frames(frames, decoder: str = "paper", onset_threshold: float = 0.4,
                  offset_threshold: float = 0.5, frame_rate: float = 49.8) -> np.ndarray:
    """Notes from frame predictions `(onset, offset, octave, pitch_class[, sung_pitch])` with the
    named decoder: "paper" (`frames_to_notes`, the sung pitch replacing the class vote when
    given) or "voiced" (`voiced_frames_to_notes`, which needs the sung pitch)."""
    sung_pitch = frames[4] if len(frames) > 4 else None
    if decoder == "paper":
        return frames_to_notes(*frames[:4], onset_threshold=onset_threshold,
                               offset_threshold=offset_threshold, frame_rate=frame_rate,
                               sung_pitch=sung_pitch)
    if decoder == "voiced":
        if sung_pitch is None:
            raise ValueError("decoder 'voiced' needs a model with a pitch network (sung_pitch); "
                             "use decoder 'paper'")
        return voiced_frames_to_notes(frames[0], sung_pitch, onset_threshold=onset_threshold,
                                      frame_rate=frame_rate)
    raise ValueError(f"unknown decoder {decoder!r}; choose one of {list(DECODERS)}")
