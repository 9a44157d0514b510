"""Note-level scores with mir_eval's transcription metrics at the paper's settings.

Metric names follow the singing-transcription literature:

* COnPOff: correct onset, pitch and offset (mir_eval `Precision`/`Recall`/`F-measure`);
* COnP: correct onset and pitch (`*_no_offset`);
* COn: correct onset (`Onset_*`);
* COff: correct offset (`Offset_*`).

The match counts are mir_eval's, but found without its N_ref x N_est matrices (`match_counts`), so
memory grows linearly with the notes and hour-long files score in a fraction of a second.

`score_song` scores one song; `aggregate` gives the paper's unweighted mean over songs and, beside
it, note-pooled totals (matched notes summed over songs), which weight long songs more and are less
noisy on small test sets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from mir_eval.util import f_measure

from svt.notes.labels import validate_notes

METRICS = ("COnPOff", "COnP", "COn", "COff")
METRIC_KEYS = tuple(f"{m}_{s}" for m in METRICS for s in ("precision", "recall", "f1"))

#: The paper's settings: 50 ms onset tolerance, 50 cents, offsets within max(20 % of the reference
#: note's duration, 50 ms).
DEFAULT_TOLERANCES = {
    "onset_tolerance": 0.05,
    "pitch_tolerance": 50.0,
    "offset_ratio": 0.2,
    "offset_min_tolerance": 0.05,
}

#: Note times (seconds) beyond this (about 116 days) are no recording's: values like 1e308 would
#: overflow in the tolerance windows. Readers (svt.notes.formats) and `match_counts` reject them.
MAX_NOTE_TIME_S = 1e7


def _check_times(notes, source) -> None:
    huge = np.any(np.abs(notes[:, :2]) > MAX_NOTE_TIME_S, axis=1)
    if huge.any():
        row = int(np.flatnonzero(huge)[0])
        raise ValueError(f"{source}: note row {row} {notes[row].tolist()} has a time beyond "
                         f"{MAX_NOTE_TIME_S:g} s (about {MAX_NOTE_TIME_S / 86400:.0f} days), which "
                         "no recording has; note times must be seconds from the start of the "
                         "audio")


def _prf(matched: int, num_ref: int, num_est: int):
    if num_ref == 0 or num_est == 0:
        return 0.0, 0.0, 0.0
    precision, recall = matched / num_est, matched / num_ref
    return precision, recall, float(f_measure(precision, recall))


@dataclass
class SongScore:
    """Matched-note counts of one song; metrics are derived from them."""

    num_ref: int
    num_est: int
    matched: dict = field(default_factory=dict)  # metric name -> number of matched notes

    @property
    def metrics(self) -> dict:
        out = {}
        for name in METRICS:
            p, r, f = _prf(self.matched[name], self.num_ref, self.num_est)
            out.update({f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": f})
        return out

    def counts(self) -> dict:
        return {"num_ref": self.num_ref, "num_est": self.num_est,
                **{f"{m}_matched": self.matched[m] for m in METRICS}}


#: Candidate (reference, estimate) pairs examined at once: bounds the temporary arrays of the
#: exact tests to a few MB whatever the song's length.
_BLOCK_PAIRS = 1 << 17


def _window_margin(*times) -> float:
    """Slack added to a search window so that no pair mir_eval would accept falls outside it.

    mir_eval accepts a pair when `round(|a - b|, N_DECIMALS) <= tolerance`; rounding can lower a
    distance by half a unit of the last kept decimal, and the window bounds themselves are rounded
    floats (their error grows with the magnitude of the times). Two units of the decimal plus a few
    ulps of the largest time cover both; the exact test per pair then removes the extra candidates.
    """
    from mir_eval.transcription import N_DECIMALS

    scale = max([1.0] + [float(np.max(np.abs(t))) for t in times if len(t)])
    return 2 * 10.0 ** -N_DECIMALS + 64 * np.finfo(np.float64).eps * scale


def _edges(ref_key, est_key, radius, accept):
    """`(rows, cols)` of every pair (reference i, estimate j) with `est_key[j]` within
    `ref_key[i] +- radius[i]` for which `accept(i_array, j_array)` holds.

    Only the pairs inside each reference's window are ever materialised (np.searchsorted over the
    estimates sorted by key), `_BLOCK_PAIRS` at a time, so memory grows with the number of notes
    and of surviving pairs, never with N_ref x N_est.
    """
    order = np.argsort(est_key, kind="stable")
    sorted_key = est_key[order]
    lo = np.searchsorted(sorted_key, ref_key - radius, side="left")
    hi = np.searchsorted(sorted_key, ref_key + radius, side="right")
    counts = np.maximum(hi - lo, 0)
    ends = np.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    rows_out, cols_out = [], []
    for start in range(0, total, _BLOCK_PAIRS):
        flat = np.arange(start, min(start + _BLOCK_PAIRS, total))
        rows = np.searchsorted(ends, flat, side="right")  # the reference owning candidate `flat`
        cols = order[lo[rows] + (flat - (ends[rows] - counts[rows]))]
        keep = accept(rows, cols)
        rows_out.append(rows[keep].astype(np.int32))
        cols_out.append(cols[keep].astype(np.int32))
    if not rows_out:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(rows_out), np.concatenate(cols_out)


def _matching_size(rows, cols, num_ref, num_est) -> int:
    """Size of a maximum bipartite matching of the sparse graph given by its edges.

    The size of a maximum matching is unique, so any exact algorithm gives mir_eval's count. SciPy's
    Hopcroft-Karp works on the sparse graph in compiled code; mir_eval's `_bipartite_match` is the
    same algorithm in Python and recurses along augmenting paths, which long chains of overlapping
    candidates in big files can push past Python's recursion limit.
    """
    if len(rows) == 0:
        return 0
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import maximum_bipartite_matching

    graph = csr_array((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(num_ref, num_est))
    return int(np.count_nonzero(maximum_bipartite_matching(graph, perm_type="column") >= 0))


def match_counts(ref_notes, est_notes, onset_tolerance=0.05, pitch_tolerance=50.0,
                 offset_ratio=0.2, offset_min_tolerance=0.05, song="song") -> SongScore:
    """Count the one-to-one matches mir_eval finds for each metric.

    The counts equal those of mir_eval's `match_notes` / `match_note_onsets` /
    `match_note_offsets` (with `strict=False`) for every tolerance, but no N_ref x N_est matrix is
    built: mir_eval's dense matrices need ~3.5 GB for a one-hour song and fail on longer files.
    Candidate pairs come from search windows around each reference note and are accepted by
    mir_eval's own expressions (distances rounded to N_DECIMALS, `<=`, cents from
    `log2(midi_to_hz(midi))`), evaluated elementwise on the same float64 values, so every accept /
    reject decision, including exact ties at the tolerances, is mir_eval's. Memory grows with the
    number of notes and of pairs within the tolerances of each other (a few per note in a melody).
    """
    from mir_eval.transcription import N_DECIMALS
    from mir_eval.util import midi_to_hz

    ref = validate_notes(ref_notes, f"{song} (reference)")
    est = validate_notes(est_notes, f"{song} (estimate)")
    _check_times(ref, f"{song} (reference)")
    _check_times(est, f"{song} (estimate)")
    if len(ref) == 0:
        raise ValueError(f"{song}: the reference has no notes, so precision and recall are "
                         "undefined; remove the song from the evaluation or fix its annotation")
    if len(est) == 0:
        return SongScore(len(ref), 0, {m: 0 for m in METRICS})
    # Contiguous columns, and log2 applied to whole arrays as mir_eval does (np.log2 of the full
    # pitch arrays), so that the per-pair values below are bit-identical to its matrices' entries.
    ref_on, ref_off = np.ascontiguousarray(ref[:, 0]), np.ascontiguousarray(ref[:, 1])
    est_on, est_off = np.ascontiguousarray(est[:, 0]), np.ascontiguousarray(est[:, 1])
    ref_log2 = np.log2(midi_to_hz(np.ascontiguousarray(ref[:, 2])))
    est_log2 = np.log2(midi_to_hz(np.ascontiguousarray(est[:, 2])))
    # mir_eval.util.intervals_to_durations, then the per-reference offset tolerance.
    ref_durations = np.abs(np.diff(ref[:, :2], axis=-1)).flatten()
    offset_tolerances = np.maximum(offset_ratio * ref_durations, offset_min_tolerance)
    margin = _window_margin(ref_on, ref_off, est_on, est_off)

    def onset_hit(r, c):
        return np.around(np.abs(ref_on[r] - est_on[c]), decimals=N_DECIMALS) <= onset_tolerance

    def offset_hit(r, c):
        return (np.around(np.abs(ref_off[r] - est_off[c]), decimals=N_DECIMALS)
                <= offset_tolerances[r])

    def pitch_hit(r, c):
        return np.abs(1200 * (ref_log2[r] - est_log2[c])) <= pitch_tolerance

    num_ref, num_est = len(ref), len(est)
    # Onset-based metrics: one window pass by onset; COnP and COnPOff edges are subsets of COn's.
    on_rows, on_cols = _edges(ref_on, est_on, np.full(num_ref, onset_tolerance + margin),
                              onset_hit)
    with_pitch = pitch_hit(on_rows, on_cols)
    p_rows, p_cols = on_rows[with_pitch], on_cols[with_pitch]
    with_offset = offset_hit(p_rows, p_cols)
    # COff: the tolerance depends on the reference note's duration, so each reference gets its own
    # window over the estimates sorted by offset.
    off_rows, off_cols = _edges(ref_off, est_off, offset_tolerances + margin, offset_hit)
    matched = {
        "COnPOff": _matching_size(p_rows[with_offset], p_cols[with_offset], num_ref, num_est),
        "COnP": _matching_size(p_rows, p_cols, num_ref, num_est),
        "COn": _matching_size(on_rows, on_cols, num_ref, num_est),
        "COff": _matching_size(off_rows, off_cols, num_ref, num_est),
    }
    return SongScore(num_ref, num_est, matched)


def score_song(ref_notes, est_notes, **tolerances) -> dict:
    """Precision, recall and F1 of COnPOff, COnP, COn and COff for one song (keys METRIC_KEYS).

    An empty estimate scores 0; an empty reference raises ValueError. Tolerances default to
    DEFAULT_TOLERANCES (seconds, cents, ratio, seconds).
    """
    return match_counts(ref_notes, est_notes, **tolerances).metrics


def aggregate(song_scores: dict) -> dict:
    """`{"mean": metrics, "pooled": metrics}` over `{song: SongScore}`.

    mean: unweighted mean of the per-song metrics (the paper's numbers); pooled: metrics of the
    summed match counts.
    """
    if not song_scores:
        raise ValueError("aggregate: no songs to aggregate")
    per_song = [s.metrics for s in song_scores.values()]
    mean = {k: float(np.mean([m[k] for m in per_song])) for k in METRIC_KEYS}
    total = SongScore(sum(s.num_ref for s in song_scores.values()),
                      sum(s.num_est for s in song_scores.values()),
                      {m: sum(s.matched[m] for s in song_scores.values()) for m in METRICS})
    return {"mean": mean, "pooled": total.metrics}


def score_songs(references: dict, estimates: dict, **tolerances):
    """Score every song present on both sides.

    Returns `(song_scores, aggregate, missing)` where `missing` = `{"reference_only": [...],
    "estimate_only": [...]}` lists the songs present on one side only.
    """
    common = [s for s in references if s in estimates]
    missing = {"reference_only": sorted(set(references) - set(estimates)),
               "estimate_only": sorted(set(estimates) - set(references))}
    if not common:
        raise ValueError("no song is present in both the reference and the estimate "
                         f"(reference: {sorted(references)[:5]}..., estimate: "
                         f"{sorted(estimates)[:5]}...)")
    scores = {s: match_counts(references[s], estimates[s], song=s, **tolerances) for s in common}
    return scores, aggregate(scores), missing


def format_table(scores: dict, summary: dict, per_song: bool = True) -> str:
    """Readable table: F1 (and P/R for the summaries) in %, one row per song."""
    header = f"{'song':<24}" + "".join(f"{m + ' F1':>11}" for m in METRICS) + f"{'notes ref/est':>16}"
    lines = [header, "-" * len(header)]
    if per_song:
        for song, score in scores.items():
            m = score.metrics
            lines.append(f"{song[:24]:<24}" + "".join(f"{100 * m[f'{k}_f1']:>11.2f}" for k in METRICS)
                         + f"{score.num_ref:>8}/{score.num_est:<7}")
        lines.append("-" * len(header))
    for name in ("mean", "pooled"):
        for stat in ("precision", "recall", "f1"):
            label = f"{name} {stat}" if stat != "f1" else f"{name} F1"
            lines.append(f"{label:<24}" + "".join(
                f"{100 * summary[name][f'{k}_{stat}']:>11.2f}" for k in METRICS))
    return "\n".join(lines)
