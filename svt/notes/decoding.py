"""Notes decoded from frame-level predictions.

`frames_to_notes` is the original recipes' `frame2note` post-processor (docs/original-recipes.md §5.2) in
whole-array form: onsets are local maxima of the onset probability over a 7-frame window above
`onset_threshold`; a note ends at the next onset or at the first frame whose offset probability
reaches `offset_threshold`; its pitch is the most frequent `octave*12 + pitch_class` among its
non-silent frames, plus 36. Deliberate differences from the original (its bugs, docs/original-recipes.md §9):

* pitch-vote ties go to the lowest pitch (the original used Python set iteration order);
* a zero-length note (onset tie at the very last frame) is never emitted (mir_eval rejects it);
* 0 or 1 frames give an empty result instead of crashing on an empty window.
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
                    offset_threshold: float = 0.5, frame_rate: float = 49.8) -> np.ndarray:
    """Decode per-frame predictions to a float64 `(N, 3)` array of `[onset_s, offset_s, midi]`.

    Args:
        onset_prob, offset_prob: per-frame probabilities (1-D numpy arrays or torch tensors).
        octave: per-frame octave class indices 0..4 (4 = silence).
        pitch_class: per-frame pitch-class indices 0..12 (12 = silence).
        onset_threshold, offset_threshold: decision thresholds (paper: 0.4 and 0.5).
        frame_rate: frames per second of the predictions (49.8 for wav2vec2-style audio encoders,
            50 for AV-HuBERT video).
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
    return notes
