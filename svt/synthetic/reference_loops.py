"""Per-frame loop versions of the original `note2frame` and `frame2note` (docs/original-recipes.md §2.4 and §5.2).

They are the executable form of the specification, written as literally as the original: tests use
them to show where the whole-array versions in `svt.notes.labels` / `svt.notes.decoding` agree and where they
deliberately fix a bug, and `benchmarks/` times them as the baseline. Do not use them for real
work: they are slow and carry the original's bugs (only the pitch-vote tie rule is set to "lowest
pitch wins" so that results are defined).
"""
from __future__ import annotations

import numpy as np


def _classes(pitch):
    return int(min(max(0, (pitch - 36) // 12), 3)), pitch % 12


def note2frame_loop(notes, num_frames, frame_rate):
    """Literal port of the original note2frame (including its bugs)."""
    period = 1 / frame_rate
    labels = []
    k = 0
    onset, offset, pitch = notes[0]
    octave, pitch_class = _classes(pitch)
    for i in range(num_frames):
        t = i * period
        if abs(t - onset) <= period / 2:
            if i == 0 or labels[i - 1][0] != 1:
                labels.append([1, 0, octave, pitch_class])
            else:
                labels.append([0, 0, octave, pitch_class])
        elif t < onset or k >= len(notes):
            labels.append([0, 1, 4, 12])
        elif abs(t - offset) <= period / 2:
            label = [0, 1, octave, pitch_class]
            k += 1
            if k < len(notes):
                onset, offset, pitch = notes[k]
                octave, pitch_class = _classes(pitch)
                if abs(t - onset) <= period / 2:
                    label = [1, 0, octave, pitch_class]
            labels.append(label)
        else:
            labels.append([0, 0, octave, pitch_class])
    return np.asarray(labels)


def frame2note_loop(onset_prob, offset_prob, octave, pitch_class, onset_threshold=0.4,
                    offset_threshold=0.5, frame_rate=49.8):
    """Literal port of the original frame2note; pitch-vote ties go to the lowest pitch."""
    period = 1 / frame_rate
    n = len(onset_prob)
    notes = []
    current_onset = None
    votes = []

    def mode(values):
        counts = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        best = max(counts.values())
        return min(v for v, c in counts.items() if c == best)

    for i in range(n):
        t = i * period
        window = onset_prob[max(0, i - 3):min(i + 4, n - 1)]
        if onset_prob[i] >= onset_threshold and onset_prob[i] == np.amax(window):
            if current_onset is None:
                current_onset = t
            else:
                if votes:
                    notes.append([current_onset, t, mode(votes) + 36])
                current_onset = t
                votes = []
        elif offset_prob[i] >= offset_threshold and current_onset is not None:
            if votes:
                notes.append([current_onset, t, mode(votes) + 36])
            current_onset = None
            votes = []
        if current_onset is not None and octave[i] != 4 and pitch_class[i] != 12:
            votes.append(int(octave[i] * 12 + pitch_class[i]))
    if current_onset is not None and votes:
        notes.append([current_onset, (n - 1) * period, mode(votes) + 36])
    return np.asarray(notes, dtype=np.float64).reshape(-1, 3)
