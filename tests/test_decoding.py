import numpy as np
import pytest
import torch

from svt.notes.decoding import frames_to_notes
from svt.synthetic.reference_loops import frame2note_loop


def decode_case(case, **kw):
    return frames_to_notes(case["onset_prob"], case["offset_prob"], case["octave"],
                           case["pitch_class"], case["onset_threshold"], case["offset_threshold"],
                           case["frame_rate"], **kw)


def test_parity_with_original(parity_cases):
    for case in parity_cases:
        notes = decode_case(case)
        expected = np.asarray(case["est_notes"], dtype=np.float64)
        assert notes.dtype == np.float64 and notes.shape == expected.shape, case["song"]
        assert np.allclose(notes, expected, atol=1e-9, rtol=0), case["song"]


def test_reference_loop_matches_parity_cases(parity_cases):
    case = parity_cases[1]
    loop = frame2note_loop(case["onset_prob"], case["offset_prob"], case["octave"],
                           case["pitch_class"], case["onset_threshold"], case["offset_threshold"],
                           case["frame_rate"])
    assert np.allclose(loop, case["est_notes"], atol=1e-9, rtol=0)


def test_accepts_torch_tensors(parity_cases):
    case = parity_cases[0]
    notes = frames_to_notes(torch.tensor(case["onset_prob"]), torch.tensor(case["offset_prob"]),
                            torch.tensor(case["octave"]), torch.tensor(case["pitch_class"]),
                            case["onset_threshold"], case["offset_threshold"], case["frame_rate"])
    assert np.allclose(notes, case["est_notes"], atol=1e-9, rtol=0)


def test_hand_computed_example():
    # 10 frames at 10 fps. Onset peak at frame 1 (C4 x2, D4 x1 -> C4), offset at frame 4; onset peak
    # at frame 6 runs to the end (frame 9) with E4 votes.
    onset = [0.1, 0.9, 0.2, 0.1, 0.0, 0.0, 0.8, 0.1, 0.0, 0.0]
    offset = [0.0, 0.0, 0.0, 0.0, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0]
    octave = [4, 2, 2, 2, 4, 4, 2, 2, 4, 4]
    pc = [12, 0, 0, 2, 12, 12, 4, 4, 12, 12]
    notes = frames_to_notes(onset, offset, octave, pc, frame_rate=10.0)
    np.testing.assert_allclose(notes, [[0.1, 0.4, 60], [0.6, 0.9, 64]])


def test_vote_tie_goes_to_lowest_pitch():
    onset = [0.9, 0.0, 0.0, 0.0, 0.0]
    offset = [0.0, 0.0, 0.0, 0.9, 0.0]
    notes = frames_to_notes(onset, offset, [2, 2, 2, 4, 4], [7, 7, 5, 12, 12], frame_rate=10.)
    notes_tie = frames_to_notes(onset, offset, [2, 2, 2, 4, 4], [7, 5, 5, 12, 12], frame_rate=10.)
    assert notes[0, 2] == 67 and notes_tie[0, 2] == 65
    tie = frames_to_notes(onset, offset, [3, 2, 4, 4, 4], [0, 9, 12, 12, 12], frame_rate=10.)
    assert tie[0, 2] == 69  # 69 (octave 2, A) and 72 (octave 3, C) tie: lowest wins


@pytest.mark.parametrize("n", [0, 1])
def test_zero_or_one_frame_gives_empty(n):
    notes = frames_to_notes([0.9] * n, [0.0] * n, [2] * n, [0] * n)
    assert notes.shape == (0, 3) and notes.dtype == np.float64


def test_never_emits_zero_length_note():
    # Onset tie at the very last frame: the original emits [t, t].
    onset = [0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.9]
    offset = [0.0] * 7
    octave, pc = [2] * 7, [0] * 7
    loop = frame2note_loop(onset, offset, octave, pc, frame_rate=10.0)
    assert (loop[:, 1] - loop[:, 0] == 0).any()
    notes = frames_to_notes(onset, offset, octave, pc, frame_rate=10.0)
    assert (notes[:, 1] > notes[:, 0]).all()
    np.testing.assert_allclose(notes, loop[loop[:, 1] > loop[:, 0]])


def test_notes_without_votes_are_dropped():
    notes = frames_to_notes([0.9, 0.0, 0.0, 0.0], [0.0, 0.0, 0.9, 0.0], [4] * 4, [12] * 4)
    assert notes.shape == (0, 3)


def test_matches_loop_on_random_predictions():
    rng = np.random.default_rng(1)
    for trial in range(100):
        n = int(rng.integers(2, 400))
        onset = np.round(rng.random(n) ** 3, 2)  # rounding creates exact ties
        offset = rng.random(n)
        octave = rng.integers(0, 5, n)
        pc = rng.integers(0, 13, n)
        loop = frame2note_loop(onset, offset, octave, pc, 0.4, 0.5, 49.8)
        loop = loop[loop[:, 1] > loop[:, 0]] if len(loop) else loop
        notes = frames_to_notes(onset, offset, octave, pc, 0.4, 0.5, 49.8)
        np.testing.assert_allclose(notes, loop, atol=1e-12, err_msg=f"trial {trial}")


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="same length"):
        frames_to_notes([0.1, 0.2], [0.1], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="octave classes"):
        frames_to_notes([0.1, 0.2], [0.1, 0.1], [1, 7], [1, 1])
    with pytest.raises(ValueError, match="1-D"):
        frames_to_notes(np.zeros((2, 2)), [0.1, 0.1], [1, 1], [1, 1])
