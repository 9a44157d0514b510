"""The sparse matcher behind `match_counts` against mir_eval's dense matchers, called directly.

mir_eval is the independent expectation: its `match_notes`, `match_note_onsets` and
`match_note_offsets` build N_ref x N_est matrices, which is fine at these sizes. The note sets are
built to hit the places where a windowed matcher could drift from them: distances exactly at the
tolerances (onsets on a 10 ms grid, so 50 ms apart happens, with float error either side), pitches
exactly 50 cents apart, equal onsets, dense clusters, overlapping notes, large absolute times, and
non-default tolerances.
"""
import tracemalloc

import numpy as np
import pytest
from mir_eval import transcription
from mir_eval.util import midi_to_hz

from svt.notes.scoring import METRICS, match_counts

TOLERANCES = [
    dict(onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=0.2, offset_min_tolerance=0.05),
    dict(onset_tolerance=0.1, pitch_tolerance=80.0, offset_ratio=0.3, offset_min_tolerance=0.1),
    dict(onset_tolerance=0.02, pitch_tolerance=25.0, offset_ratio=0.1, offset_min_tolerance=0.0),
    dict(onset_tolerance=0.03, pitch_tolerance=100.0, offset_ratio=0.5, offset_min_tolerance=0.02),
]


def mir_eval_counts(ref, est, onset_tolerance, pitch_tolerance, offset_ratio,
                    offset_min_tolerance):
    r_int, r_hz = ref[:, :2], midi_to_hz(ref[:, 2])
    e_int, e_hz = est[:, :2], midi_to_hz(est[:, 2])
    return {
        "COnPOff": len(transcription.match_notes(
            r_int, r_hz, e_int, e_hz, onset_tolerance=onset_tolerance,
            pitch_tolerance=pitch_tolerance, offset_ratio=offset_ratio,
            offset_min_tolerance=offset_min_tolerance)),
        "COnP": len(transcription.match_notes(
            r_int, r_hz, e_int, e_hz, onset_tolerance=onset_tolerance,
            pitch_tolerance=pitch_tolerance, offset_ratio=None)),
        "COn": len(transcription.match_note_onsets(r_int, e_int,
                                                   onset_tolerance=onset_tolerance)),
        "COff": len(transcription.match_note_offsets(
            r_int, e_int, offset_ratio=offset_ratio, offset_min_tolerance=offset_min_tolerance)),
    }


def grid_notes(rng, n, base):
    """Onsets on a 10 ms grid, durations on a 10 ms grid, pitches on a 50-cent grid."""
    onsets = base + np.round(rng.uniform(0, 2.0, n), 2)
    durations = np.round(rng.uniform(0.01, 0.6, n), 2)
    pitches = 60 + rng.integers(-4, 5, n) * 0.5
    return np.c_[onsets, onsets + durations, pitches]


def case_grid(rng):
    base = float(rng.choice([0.0, 0.37, 1000.0, 3599.99]))
    return grid_notes(rng, rng.integers(1, 60), base), grid_notes(rng, rng.integers(1, 60), base)


def case_cluster(rng):
    """Dense clusters: many notes inside one tolerance window, repeated (equal) onsets."""
    centers = np.round(rng.uniform(0, 3, rng.integers(1, 4)), 2)

    def notes(n):
        onsets = rng.choice(centers, n) + np.round(rng.uniform(-0.06, 0.06, n), 2)
        onsets = np.maximum(onsets, 0.0)
        onsets[rng.random(n) < 0.3] = centers[0]  # exactly equal onsets
        durations = np.round(rng.choice([0.05, 0.1, 0.25, 0.5, 1.0], n), 2)
        pitches = 62 + rng.choice([0.0, 0.5, -0.5, 1.0, 0.25], n)
        return np.c_[onsets, onsets + durations, pitches]

    return notes(rng.integers(1, 40)), notes(rng.integers(1, 40))


