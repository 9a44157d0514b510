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

    votes = _pitch_votes(octave, pitch_class, onsets, closing)
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


def _head_voiced(octave, pitch_class) -> np.ndarray:
    """Frames where the head hears a pitch (neither its silent octave nor its silent class)."""
    return (octave != SILENT_OCTAVE) & (pitch_class != SILENT_PITCH_CLASS)


def _pitch_votes(octave, pitch_class, starts, stops) -> np.ndarray:
    """Counts `(N, 60)` of the head's pitches (`octave * 12 + pitch_class`) over the frames
    `[starts[i], stops[i])` of N non-overlapping spans sorted by start, silent frames left out:
    argmax picks each span's most frequent pitch and, on ties, the lowest one."""
    frame = np.arange(len(octave))
    voiced = _head_voiced(octave, pitch_class)
    span = np.searchsorted(starts, frame, side="right") - 1  # span begun last at or before
    inside = (span >= 0) & voiced
    inside[inside] &= frame[inside] < np.asarray(stops)[span[inside]]
    return np.bincount(
        span[inside] * _NUM_VOICED_PITCHES + octave[inside] * 12 + pitch_class[inside],
        minlength=len(starts) * _NUM_VOICED_PITCHES).reshape(len(starts), _NUM_VOICED_PITCHES)


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


#: A voiced run starts a note only where the onset head heard a start: `onset_prob` at or above
#: `START_EVIDENCE` within `START_EVIDENCE_FRAMES` of the run's first frame (frames
#: `[start - 5, start + 5)`, the 50-ms onset tolerance). A voiced stretch the onset head did not
#: hear begin is mostly an instrument the pitch network followed, or a pitched breath; its notes
#: begin at its first onset peak instead. Measured with the shipped model (COnP / COn F1, notes
#: found per annotated note): SSVD 68.73 / 85.01 / 1.04 -> 68.87 / 85.18 / 1.03, with a backing
#: track at 0 dB 22.88 / 57.65 / 1.67 -> 24.52 / 62.49 / 1.37, generated legato songs
#: 67.50 / 74.81 -> 68.04 / 75.40 and a recorded male voice 78.21 / 81.53 -> 79.37 / 82.75
#: (docs/shipped-model.md, "Second generation").
START_EVIDENCE = 0.2
START_EVIDENCE_FRAMES = 5


def heard_start(onset_prob, start: int, evidence: float = START_EVIDENCE,
                frames: int = START_EVIDENCE_FRAMES) -> bool:
    """Whether `onset_prob` reaches `evidence` in frames `[start - frames, start + frames)`."""
    near = onset_prob[max(0, start - frames):start + frames]
    return bool(len(near) and np.max(near) >= evidence)


def _runs_cut_at_onsets(caller, onset_prob, sung_pitch, onset_threshold, min_frames,
                        bridge_frames, start_evidence=None):
    """`(sung, [(start, stop, cuts), ...])`: the voiced runs of `sung_pitch` with the onset peaks
    at least `min_frames` inside each (`cuts` includes the run's ends). With `start_evidence`,
    a run whose start was not heard (`heard_start`) begins at its first inside peak, and a run
    without one is left out."""
    onset_prob = _as_1d("onset_prob", onset_prob, np.float64)
    sung = _as_1d("sung_pitch", sung_pitch, np.float64)
    if len(onset_prob) != len(sung):
        raise ValueError(f"{caller}: onset_prob has {len(onset_prob)} frames but "
                         f"sung_pitch {len(sung)}")
    if len(sung) < 2:
        return sung, []
    is_peak = (onset_prob >= onset_threshold) & (onset_prob == _window_max(onset_prob))
    peaks = np.flatnonzero(is_peak)
    runs = []
    for start, stop in voiced_runs(np.isfinite(sung), bridge_frames, min_frames):
        inside = peaks[(peaks >= start + min_frames) & (peaks <= stop - min_frames)]
        cuts = np.r_[start, inside, stop]
        if start_evidence is not None and not heard_start(onset_prob, start, start_evidence):
            if len(inside) == 0:
                continue
            start, cuts = int(inside[0]), cuts[1:]
        runs.append((start, stop, cuts))
    return sung, runs


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
    sung, runs = _runs_cut_at_onsets("voiced_frames_to_notes", onset_prob, sung_pitch,
                                     onset_threshold, min_frames, bridge_frames)
    notes = []
    for _, _, cuts in runs:
        for a, b in zip(cuts[:-1], cuts[1:]):
            pitch = _median_or_nan(sung[a:b])
            if b - a >= min_frames and np.isfinite(pitch):
                notes.append((a / frame_rate, b / frame_rate, pitch))
    return np.array(notes, dtype=np.float64).reshape(-1, 3)


