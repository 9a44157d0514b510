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


def test_sung_pitch_is_each_notes_median_and_class_vote_where_unvoiced():
    n = 20
    onset = np.zeros(n)
    onset[[2, 10]] = 0.9
    offset = np.zeros(n)
    offset[[8, 16]] = 0.9
    octave = np.full(n, 4)
    pitch_class = np.full(n, 12)
    octave[2:8], pitch_class[2:8] = 2, 0     # class vote: MIDI 60
    octave[10:16], pitch_class[10:16] = 2, 2  # class vote: MIDI 62
    sung = np.full(n, np.nan)
    sung[2:8] = [60.2, 60.4, 60.3, 60.5, 60.1, 60.3]  # median 60.3
    integer = frames_to_notes(onset, offset, octave, pitch_class, frame_rate=10.0)
    notes = frames_to_notes(onset, offset, octave, pitch_class, frame_rate=10.0, sung_pitch=sung)
    np.testing.assert_allclose(integer, [[0.2, 0.8, 60], [1.0, 1.6, 62]])
    # First note: the median of its frames; second: no voiced frame, the class vote stays.
    np.testing.assert_allclose(notes, [[0.2, 0.8, 60.3], [1.0, 1.6, 62]])
    with pytest.raises(ValueError, match="sung_pitch has 5 frames"):
        frames_to_notes(onset, offset, octave, pitch_class, sung_pitch=sung[:5])


def test_voiced_decoder_cuts_voiced_runs_at_onsets():
    from svt.notes.decoding import decode_frames, voiced_frames_to_notes, voiced_runs

    sung = np.full(60, np.nan)
    sung[5:25] = 60.2          # a note ...
    sung[25:40] = 62.1         # ... joined legato to the next: only the onset peak splits them
    sung[40] = 62.1            # ... which ends at frame 41: a 2-frame gap is not bridged,
    sung[43:46] = 64.0         # and a 3-frame voiced run is shorter than a note
    onset = np.zeros(60)
    onset[[5, 25]] = [0.9, 0.6]
    onset[30] = 0.1            # below the threshold: no cut
    np.testing.assert_array_equal(voiced_runs(np.isfinite(sung), bridge_frames=1, min_frames=5),
                                  [[5, 41]])
    notes = voiced_frames_to_notes(onset, sung, onset_threshold=0.2, frame_rate=10.0)
    np.testing.assert_allclose(notes, [[0.5, 2.5, 60.2], [2.5, 4.1, 62.1]])
    frames = (onset, np.zeros(60), np.full(60, 4), np.full(60, 12), sung)
    np.testing.assert_allclose(decode_frames(frames, "voiced", 0.2, frame_rate=10.0), notes)
    with pytest.raises(ValueError, match="needs a model with a pitch network"):
        decode_frames(frames[:4], "voiced")
    with pytest.raises(ValueError, match="unknown decoder 'beam'"):
        decode_frames(frames, "beam")


def _least_squares_segmentation(x, penalty, min_frames):
    """Brute-force optimal partition (every start of every segment tried): the reference the
    pruned dynamic programme must equal."""
    n = len(x)
    best = [0.0] + [np.inf] * n
    previous = [0] * (n + 1)
    for j in range(min_frames, n + 1):
        for i in range(0, j - min_frames + 1):
            if i and i < min_frames:
                continue
            seg = x[i:j]
            total = best[i] + float(((seg - seg.mean()) ** 2).sum()) + (penalty if i else 0.0)
            if total < best[j]:
                best[j], previous[j] = total, i
    cuts, j = [], n
    while j > 0:
        j = previous[j]
        if j:
            cuts.append(j)
    return sorted(cuts)