def case_boundary_shift(rng):
    """Estimate = reference moved by amounts at, just inside and just outside each tolerance."""
    n = int(rng.integers(5, 50))
    onsets = np.round(np.cumsum(rng.uniform(0.05, 0.4, n)), 3)
    durations = np.round(rng.uniform(0.05, 0.8, n), 3)
    ref = np.c_[onsets, onsets + durations, 55 + rng.integers(0, 12, n).astype(float)]
    steps = np.array([0.0, 0.05, -0.05, 0.04999, 0.05001, 0.02, -0.02, 0.1, 0.1001, 0.03])
    est = ref.copy()
    est[:, 0] = np.maximum(est[:, 0] + rng.choice(steps, n), 0.0)
    est[:, 1] = np.maximum(est[:, 1] + rng.choice(steps, n) * rng.choice([1, 2, 4], n),
                           est[:, 0] + 0.001)
    est[:, 2] += rng.choice([0.0, 0.5, -0.5, 0.49, 0.51, 0.8, 1.0, 0.25], n)
    keep = rng.random(n) > 0.15
    return ref, est[keep] if keep.any() else est[:1]


def case_overlapping(rng):
    """Polyphonic, overlapping notes of very different lengths, in random (unsorted) order."""
    n, m = rng.integers(1, 50), rng.integers(1, 50)

    def notes(k):
        onsets = np.round(rng.uniform(0, 1.5, k), 3)
        durations = np.round(rng.exponential(0.5, k) + 0.001, 3)
        return np.c_[onsets, onsets + durations, rng.uniform(40, 80, k)]

    return notes(n), notes(m)


CASES = {"grid": case_grid, "cluster": case_cluster, "boundary_shift": case_boundary_shift,
         "overlapping": case_overlapping}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_counts_equal_mir_eval_on_random_note_sets(kind):
    for seed in range(80):  # 4 kinds x 80 seeds x 4 tolerance settings
        rng = np.random.default_rng([seed, sorted(CASES).index(kind)])
        ref, est = CASES[kind](rng)
        for tolerances in TOLERANCES:
            ours = match_counts(ref, est, **tolerances).matched
            expected = mir_eval_counts(ref, est, **tolerances)
            assert ours == expected, (kind, seed, tolerances)


def test_exact_ties_at_every_tolerance_follow_mir_eval():
    # Onset and offset distances that are exactly the tolerance in decimal but not in binary:
    # mir_eval rounds them to 4 decimals and compares with <=, so they match. Cents are not rounded:
    # 60 vs 60.5 comes out at 49.99999999999929 cents (a match), 60 vs 59.5 at 50.000000000000355
    # (none).
    ref = np.array([[0.1, 0.6, 60.0], [1.15, 1.4, 60.0], [2.3, 2.55, 60.0], [3.0, 3.5, 60.0]])
    est = np.array([[0.15, 0.7, 60.5], [1.1, 1.45, 59.5], [2.35, 2.6, 60.0], [3.0501, 3.5, 60.0]])
    expected = mir_eval_counts(ref, est, **TOLERANCES[0])
    assert expected == {"COnPOff": 2, "COnP": 2, "COn": 3, "COff": 4}
    assert match_counts(ref, est).matched == expected


def test_large_absolute_times_and_empty_estimate():
    rng = np.random.default_rng(7)
    ref, est = case_boundary_shift(rng)
    for shift in (36000.0, 1e6):
        moved_ref, moved_est = ref + [shift, shift, 0], est + [shift, shift, 0]
        assert match_counts(moved_ref, moved_est).matched == \
            mir_eval_counts(moved_ref, moved_est, **TOLERANCES[0])
    assert match_counts(ref, np.zeros((0, 3))).matched == {m: 0 for m in METRICS}


