import numpy as np
import pytest

from svt.notes.labels import midi_to_classes, notes_to_frames, num_label_frames
from svt.synthetic.reference_loops import note2frame_loop

SILENCE = [0, 1, 4, 12]


def test_parity_with_original(parity_cases):
    for case in parity_cases:
        labels = notes_to_frames(case["notes"], case["num_frames"], case["frame_rate"])
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, np.asarray(case["labels"]), err_msg=str(case["song"]))


def test_reference_loop_matches_parity_cases(parity_cases):
    # The loop port is the baseline of the benchmark and the oracle of the randomised test below.
    case = parity_cases[0]
    np.testing.assert_array_equal(
        note2frame_loop(case["notes"], case["num_frames"], case["frame_rate"]), case["labels"])


def test_hand_computed_example():
    # frame period 0.1 s: note A 0.2-0.5 s (MIDI 60: octave 2, C), note B 0.5-0.7 s (MIDI 50:
    # octave 1, D) starting exactly where A ends -> B's onset wins frame 5.
    labels = notes_to_frames([[0.2, 0.5, 60], [0.5, 0.7, 50]], 10, 10.0)
    expected = [SILENCE, SILENCE, [1, 0, 2, 0], [0, 0, 2, 0], [0, 0, 2, 0], [1, 0, 1, 2],
                [0, 0, 1, 2], [0, 1, 1, 2], SILENCE, SILENCE]
    np.testing.assert_array_equal(labels, expected)


def test_octave_and_pitch_class_mapping():
    octave, pc = midi_to_classes([36, 47, 48, 60, 71, 72, 83, 30, 90])
    np.testing.assert_array_equal(octave, [0, 0, 1, 2, 2, 3, 3, 0, 3])
    np.testing.assert_array_equal(pc, [0, 11, 0, 0, 11, 0, 11, 6, 6])


def random_melody(rng, n, min_dur=0.06):
    t = rng.uniform(0, 1)
    notes = []
    for _ in range(n):
        dur = rng.uniform(min_dur, 1.0)
        notes.append([t, t + dur, int(rng.integers(30, 90))])
        t += dur + rng.choice([0.0, rng.uniform(0, 0.5)])
    return notes


def test_matches_loop_on_random_well_formed_melodies():
    rng = np.random.default_rng(0)
    for trial in range(200):
        notes = random_melody(rng, int(rng.integers(1, 40)))
        fr = float(rng.choice([49.8, 50.0]))
        n = int(round(notes[-1][1] * fr)) + int(rng.integers(-20, 20))
        np.testing.assert_array_equal(notes_to_frames(notes, n, fr), note2frame_loop(notes, n, fr),
                                      err_msg=f"trial {trial}")


def test_short_note_does_not_corrupt_rest_of_song():
    notes = [[1.0, 1.005, 60], [2.0, 3.0, 64]]  # first note shorter than one frame
    labels = notes_to_frames(notes, 250, 50.0)
    original = note2frame_loop(notes, 250, 50.0)
    assert (original[60:, 3] == 0).all(), "the original labels everything after as voiced C"
    np.testing.assert_array_equal(labels[50], [1, 0, 2, 0])
    np.testing.assert_array_equal(labels[51], [0, 1, 2, 0])  # one-frame note, then its offset
    np.testing.assert_array_equal(labels[52:100], [SILENCE] * 48)
    np.testing.assert_array_equal(labels[100], [1, 0, 2, 4])
    np.testing.assert_array_equal(labels[150], [0, 1, 2, 4])
    np.testing.assert_array_equal(labels[151:], [SILENCE] * 99)


def test_empty_note_list_is_all_silence():
    np.testing.assert_array_equal(notes_to_frames([], 7, 49.8), [SILENCE] * 7)
    assert notes_to_frames([], 0, 49.8).shape == (0, 4)


def test_unsorted_notes_are_sorted():
    notes = [[2.0, 3.0, 64], [0.5, 1.0, 60]]
    np.testing.assert_array_equal(notes_to_frames(notes, 200, 50.0),
                                  notes_to_frames(sorted(notes), 200, 50.0))


def test_notes_past_the_end_are_clipped():
    notes = [[0.5, 1.0, 60], [1.5, 5.0, 62], [6.0, 7.0, 64]]
    labels = notes_to_frames(notes, 100, 50.0)  # 2 s of frames
    assert labels.shape == (100, 4)
    np.testing.assert_array_equal(labels[75], [1, 0, 2, 2])
    np.testing.assert_array_equal(labels[76:], [[0, 0, 2, 2]] * 24)


def test_fractional_pitch_is_rounded_to_nearest_semitone():
    labels = notes_to_frames([[0.0, 0.5, 59.6], [0.6, 1.0, 62.4]], 60, 50.0)
    np.testing.assert_array_equal(labels[0], [1, 0, 2, 0])  # 59.6 -> 60 (C4)
    np.testing.assert_array_equal(labels[30], [1, 0, 2, 2])  # 62.4 -> 62 (D4)
    assert labels.dtype == np.int64


def test_overlapping_next_note_keeps_its_onset():
    # The second note starts before the first ends: the first is cut there.
    labels = notes_to_frames([[0.0, 1.0, 60], [0.5, 1.5, 62]], 100, 50.0)
    np.testing.assert_array_equal(labels[25], [1, 0, 2, 2])
    np.testing.assert_array_equal(labels[24], [0, 0, 2, 0])
    np.testing.assert_array_equal(labels[75], [0, 1, 2, 2])
    # Same-frame onsets: the later-listed note wins the frame.
    labels = notes_to_frames([[0.5, 0.6, 60], [0.5, 1.0, 62]], 60, 50.0)
    np.testing.assert_array_equal(labels[25], [1, 0, 2, 2])
    np.testing.assert_array_equal(labels[50], [0, 1, 2, 2])


@pytest.mark.parametrize("bad, problem", [
    ([[1.0, 0.5, 60]], "row 0 .* offset <= onset"),
    ([[0.0, 1.0, 60], [1.0, 1.0, 60]], "row 1 .* offset <= onset"),
    ([[0.0, float("nan"), 60]], "row 0 .* NaN"),
    ([[-0.1, 1.0, 60]], "row 0 .* negative onset"),
    ([[0.0, 1.0]], "shape"),
])
def test_invalid_notes_raise_naming_the_row(bad, problem):
    with pytest.raises(ValueError, match=problem):
        notes_to_frames(bad, 100, 50.0, source="song 7")


def test_num_label_frames_matches_wav2vec2_rate():
    assert num_label_frames(80000, 16000, 49.8) == 249
    assert num_label_frames(16000 * 60, 16000, 49.8) == 2988