def test_pitch_level_cuts_is_the_optimal_least_squares_segmentation():
    from svt.notes.decoding import pitch_level_cuts

    rng = np.random.default_rng(7)
    for _ in range(60):
        levels = rng.normal(60, 2, int(rng.integers(1, 6)))
        x = np.repeat(levels, rng.integers(3, 30, len(levels))) + rng.normal(0, 0.3)
        x = x + rng.normal(0, rng.uniform(0.05, 0.6), len(x))
        penalty, min_frames = float(rng.uniform(1, 20)), int(rng.integers(2, 8))
        assert list(pitch_level_cuts(x, penalty, min_frames)) == \
            _least_squares_segmentation(x, penalty, min_frames)
        # Penalties around the stretch's whole squared error, where the search is skipped at
        # or below it: still the optimal segmentation.
        spread = float(((x - x.mean()) ** 2).sum())
        for factor in (0.5, 0.999, 1.001, 2.0):
            assert list(pitch_level_cuts(x, spread * factor, min_frames)) == \
                _least_squares_segmentation(x, spread * factor, min_frames)
    assert len(pitch_level_cuts(np.full(10, 60.0), 1.0, 6)) == 0  # shorter than two segments
    two_levels = np.r_[np.full(20, 60.0), np.full(20, 61.0)]  # squared error 10; one cut saves 10
    assert list(pitch_level_cuts(two_levels, 9.0, 5)) == [20]
    assert len(pitch_level_cuts(two_levels, 10.0, 5)) == 0


def _contour(*parts):
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def test_stable_pitch_is_where_the_voice_dwells():
    from svt.notes.decoding import stable_pitch

    held = 60.0 + 0.3 * np.sin(2 * np.pi * 6.0 * np.arange(30) / 100.0)  # vibrato, +-30 cents
    # A scoop longer than the 4 trimmed frames: 4 trimmed + 10 more from 56 to 58.5, then held,
    # then a 2-frame release. The median of the held frames, not of the stable part.
    scoop = np.linspace(55.0, 58.5, 14)
    note = np.concatenate([scoop, held, [57.0, 56.0]])
    assert stable_pitch(note) == pytest.approx(np.median(held), abs=1e-12)
    plain = np.median(note[4:-2])
    assert abs(plain - np.median(held)) > 0.1  # what the window leaves out matters here
    assert stable_pitch(note, window=None) == pytest.approx(plain, abs=1e-12)
    # A merged note: 12 frames on 60, then 25 on 62 -> the longer level.
    merged = np.concatenate([np.full(4, 59.0), np.full(12, 60.0), np.full(25, 62.0), [61, 61]])
    assert stable_pitch(merged) == 62.0
    # Two levels held as long: the lower one.
    assert stable_pitch(np.concatenate([np.full(4, 59.0), np.full(10, 64.0), np.full(10, 60.0),
                                        [58, 58]])) == 60.0
    # One pitch with vibrato narrower than the window: the plain median, unvoiced frames left out.
    with_gap = np.concatenate([np.full(4, 50.0), held[:12], [np.nan] * 3, held[12:], [70, 70]])
    assert stable_pitch(with_gap) == pytest.approx(np.median(held), abs=1e-12)
    # Vibrato wider than the window (+-80 cents, 4-8 Hz): whole cycles, the note's centre. A
    # fixed 1-semitone window would sit at an extreme, about 0.5 semitone off.
    t = np.arange(120) / 100.0
    for rate in (4.0, 5.0, 6.0, 7.0, 8.0):
        wide = 60.0 + 0.8 * np.sin(2 * np.pi * rate * t + 0.3)
        assert stable_pitch(wide) == pytest.approx(np.median(wide[4:-2]), abs=1e-12)
        assert abs(stable_pitch(wide) - 60.0) < 0.05
    # Nothing voiced -> NaN; voiced only in the trimmed frames -> the whole note's median.
    assert np.isnan(stable_pitch(np.full(10, np.nan)))
    edges = np.concatenate([[61.0, 62.0, 63.0, 64.0], np.full(10, np.nan), [65.0, 66.0]])
    assert stable_pitch(edges) == pytest.approx(63.5)


def test_pitch_decoder_cuts_legato_steps_and_keeps_vibrato_and_scoops():
    from svt.notes.decoding import decode_frames, pitch_frames_to_notes

    t = np.arange(80) / 100.0
    sung = _contour(
        np.full(5, np.nan),
        np.linspace(58.5, 60.0, 6), np.full(34, 60.0),          # a scoop into 60, held
        60.0 + 2.0 * 0.5 * (1 - np.cos(np.pi * np.arange(1, 7) / 7)),  # a 7-frame glide to 62
        62.0 + 0.8 * np.sin(2 * np.pi * 6.0 * t),                # 62 with 80 cents of vibrato
        np.full(5, np.nan))
    onset = np.zeros(len(sung))
    onset[5] = 0.9  # the learned onset fires at the first note only: the step is legato
    notes = pitch_frames_to_notes(onset, sung, onset_threshold=0.5, frame_rate=100.0)
    assert notes.shape == (2, 3)
    np.testing.assert_allclose(notes[:, 2], [60.0, 62.0], atol=0.15)  # vibrato: part cycles
    assert notes[0, 0] == pytest.approx(0.05)
    glide_start = (5 + 6 + 34) / 100.0
    assert abs(notes[1, 0] - glide_start) <= 0.03  # where the voice starts to move
    assert notes[0, 1] == notes[1, 0] and notes[1, 1] == pytest.approx((len(sung) - 5) / 100)
    # The voiced decoder, which only cuts at learned onsets, merges the two notes.
    heard = (onset, 0 * onset, 0 * onset + 2, 0 * onset, sung)  # the head hears MIDI 60 throughout
    merged = decode_frames(heard, "voiced", 0.5, frame_rate=100.0)
    assert len(merged) == 1
    np.testing.assert_allclose(decode_frames(heard, "pitch", 0.5, frame_rate=100.0), notes)