def test_long_alternating_chain_is_matched_completely():
    # Every reference has two candidate estimates (the one 30 ms later and the one 10 ms earlier);
    # matching each reference greedily to its earlier candidate leaves the last estimate alone, so
    # the maximum (all 20,000) needs augmenting paths as long as the song.
    n = 20_000
    onsets = np.arange(n) * 0.04
    ref = np.c_[onsets, onsets + 0.03, np.full(n, 60.0)]
    est = ref + [0.03, 0.03, 0.0]
    score = match_counts(ref, est)
    assert score.matched["COn"] == n and score.matched["COnP"] == n


def test_fifty_thousand_notes_known_answer_in_linear_memory():
    n = 50_000
    i = np.arange(n)
    onsets = i * 0.25
    ref = np.c_[onsets, onsets + 0.15 + 0.05 * (i % 2), 48.0 + i % 24]
    est = ref + [0.01, 0.01, 0.0]  # 10 ms late: within every tolerance
    est[1::2, 2] += 1.0  # every other note a semitone sharp

    tracemalloc.start()
    try:
        score = match_counts(ref, est)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert score.num_ref == score.num_est == n
    assert score.matched == {"COnPOff": n // 2, "COnP": n // 2, "COn": n, "COff": n}
    assert score.metrics["COnP_f1"] == 0.5 and score.metrics["COn_f1"] == 1.0
    # mir_eval's float64 distance matrices alone would be n * n * 8 bytes = 20 GB.
    assert peak < 200 * 2**20, f"peak {peak / 2**20:.0f} MiB"


# ------------------------------------- notes crowded within one tolerance: candidates on demand

@pytest.mark.parametrize("kind", sorted(CASES))
def test_on_demand_matching_equals_mir_eval(kind, monkeypatch):
    # With no pair budget every COnP / COnPOff matching runs Hopcroft-Karp on the notes with
    # candidates found on demand, the path taken when thousands of distinct notes crowd together.
    from svt.notes import scoring

    monkeypatch.setattr(scoring, "_PAIR_BUDGET", 0)
    for seed in range(40):
        rng = np.random.default_rng([seed, 100 + sorted(CASES).index(kind)])
        ref, est = CASES[kind](rng)
        for tolerances in TOLERANCES[:2]:
            assert match_counts(ref, est, **tolerances).matched == \
                mir_eval_counts(ref, est, **tolerances), (kind, seed, tolerances)


def test_on_demand_matching_follows_augmenting_paths_as_long_as_the_song(monkeypatch):
    from svt.notes import scoring

    monkeypatch.setattr(scoring, "_PAIR_BUDGET", 0)
    n = 5000  # greedy takes each reference's earlier candidate; only a 5000-long path fixes it
    onsets = np.arange(n) * 0.04
    ref = np.c_[onsets, onsets + 0.03, np.full(n, 60.0)]
    score = match_counts(ref, ref + [0.03, 0.03, 0.0])
    assert score.matched == {"COnPOff": n, "COnP": n, "COn": n, "COff": n}


def test_thousands_of_distinct_notes_within_one_tolerance_in_linear_memory():
    # 3000 notes whose onsets lie within 3 ms and whose pitches span 3 semitones: every note is a
    # COnP candidate of about a third of the others (millions of pairs), all distinct.
    rng = np.random.default_rng(0)
    n = 3000
    onsets = 1.0 + np.arange(n) * 1e-6
    ref = np.c_[onsets, onsets + rng.uniform(0.1, 2.0, n),
                60 + rng.integers(0, 3, n) + rng.uniform(-0.2, 0.2, n)]
    est = ref.copy()
    est[:, 0] += rng.uniform(-0.01, 0.01, n)
    est[:, 1] = est[:, 0] + (ref[:, 1] - ref[:, 0]) * rng.uniform(0.9, 1.1, n)
    est[:, 2] += rng.uniform(-0.6, 0.6, n)
    tracemalloc.start()
    try:
        ours = match_counts(ref, est).matched
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ours == mir_eval_counts(ref, est, **TOLERANCES[0])
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"  # listing the pairs: about 250 MiB