def pitch_level_cuts(pitch, penalty: float = 32.0, min_frames: int = 12) -> np.ndarray:
    """Frames where a piecewise-constant fit of `pitch` (finite, semitones) changes level.

    The optimal segmentation under a least-squares cost with `penalty` per extra segment and no
    segment shorter than `min_frames`, found by dynamic programming with PELT pruning (Killick et
    al., 2012), so the work grows about linearly with the length of a stable note rather than with
    its square. A change of level costs less than `penalty` only when the two sides differ by
    more than vibrato, a scoop or drift would explain: with 10-ms frames, two 12-frame levels a
    semitone apart lower the squared error by about 6 per 12 frames of each, so the default
    penalty splits notes of ordinary length that move by about a semitone or more, and keeps 80
    cents of vibrato as one note. Returns the cut frames, sorted, excluding 0 and len(pitch)."""
    x = np.asarray(pitch, dtype=np.float64)
    n = len(x)
    if n < 2 * min_frames:
        return np.zeros(0, dtype=np.int64)
    # No segmentation can lower the squared error by more than the whole stretch's error about
    # its mean, so a stretch whose error is within one penalty has no cut worth paying for: the
    # answer without the search (most notes of steady singing).
    if float(np.sum((x - x.mean()) ** 2)) <= penalty:
        return np.zeros(0, dtype=np.int64)
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    previous = np.zeros(n + 1, dtype=np.int64)
    candidates = np.empty(n + 1, dtype=np.int64)  # the live segment starts are candidates[:live]
    live = 0
    for j in range(min_frames, n + 1):
        candidates[live] = j - min_frames  # segments [i, j) of >= min_frames
        live += 1
        starts = candidates[:live]
        cost = s2[j] - s2[starts] - (s1[j] - s1[starts]) ** 2 / (j - starts)
        total = best[starts] + cost
        k = int(np.argmin(total))
        best[j] = total[k] + penalty
        previous[j] = starts[k]
        # PELT: a start that is already worse than the best split plus a new segment can never
        # become optimal later (the least-squares cost only grows by extending a segment).
        kept = starts[total <= best[j]]
        live = len(kept)
        candidates[:live] = kept
    cuts, j = [], n
    while j > 0:
        j = int(previous[j])
        if j > 0:
            cuts.append(j)
    return np.array(sorted(cuts), dtype=np.int64)


#: Narrowest window (semitones) in which `stable_pitch` takes a note's pitch: where the voice
#: dwells within the scoring's +-50 cents. Measured with the shipped model against the plain
#: median of the stable part, the window widened for vibrato as below (COnP F1): SSVD 70.63 ->
#: 71.17, generated legato songs +0.29, recorded-voice legato +0.18, recorded male voice +0.33,
#: songs of every articulation +0.68, with a backing track +0.15 / 0.00, Festival's voices 0.00,
#: in rooms +0.14 to +0.57 (docs/shipped-model.md, "A note's pitch where the voice dwells").
STABLE_WINDOW_SEMITONES = 1.0
#: Vibrato is measured on what a moving mean of this many frames (250 ms at 100 frames per
#: second, a cycle of 4 Hz vibrato) leaves out, in stable parts of at least
#: `VIBRATO_MIN_FRAMES` (two cycles of 4 Hz). The window is widened to `VIBRATO_WINDOW_GAIN`
#: times that component's amplitude (sqrt(2) x its standard deviation): the moving mean keeps
#: between -21 % and +14 % of a 3.5-8 Hz vibrato, so the window spans 2.6-3.6 times the
#: vibrato's extent and holds whole cycles. A 1-semitone window alone would sit at one extreme
#: of a vibrato wider than +-50 cents, where a sinusoid dwells longest: 0.5 semitone off for
#: +-80 cents, common in classical singing. A 150-ms mean (15 frames) measured the same on the
#: evaluation sets but SSVD (-0.14 COnP) and missed vibrato slower than 5 Hz.
VIBRATO_SMOOTHING_FRAMES = 25
VIBRATO_MIN_FRAMES = 50
VIBRATO_WINDOW_GAIN = 3.0