def _onset_then_step(first_frames):
    """Onset peaks at frames 5 and 55; from 55 the voice sits `first_frames` on the way
    (a glide 60 -> 64, or 62 held), then holds 64 to frame 155."""
    onset = np.zeros(160)
    onset[[5, 55]] = 0.9
    if first_frames <= 10:
        way = np.linspace(60.0, 64.0, first_frames + 1)[:-1]
    else:
        way = np.full(first_frames, 62.0)
    sung = _contour(np.full(5, np.nan), np.full(50, 60.0), way,
                    np.full(100 - first_frames, 64.0), np.full(5, np.nan))
    return onset, sung


def test_pitch_decoder_keeps_the_glide_after_an_onset_in_the_note_it_reaches():
    from svt.inference.live import NoteTracker
    from svt.notes.decoding import SCOOP_FRAMES, pitch_frames_to_notes

    # The onset head fires as the voice leaves 60; the pitch arrives at 64 ten frames later.
    onset, sung = _onset_then_step(10)
    notes = pitch_frames_to_notes(onset, sung, onset_threshold=0.5, frame_rate=100.0)
    np.testing.assert_allclose(notes, [[0.05, 0.55, 60.0], [0.55, 1.55, 64.0]], atol=1e-9)
    # Every level cut made: the glide becomes a 100-ms note of its own.
    every_cut = pitch_frames_to_notes(onset, sung, onset_threshold=0.5, frame_rate=100.0,
                                      scoop_frames=0)
    assert len(every_cut) == 3 and every_cut[1, 1] - every_cut[1, 0] <= SCOOP_FRAMES / 100.0
    # A note of 62 held for 25 frames before the step to 64 is a note: three notes either way.
    onset, sung = _onset_then_step(25)
    held = pitch_frames_to_notes(onset, sung, onset_threshold=0.5, frame_rate=100.0)
    np.testing.assert_allclose(held[:, 2], [60.0, 62.0, 64.0])
    assert abs(held[2, 0] - 0.80) <= 0.03
    # The live tracker decides the same.
    for first_frames, offline in ((10, notes), (25, held)):
        onset, sung = _onset_then_step(first_frames)
        tracker = NoteTracker(100.0, 0.5, 0.0, "pitch")
        tracker.push_frames(onset, sung)
        tracker.end()
        np.testing.assert_array_equal(tracker.notes_array(), offline)


def test_onset_delay_moves_onsets_but_never_past_the_offset():
    from svt.notes.decoding import decode_frames

    sung = np.full(40, np.nan)
    sung[2:30] = 60.0
    sung[33:39] = 64.0  # a 6-frame note, shorter than the delay below
    onset = np.zeros(40)
    onset[[2, 33]] = 0.9  # both starts heard
    heard = np.isfinite(sung)  # the head hears a note where the voice sings (MIDI 60)
    frames = (onset, onset, np.where(heard, 2, 4), np.where(heard, 0, 12), sung)
    plain = decode_frames(frames, "pitch", 0.5, frame_rate=100.0)
    np.testing.assert_allclose(plain, [[0.02, 0.30, 60.0], [0.33, 0.39, 64.0]])
    delayed = decode_frames(frames, "pitch", 0.5, frame_rate=100.0, onset_delay=0.1)
    np.testing.assert_allclose(delayed, [[0.12, 0.30, 60.0], [0.38, 0.39, 64.0]])
    with pytest.raises(ValueError, match="onset_delay is 0.5 s"):
        decode_frames(frames, "pitch", 0.5, frame_rate=100.0, onset_delay=0.5)


