"""Frame-level training targets made from note lists.

Every model in the toolkit predicts, per frame, 20 outputs: onset, offset, 5 octave classes and
13 pitch classes. `notes_to_frames` turns an annotated note list into the matching integer targets
`[onset, offset_or_silence, octave_class, pitch_class]`. It reproduces the original recipes'
`note2frame` (docs/original-recipes.md §2.4) exactly on well-formed note lists and fixes its bugs:

* a note shorter than one frame used to stop the note pointer, so every later frame of the song was
  labelled "voiced" with that note's pitch; here it becomes a one-frame note;
* an overlapping next note (onset before the previous offset frame) used to lose its onset flag, and
  could freeze the pointer as above; here the previous note is cut at the next onset (melodies are
  monophonic) and two notes starting in the same frame keep the later one;
* an empty note list gives all-silence labels instead of crashing; notes are sorted; notes past the
  end are clipped; fractional MIDI pitches (TONAS, ISMIR2014) are rounded to the nearest semitone
  instead of producing float labels.
"""
from __future__ import annotations

import numpy as np

#: MIDI number of the lowest octave class (C2); octave class k covers MIDI 36+12k .. 47+12k.
LOWEST_MIDI = 36
NUM_OCTAVE_CLASSES = 5  # 4 octaves (C2..B5) + silence
NUM_PITCH_CLASSES = 13  # C..B + silence
SILENT_OCTAVE = NUM_OCTAVE_CLASSES - 1
SILENT_PITCH_CLASS = NUM_PITCH_CLASSES - 1
#: Number of head outputs per frame: onset, offset, octave logits, pitch-class logits.
NUM_FRAME_OUTPUTS = 2 + NUM_OCTAVE_CLASSES + NUM_PITCH_CLASSES

SILENCE_LABEL = (0, 1, SILENT_OCTAVE, SILENT_PITCH_CLASS)


def validate_notes(notes, source: str = "notes", row_names=None) -> np.ndarray:
    """Return `notes` as a float64 `(N, 3)` array `[onset_s, offset_s, midi]`, or raise ValueError.

    `source` names where the notes came from (a file path, a song id) and `row_names[i]` how to call
    row i (default "note row i"; readers pass "line N") so the error can point at it.
    Rows must have finite values, onset >= 0, offset > onset and a positive MIDI pitch.
    """

    def where(row):
        return row_names[row] if row_names is not None else f"note row {row}"

    array = np.asarray(notes, dtype=np.float64) if len(notes) else np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(
            f"{source}: expected a list of [onset_s, offset_s, midi] rows, got an array of shape "
            f"{array.shape}"
        )
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{source}: {where(row)} {array[row].tolist()} contains NaN or infinity")
    checks = (
        (array[:, 0] < 0, "has a negative onset"),
        (array[:, 1] <= array[:, 0], "has offset <= onset"),
        (array[:, 2] <= 0, "has a non-positive MIDI pitch"),
    )
    for mask, problem in checks:
        if mask.any():
            row = int(np.flatnonzero(mask)[0])
            raise ValueError(f"{source}: {where(row)} {array[row].tolist()} {problem}")
    return array


def midi_to_classes(midi):
    """Split (rounded) MIDI pitches into octave classes 0..3 from C2 and pitch classes 0..11.

    Pitches outside C2..B5 are folded into the boundary octave with their true pitch class, as in
    the original recipes.
    """
    midi = np.asarray(midi, dtype=np.int64)
    octave = np.clip((midi - LOWEST_MIDI) // 12, 0, SILENT_OCTAVE - 1)
    return octave, midi % 12


def _first_frame_within_half_period(times, period, num_frames):
    """Index of the first frame i with |i*period - time| <= period/2, evaluated in the same
    floating-point expression as the original loop so exact ties resolve identically.

    Returns `num_frames` where no frame of the song qualifies.
    """
    nearest = np.floor(times / period + 0.5).astype(np.int64)
    candidates = nearest[:, None] + np.arange(-1, 2)  # the zone spans at most two frames
    within = np.abs(candidates * period - times[:, None]) <= period / 2
    within &= candidates >= 0
    first = np.where(within.any(axis=1), candidates[np.arange(len(times)), within.argmax(axis=1)],
                     nearest)
    return np.minimum(first, num_frames)


def notes_to_frames(notes, num_frames: int, frame_rate: float, source: str = "notes") -> np.ndarray:
    """Frame labels `(num_frames, 4)` int64 `[onset, offset_or_silence, octave_class, pitch_class]`.

    Frame i covers time i / frame_rate. A note's onset frame is the first frame within half a
    period of its onset; the frames up to its offset frame are voiced; the offset frame carries the
    offset flag and the note's pitch, unless the next note starts there (the onset wins). Frames
    outside notes are silence `[0, 1, 4, 12]`.
    """
    num_frames = int(num_frames)
    if num_frames < 0:
        raise ValueError(f"{source}: num_frames must be >= 0, got {num_frames}")
    labels = np.tile(np.asarray(SILENCE_LABEL, dtype=np.int64), (num_frames, 1))
    notes = validate_notes(notes, source)
    if len(notes) == 0 or num_frames == 0:
        return labels
    notes = notes[np.lexsort((notes[:, 1], notes[:, 0]))]
    period = 1 / frame_rate

    onset_frame = _first_frame_within_half_period(notes[:, 0], period, num_frames)
    # The original tests "onset zone" before "offset zone" at each frame, so the offset frame is
    # the first offset-zone frame after the onset zone; a note shorter than one frame (offset zone
    # inside the onset zone) becomes a one-frame note instead of freezing the note pointer.
    last_onset_zone = onset_frame + (np.abs((onset_frame + 1) * period - notes[:, 0]) <= period / 2)
    offset_frame = np.maximum(
        _first_frame_within_half_period(notes[:, 1], period, num_frames), last_onset_zone + 1
    )
    # Monophonic melody: a note ends where the next one starts.
    offset_frame[:-1] = np.minimum(offset_frame[:-1], onset_frame[1:])
    offset_frame = np.minimum(offset_frame, num_frames)

    keep = (onset_frame < num_frames) & (offset_frame > onset_frame)
    onset_frame, offset_frame = onset_frame[keep], offset_frame[keep]
    octave, pitch_class = midi_to_classes(np.round(notes[keep, 2]))

    # Offset frames first: the voiced span of the next note overwrites them where it starts there.
    ends = offset_frame < num_frames
    labels[offset_frame[ends]] = np.stack(
        [np.zeros(ends.sum(), np.int64), np.ones(ends.sum(), np.int64), octave[ends],
         pitch_class[ends]], axis=1)

    lengths = offset_frame - onset_frame
    note_of_frame = np.repeat(np.arange(len(lengths)), lengths)
    span_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    frames = np.repeat(onset_frame, lengths) + np.arange(lengths.sum()) - span_start
    labels[frames, 0] = 0
    labels[frames, 1] = 0
    labels[frames, 2] = octave[note_of_frame]
    labels[frames, 3] = pitch_class[note_of_frame]
    labels[onset_frame, 0] = 1
    return labels


def num_label_frames(num_samples: int, sample_rate: int, frame_rate: float) -> int:
    """Label frames of an audio file: round(duration * frame_rate) (Python's banker's rounding, as
    the original preparers); with 16 kHz audio and 49.8 fps this matches wav2vec2's frame count."""
    return int(round(num_samples / sample_rate * frame_rate))