def stable_pitch(sung, head_frames: int = 4, tail_frames: int = 2,
                 window: float | None = STABLE_WINDOW_SEMITONES) -> float:
    """A note's pitch from its stable part, where the voice dwells.

    The stable part leaves out the first `head_frames` (the transition or scoop into the note)
    and the last `tail_frames` (the release), each trimmed to at most a third / a quarter of the
    note. Its pitch is the median of the voiced frames inside the span of `window` semitones
    (widened to hold whole cycles of the note's vibrato, see `VIBRATO_WINDOW_GAIN`) that holds
    the most of them, the lowest such span on a tie. Unlike the plain median it leaves out the
    rest of a scoop or fall longer than the trim and the shorter of two levels a merged note
    holds; for a note sung on one pitch, without vibrato or with a vibrato of 3.5-8 Hz held for
    at least half a second, it is the plain median.
    `window=None` (or fewer than 3 voiced frames) takes the plain median of the stable part.
    NaN where nothing is voiced; the whole note's median where only the trimmed frames are."""
    sung = np.asarray(sung, dtype=np.float64)
    n = len(sung)
    head, tail = min(head_frames, n // 3), min(tail_frames, n // 4)
    part = sung[head:n - tail]
    voiced = np.isfinite(part)
    if not voiced.any():
        return _median_or_nan(sung)
    if window is None or voiced.sum() < 3:
        return float(np.median(part[voiced]))
    if len(part) >= VIBRATO_MIN_FRAMES:
        from scipy.ndimage import uniform_filter1d  # lazily: keeps `import svt.notes` light

        contour = np.interp(np.arange(len(part)), np.flatnonzero(voiced), part[voiced])
        wobble = contour - uniform_filter1d(contour, VIBRATO_SMOOTHING_FRAMES, mode="nearest")
        window = max(window, VIBRATO_WINDOW_GAIN * np.sqrt(2.0) * float(np.std(wobble[voiced])))
    values = np.sort(part[voiced])
    # For each sorted value, the end of the window starting there; the fullest window wins.
    ends = np.searchsorted(values, values + window, side="right")
    first = int(np.argmax(ends - np.arange(len(values))))
    return float(np.median(values[first:ends[first]]))


#: Median filter (frames) that removes single-frame pitch errors (octave slips) before levels.
LEVEL_SMOOTHING_FRAMES = 5
#: A piece of a voiced run (from its start or an onset peak to the next) whose first level cut
#: falls within this many frames of its start keeps that stretch in the note that follows: the
#: onset head fired in the middle of a glide and the pitch's step marks the same transition
#: again where it arrives (most such cuts), or the voice scooped into the note. The fragment
#: between them, 100-120 ms at a pitch on the way (a median 2-3 semitones from the note), is
#: not a note. Measured with the shipped model (COnP / COn F1) it gains on every set, clean,
#: with a backing track and reverberant: SSVD 70.34 / 86.41 -> 70.62 / 86.45, generated legato
#: songs 78.79 / 85.49 -> 84.41 / 87.40, songs of every articulation 83.88 / 89.88 -> 88.98 /
#: 91.74 (docs/shipped-model.md, "A note does not change level in its first 120 ms"); any value
#: from 10 (the shortest level, 12 frames, less the 2-frame lead) to 14 gains on all of them.
SCOOP_FRAMES = 12


def pitch_frames_to_notes(onset_prob, sung_pitch, onset_threshold: float = 0.4,
                          frame_rate: float = 100.0, min_frames: int = 5,
                          bridge_frames: int = 1, level_penalty: float = 32.0,
                          level_min_frames: int = 12, level_lead_frames: int = 2,
                          start_evidence: float | None = START_EVIDENCE,
                          scoop_frames: int = SCOOP_FRAMES) -> np.ndarray:
    """Notes that follow the sung pitch: voiced runs, cut at the learned onsets *and* where the
    sung pitch settles on a new level.

    For models with a pitch network (`sung_pitch`: per-frame fractional MIDI, NaN = unvoiced).
    As in `voiced_frames_to_notes`, a note needs voicing and every onset peak at or above
    `onset_threshold` inside a voiced run cuts it: the onset head hears consonants, breaths and
    repeated notes. Legato singing moves to a new note without any of these, and the onset head
    rarely fires there, so each piece is then split where its (median-filtered) pitch contour
    changes level (`pitch_level_cuts` with `level_penalty` and `level_min_frames`): vibrato,
    scoops, portamento and drift stay inside one note. A level cut is placed
    `level_lead_frames` before the least-squares change point, which sits in the middle of the
    glide: a note begins where the voice starts to move to it. A piece's first level cut within
    `scoop_frames` of the piece's start is not made (see `SCOOP_FRAMES`; 0: every cut is).
    Each note's pitch is `stable_pitch` of its frames (not the transition into it). A voiced
    run whose start the onset head did not hear (`start_evidence`, see `START_EVIDENCE`; None:
    every run) begins at its first onset peak."""
    sung, runs = _runs_cut_at_onsets("pitch_frames_to_notes", onset_prob, sung_pitch,
                                     onset_threshold, min_frames, bridge_frames, start_evidence)
    notes = []
    for start, stop, onset_cuts in runs:
        run = sung[start:stop]
        finite = np.isfinite(run)  # bridged unvoiced frames: the neighbours' pitch
        run = np.interp(np.arange(len(run)), np.flatnonzero(finite), run[finite])
        if LEVEL_SMOOTHING_FRAMES > 1:
            from scipy.ndimage import median_filter  # lazily: keeps `import svt.notes` light

            run = median_filter(run, size=LEVEL_SMOOTHING_FRAMES, mode="nearest")
        level_cuts = []
        for a, b in zip(onset_cuts[:-1], onset_cuts[1:]):
            piece_cuts = a + pitch_level_cuts(run[a - start:b - start], level_penalty,
                                              level_min_frames) - level_lead_frames
            if len(piece_cuts) and piece_cuts[0] - a <= scoop_frames:
                piece_cuts = piece_cuts[1:]  # the glide or scoop into the next note
            level_cuts.append(piece_cuts)
        cuts = np.unique(np.concatenate([onset_cuts, *level_cuts]))
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b - a < min_frames:
                continue
            pitch = stable_pitch(sung[a:b])
            if np.isfinite(pitch):
                notes.append((a / frame_rate, b / frame_rate, pitch))
    return np.array(notes, dtype=np.float64).reshape(-1, 3)


#: A recording where the head's pitch and the pitch network's differ by more than
#: `STRAY_SEMITONES` on more than `STRAY_SHARE` of the notes is one where the pitch network
#: follows something other than the voice (an accompaniment's chords or bass): measured per
#: recording with the shipped model, that share is at most 0.24 on clean singing (SSVD, generated
#: legato, detached and mixed songs, a recorded male voice) and a median 0.51 and 0.71 with a
#: backing track at 0 dB (SSVD, generated songs). See `head_pitch_where_pitch_network_strays`.
STRAY_SEMITONES = 1.5
STRAY_SHARE = 0.3
#: A stream (`svt.inference.live.NoteTracker`) cannot know the share over the whole recording:
#: it applies the rule to a note that strays once at least this many notes were heard and the
#: share so far is over `STRAY_SHARE`. Measured on the offline frames of the shipped model, with
#: a backing track at 0 dB it keeps most of the offline rule's gain (SSVD COnP 24.52 -> 30.93,
#: offline 32.28; generated songs 13.15 -> 17.47, offline 25.00) and on clean singing it changes
#: nothing (SSVD, generated legato and mixed songs, a recorded male voice; 5 notes took a male
#: voice's COnP 0.19 lower).
STRAY_MIN_NOTES = 10


def head_pitch_votes(notes, octave, pitch_class, frame_rate: float) -> np.ndarray:
    """Each note's pitch by the head: the most frequent `octave * 12 + pitch_class` (+ the
    lowest MIDI note) over its frames, ties to the lowest, as `frames_to_notes` votes; NaN for a
    note without a voiced head frame. `notes`: `[onset_s, offset_s, ...]` on the frame grid, in
    time order, not overlapping (a decoder's notes)."""
    octave = _as_1d("octave", octave).astype(np.int64)
    pitch_class = _as_1d("pitch_class", pitch_class).astype(np.int64)
    spans = np.rint(np.asarray(notes, dtype=np.float64)[:, :2] * frame_rate).astype(np.int64)
    counts = _pitch_votes(octave, pitch_class, spans[:, 0], spans[:, 1])
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1) + LOWEST_MIDI, np.nan)