def test_a_voiced_run_starts_a_note_only_where_its_start_was_heard():
    from svt.notes.decoding import START_EVIDENCE, decode_frames, pitch_frames_to_notes

    sung = np.full(100, np.nan)
    sung[5:30] = 60.0    # heard: onset evidence 3 frames before the voice
    sung[35:60] = 55.0   # not heard, then an onset peak at 45 (a note that began inside)
    sung[65:95] = 67.0   # never heard: an instrument the pitch network followed
    onset = np.full(100, 0.1)
    onset[2] = START_EVIDENCE  # within 5 frames before the first run: enough
    onset[45] = 0.9
    onset[70] = START_EVIDENCE - 0.01  # below the evidence needed
    notes = pitch_frames_to_notes(onset, sung, onset_threshold=0.5, frame_rate=100.0)
    np.testing.assert_allclose(notes, [[0.05, 0.30, 60.0], [0.45, 0.60, 55.0]])
    # Without the rule every voiced run is a note (the first generation's behaviour).
    every = pitch_frames_to_notes(onset, sung, onset_threshold=0.5, frame_rate=100.0,
                                  start_evidence=None)
    np.testing.assert_allclose(every, [[0.05, 0.30, 60.0], [0.35, 0.45, 55.0],
                                       [0.45, 0.60, 55.0], [0.65, 0.95, 67.0]])
    # The streaming tracker follows the same rule, frame by frame.
    from svt.inference.live import NoteTracker

    tracker = NoteTracker(100.0, 0.5, 0.0, "pitch")
    for t in range(100):
        tracker.push_frames(onset[t:t + 1], sung[t:t + 1])
    tracker.end()
    np.testing.assert_array_equal(tracker.notes_array(), notes)
    frames = (onset, onset, onset.astype(int), onset.astype(int), sung)
    np.testing.assert_array_equal(decode_frames(frames, "pitch", 0.5, frame_rate=100.0), notes)


def test_head_pitch_replaces_the_pitch_network_where_it_strayed_over_the_recording():
    from svt.notes.decoding import (
        STRAY_SHARE,
        decode_frames,
        head_pitch_votes,
        head_pitch_where_pitch_network_strays,
    )
    from svt.notes.labels import LOWEST_MIDI

    # Ten 20-frame notes; the head votes MIDI 60 + k (octave 2, class k) for note k.
    n, notes = 200, []
    octave, pitch_class = np.full(n, 4), np.full(n, 12)  # silent head by default
    for k in range(10):
        a = 20 * k
        octave[a + 2:a + 18], pitch_class[a + 2:a + 18] = (60 + k - LOWEST_MIDI) // 12, \
            (60 + k - LOWEST_MIDI) % 12
        pitch_class[a + 2] = 0  # one dissenting frame: the vote is the most frequent pitch
        notes.append([a / 100, (a + 20) / 100, 60.0 + k + 0.2])
    notes = np.array(notes)
    np.testing.assert_array_equal(head_pitch_votes(notes, octave, pitch_class, 100.0),
                                  60.0 + np.arange(10))
    # The pitch network agrees except on 3 of 10 notes (a share of 0.3, not above it): unchanged.
    strayed = notes.copy()
    strayed[[1, 4, 7], 2] += [4.0, -5.0, 7.0]  # chord tones
    assert STRAY_SHARE == 0.3
    np.testing.assert_array_equal(
        head_pitch_where_pitch_network_strays(strayed, octave, pitch_class, 100.0), strayed)
    # On 4 of 10 it has strayed from the voice: those four take the head's whole note.
    strayed[9, 2] -= 12.0  # an octave below
    fixed = head_pitch_where_pitch_network_strays(strayed, octave, pitch_class, 100.0)
    np.testing.assert_array_equal(fixed[:, :2], notes[:, :2])
    np.testing.assert_array_equal(fixed[[1, 4, 7, 9], 2], [61.0, 64.0, 67.0, 69.0])
    keep = [0, 2, 3, 5, 6, 8]
    np.testing.assert_array_equal(fixed[keep, 2], notes[keep, 2])  # within 1.5: the sung pitch
    # decode_frames applies it to whole recordings only (the live tracker cannot).
    sung = np.full(n, np.nan)
    onset = np.zeros(n)
    for k, (a, b, pitch) in enumerate(strayed):
        i = int(round(a * 100))
        sung[i + 1:i + 19], onset[i + 1] = pitch, 0.9
    frames = (onset, onset, octave, pitch_class, sung)
    per_frames = decode_frames(frames, "pitch", 0.5, frame_rate=100.0)
    whole = decode_frames(frames, "pitch", 0.5, frame_rate=100.0, whole_recording=True)
    assert len(per_frames) == len(whole) == 10
    np.testing.assert_allclose(per_frames[:, 2], strayed[:, 2])
    np.testing.assert_allclose(whole[[1, 4, 7, 9], 2], [61.0, 64.0, 67.0, 69.0])