def head_midi(octave, pitch_class) -> np.ndarray:
    """The head's pitch of each frame in MIDI (`octave * 12 + pitch_class` + the lowest MIDI
    note), NaN where it hears silence."""
    octave = _as_1d("octave", octave).astype(np.int64)
    pitch_class = _as_1d("pitch_class", pitch_class).astype(np.int64)
    return np.where(_head_voiced(octave, pitch_class), octave * 12 + pitch_class + LOWEST_MIDI,
                    np.nan)


def head_vote(midi) -> float:
    """A note's pitch by the head from its frames' `head_midi`: the most frequent, ties to the
    lowest (as `head_pitch_votes`); NaN without a voiced frame."""
    midi = np.asarray(midi, dtype=np.float64)
    values, counts = np.unique(midi[np.isfinite(midi)], return_counts=True)
    return float(values[counts.argmax()]) if len(values) else float("nan")


def strayed_from_head(pitch, vote):
    """Whether the pitch network's note pitch is more than `STRAY_SEMITONES` from the head's
    vote (never where the head has no vote); elementwise on arrays."""
    return np.isfinite(vote) & (np.abs(np.asarray(pitch) - vote) > STRAY_SEMITONES)


def head_pitch_where_pitch_network_strays(notes, octave, pitch_class,
                                          frame_rate: float = 100.0) -> np.ndarray:
    """Notes whose pitch is the head's vote (`head_pitch_votes`, a whole MIDI note) where the
    pitch network strayed from the voice, and unchanged elsewhere.

    The pitch decoder gives each note the pitch network's sung pitch, which is exact on a voice
    alone but follows the loudest periodic sound: with a backing track FCPE often reports a chord
    tone or the bass. The head was trained on songs with backing tracks and votes the sung note
    from the whole context. Where they disagree by more than `STRAY_SEMITONES` on more than
    `STRAY_SHARE` of a recording's notes, the disagreeing notes take the head's vote; on a
    recording below that share nothing changes (there the head is the one that errs)."""
    notes = np.array(notes, dtype=np.float64).reshape(-1, 3)
    if len(notes) == 0:
        return notes
    votes = head_pitch_votes(notes, octave, pitch_class, frame_rate)
    strays = strayed_from_head(notes[:, 2], votes)
    if strays.mean() > STRAY_SHARE:
        notes[strays, 2] = votes[strays]
    return notes


#: A note needs the head to hear one: a note on whose frames the head hears silence (its octave
#: class "silent", `head_midi` NaN) more than `HEAD_SILENCE_SHARE` of the time is left out. The
#: pitch network calls voiced whatever periodic sound it follows (an instrument of a backing
#: track between sung notes, a pitched breath or hum), the head was trained to answer silence
#: there. Measured with the shipped model, decoded offline (COnP / COn F1, notes found per note
#: annotated), it gains on every set and most with a backing track: SSVD at 0 dB SNR 45.51 /
#: 67.09 / 1.42 -> 47.87 / 70.20 / 1.29, generated songs at 0 dB 44.60 / 61.55 -> 45.92 / 63.20,
#: Festival's voices 70.62 -> 71.36, a recorded male voice 70.24 -> 70.54, clean SSVD 70.26 /
#: 86.37 -> 70.34 / 86.41 (docs/shipped-model.md, "A note needs the head to hear one"). Any
#: share from 0.8 to "every frame" gains on all of them but the male voice at 0.8.
HEAD_SILENCE_SHARE = 0.9


def head_hears_silence(midi) -> bool:
    """Whether the head hears silence on more than `HEAD_SILENCE_SHARE` of a note's frames, from
    their `head_midi` (NaN: silence; an infinite value stands for a frame whose head pitch is not
    known, which counts as heard)."""
    midi = np.asarray(midi, dtype=np.float64)
    return bool(len(midi) and np.mean(np.isnan(midi)) > HEAD_SILENCE_SHARE)