def test_pitch_decoder_leaves_out_the_notes_the_head_hears_as_silence():
    from svt.notes.decoding import (
        HEAD_SILENCE_SHARE,
        decode_frames,
        head_hears_silence,
        notes_the_head_hears,
    )

    assert HEAD_SILENCE_SHARE == 0.9
    # Four 18-frame notes the pitch network hears as voiced; the head hears MIDI 62 (octave 2,
    # class 2) on 18, 2, 1 and 0 of each one's frames: silence on 0 %, 89 %, 94 % and 100 % of
    # them, so the last two are left out.
    n = 80
    onset, sung = np.zeros(n), np.full(n, np.nan)
    octave, pitch_class = np.full(n, 4), np.full(n, 12)
    for k, heard in enumerate((18, 2, 1, 0)):
        a = 20 * k
        sung[a + 1:a + 19], onset[a + 1] = 62.1, 0.9
        octave[a + 1:a + 1 + heard], pitch_class[a + 1:a + 1 + heard] = 2, 2
    frames = (onset, onset, octave, pitch_class, sung)
    notes = decode_frames(frames, "pitch", 0.5, frame_rate=100.0)
    np.testing.assert_allclose(notes, [[0.01, 0.19, 62.1], [0.21, 0.39, 62.1]])
    # The same on notes given directly; the paper's and the voiced decoder keep every note.
    all_notes = np.array([[0.2 * k + 0.01, 0.2 * k + 0.19, 62.1] for k in range(4)])
    np.testing.assert_allclose(notes_the_head_hears(all_notes, octave, pitch_class, 100.0), notes)
    assert len(decode_frames(frames, "voiced", 0.5, frame_rate=100.0)) == 4
    assert notes_the_head_hears(np.zeros((0, 3)), octave, pitch_class).shape == (0, 3)
    # Per frame: NaN is silence, an infinite value (an unknown head pitch) counts as heard.
    assert head_hears_silence([np.nan] * 10) and not head_hears_silence([np.nan] * 9 + [60.0])
    assert not head_hears_silence([np.inf] * 10) and not head_hears_silence([])


def test_a_note_ends_where_the_heads_offset_output_first_saturates():
    from svt.notes.decoding import OFFSET_TIE, decode_frames, heard_offset

    # A note on frames 1..39. The head's offset output is saturated from frame 25 on (a decay
    # into a room's reverberation), creeping up in its last digits to the strongest value at 39;
    # frame 10, in the note's first half, is not looked at.
    offset = np.zeros(40)
    offset[10] = 1.0
    offset[25:40] = 0.99995 + 3e-6 * np.arange(15)  # all within OFFSET_TIE of 0.999992
    assert OFFSET_TIE == 5e-5
    assert heard_offset(offset, 1, 40) == 25
    assert heard_offset(offset, 1, 40, tie=0.0) == 39  # the strongest frame alone: the end
    # A peak that stands out is where the note ends; below the threshold the note keeps its end.
    peak = np.where(np.arange(40) >= 20, 0.6, 0.0)
    peak[31] = 0.8
    assert heard_offset(peak, 1, 40) == 31
    assert heard_offset(peak * 0.5, 1, 40) == 40
    assert heard_offset(np.full(40, np.nan), 1, 40) == 40
    # Decoded: the note's offset is frame 25 (0.25 s), its onset and pitch as the voice's.
    sung = np.full(40, np.nan)
    sung[1:40] = 60.0
    onset = np.zeros(40)
    onset[1] = 0.9
    heard = np.isfinite(sung)
    frames = (onset, offset, np.where(heard, 2, 4), np.where(heard, 0, 12), sung)
    np.testing.assert_allclose(decode_frames(frames, "pitch", 0.5, frame_rate=100.0),
                               [[0.01, 0.25, 60.0]])