def notes_the_head_hears(notes, octave, pitch_class, frame_rate: float = 100.0) -> np.ndarray:
    """The notes without those on whose frames the head hears silence (`head_hears_silence`).
    `notes`: `[onset_s, offset_s, midi]` on the frame grid (a decoder's notes, before any onset
    delay)."""
    notes = np.array(notes, dtype=np.float64).reshape(-1, 3)
    if len(notes) == 0:
        return notes
    midi = head_midi(octave, pitch_class)
    spans = np.rint(notes[:, :2] * frame_rate).astype(np.int64)
    keep = [not head_hears_silence(midi[max(a, 0):b]) for a, b in spans]
    return notes[np.asarray(keep, dtype=bool)]


#: Offset probabilities within this of a note's strongest are a tie (`heard_offset`), which goes
#: to the first. The head's offset output saturates: after a note it stays at 0.9999... while the
#: voice decays, through a room's reverberation and in silence, creeping up in the last digits,
#: so the strongest frame of such a plateau is arbitrary and most often its end, far after the
#: note in a reverberant room. Measured on the shipped model's frames (docs/shipped-model.md,
#: "A note ends where the head's offset output first saturates"): with any tie up to 1.2e-4 no
#: set loses COnPOff or COff, dry or reverberant, and from 1e-5 on every set gains; the recorded
#: voices do best at 3e-5 (gcin-voice's male speaker, Festival's) and 1e-4 (SSVD), and 5e-5 lies
#: between them.
OFFSET_TIE = 5e-5


def heard_offset(offset_prob, start: int, stop: int, threshold: float = 0.5,
                 min_frames: int = 5, tie: float = OFFSET_TIE) -> int:
    """The frame a note of frames `[start, stop)` ends at by the head: the first frame of the
    note's second half (never within its first `min_frames`) whose offset probability is within
    `tie` of the strongest there, when that reaches `threshold`; `stop` otherwise.

    The head's offset output means "a note ends here, or nothing sounds" (`svt.notes.labels`:
    silence frames carry the offset flag). The pitch network keeps a stretch voiced through a
    breath or a short rest between notes, a release or a room's reverberation, so a voiced
    stretch often ends after the note and a note cut at the next onset spans the rest before
    it. The strongest offset in the second half of the note is where the head is surest the note
    is over (the first frame above a threshold is not: in recorded voices the head's offset output
    rises early in a note's decay and now and then inside a held note); where the output is
    saturated over many frames, the first of them (`OFFSET_TIE`)."""
    lo = max(start + min_frames, (start + stop) // 2)
    if lo >= stop:
        return stop
    second_half = np.asarray(offset_prob[lo:stop], dtype=np.float64)
    strongest = second_half.max()
    if not strongest >= threshold:
        return stop
    return lo + int(np.argmax(second_half >= strongest - tie))


def notes_end_where_the_head_hears(notes, offset_prob, threshold: float = 0.5,
                                   frame_rate: float = 100.0) -> np.ndarray:
    """The notes with each offset moved to `heard_offset` (never later than it was). `notes`:
    `[onset_s, offset_s, midi]` on the frame grid (a decoder's notes, before any onset delay).
    Measured with the shipped model, decoded offline (COnPOff / COff F1), it gains on every set:
    SSVD 56.05 / 79.71 -> 63.05 / 89.42, generated songs of every articulation 62.79 / 74.24 ->
    68.16 / 80.05, a recorded male voice 53.22 / 72.87 -> 55.71 / 75.29, Festival's voices
    42.22 / 63.83 -> 52.63 / 76.50 (docs/shipped-model.md, "Offsets")."""
    notes = np.array(notes, dtype=np.float64).reshape(-1, 3)
    offset_prob = _as_1d("offset_prob", offset_prob, np.float64)
    spans = np.rint(notes[:, :2] * frame_rate).astype(np.int64)
    for note, (a, b) in zip(notes, spans):
        b = min(b, len(offset_prob))
        end = heard_offset(offset_prob, a, b, threshold)
        if end < b:
            note[1] = end / frame_rate
    return notes


#: Decoders a bundle or recipe can name (`decoder:`): the paper's, voicing-gated (pitch network),
#: or voicing-gated with cuts at changes of the sung pitch (pitch network).
DECODERS = ("paper", "voiced", "pitch")
#: The largest `onset_delay` (seconds) a bundle may ask for.
MAX_ONSET_DELAY = 0.1


def decode_frames(frames, decoder: str = "paper", onset_threshold: float = 0.4,
                  offset_threshold: float = 0.5, frame_rate: float = 49.8,
                  onset_delay: float = 0.0, whole_recording: bool = False) -> np.ndarray:
    """Notes from frame predictions `(onset, offset, octave, pitch_class[, sung_pitch])` with the
    named decoder: "paper" (`frames_to_notes`, the sung pitch replacing the class vote when
    given), "voiced" (`voiced_frames_to_notes`) or "pitch" (`pitch_frames_to_notes`); the last
    two need the sung pitch.

    The "pitch" decoder leaves out the notes the head hears as silence (`notes_the_head_hears`)
    and ends each note where the head hears its end (`notes_end_where_the_head_hears`, with
    `offset_threshold`).
    `whole_recording` (the frames are a whole recording, as `svt.transcribe` decodes them): the
    "pitch" decoder's notes take the head's pitch where the pitch network strayed from the voice
    over the recording (`head_pitch_where_pitch_network_strays`). A stream cannot know that
    share before the recording ends: the live tracker (`svt.inference.live.NoteTracker`)
    applies the rule on the share so far, from the `STRAY_MIN_NOTES`-th note on.

    `onset_delay` (seconds, >= 0) moves every onset later, never past its note's offset: a
    model trained on acoustic onsets reports them where annotators of recorded singing mark a
    note's start (see docs/shipped-model.md, "Onsets")."""
    sung_pitch = frames[4] if len(frames) > 4 else None
    heard_ends = None
    if decoder == "paper":
        notes = frames_to_notes(*frames[:4], onset_threshold=onset_threshold,
                                offset_threshold=offset_threshold, frame_rate=frame_rate,
                                sung_pitch=sung_pitch)
    elif decoder in ("voiced", "pitch"):
        if sung_pitch is None:
            raise ValueError(f"decoder {decoder!r} needs a model with a pitch network "
                             "(sung_pitch); use decoder 'paper'")
        decode = voiced_frames_to_notes if decoder == "voiced" else pitch_frames_to_notes
        notes = decode(frames[0], sung_pitch, onset_threshold=onset_threshold,
                       frame_rate=frame_rate)
        if decoder == "pitch":
            notes = notes_the_head_hears(notes, frames[2], frames[3], frame_rate)
            if whole_recording:
                notes = head_pitch_where_pitch_network_strays(notes, frames[2], frames[3],
                                                              frame_rate)
            heard_ends = notes_end_where_the_head_hears(notes, frames[1], offset_threshold,
                                                        frame_rate)[:, 1]
    else:
        raise ValueError(f"unknown decoder {decoder!r}; choose one of {list(DECODERS)}")
    if not 0.0 <= onset_delay <= MAX_ONSET_DELAY:
        raise ValueError(f"onset_delay is {onset_delay!r} s; expected 0 .. {MAX_ONSET_DELAY}")
    if onset_delay and len(notes):
        # Never past the offset: a note shorter than the delay keeps one frame.
        delayed = np.minimum(notes[:, 0] + onset_delay, notes[:, 1] - 1.0 / frame_rate)
        notes[:, 0] = np.maximum(delayed, notes[:, 0])
    if heard_ends is not None and len(notes):
        # After the delay, which is bounded by the voiced end: the same onsets as without the
        # offset rule (a live start goes out before its end is known), and an end never before
        # the (delayed) onset's frame.
        notes[:, 1] = np.maximum(heard_ends, notes[:, 0] + 1.0 / frame_rate)
    return notes
