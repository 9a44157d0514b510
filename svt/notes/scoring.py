"""Note-level scores with mir_eval's transcription metrics at the paper's settings.

Metric names follow the singing-transcription literature:

* COnPOff: correct onset, pitch and offset (mir_eval `Precision`/`Recall`/`F-measure`);
* COnP: correct onset and pitch (`*_no_offset`);
* COn: correct onset (`Onset_*`);
* COff: correct offset (`Offset_*`).

The match counts are mir_eval's, but found without its N_ref x N_est matrices (`match_counts`), so
memory grows linearly with the notes (also when thousands share one onset, or crowd within one
tolerance) and hour-long files
score in a fraction of a second. The tolerances are bounded (`TOLERANCE_RANGES`).

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

#: Accepted tolerances, `(low, high)` with the low end excluded where it is 0 for the first three:
#: onsets within 1 s (the literature uses 50-150 ms; a window of 100000 s made every note a
#: candidate of every other), pitch within an octave (1200 cents), offsets within the whole
#: reference note's duration (ratio 1) or at least 1 s. Beyond these a "match" says nothing
#: about the transcription.
TOLERANCE_RANGES = {
    "onset_tolerance": (0.0, 1.0),
    "pitch_tolerance": (0.0, 1200.0),
    "offset_ratio": (0.0, 1.0),
    "offset_min_tolerance": (0.0, 1.0),
}
#: Which low ends are excluded (a zero onset or pitch tolerance, or offset ratio, matches nothing
#: but identical numbers; 0 s is a fine minimum offset tolerance).
_LOW_EXCLUDED = {"onset_tolerance", "pitch_tolerance", "offset_ratio"}


def check_tolerances(**tolerances) -> None:
    """Refuse (ValueError naming the tolerance and its range) a tolerance that is not a finite
    number within TOLERANCE_RANGES."""
    for name, value in tolerances.items():
        low, high = TOLERANCE_RANGES[name]
        excluded = name in _LOW_EXCLUDED
        ok = (isinstance(value, (int, float, np.integer, np.floating))
              and not isinstance(value, bool) and bool(np.isfinite(value))
              and (value > low if excluded else value >= low) and value <= high)
        if not ok:
            unit = {"pitch_tolerance": " cents", "offset_ratio": ""}.get(name, " s")
            raise ValueError(f"{name} (--{name.replace('_', '-')}) must be a number "
                             f"{'above' if excluded else 'from'} {low:g} up to {high:g}{unit}, "
                             f"got {value!r}")


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


def _intervals(ref_key, est_key, radius, accept):
    """`(order, lo, hi)`: the estimates sorted by key, and for each reference i the positions
    `[lo[i], hi[i])` in that order of the estimates `accept(i, j)` takes.

    `accept` must depend on |ref_key[i] - est_key[j]| alone and be monotone (mir_eval's rounded
    distance `<=` tolerance is), so each reference's accepted estimates are one run of the sorted
    order: a convex bipartite graph. The run's ends are found by a vectorised binary search inside
    the window `key +- radius`; no pair is ever materialised.
    """
    order = np.argsort(est_key, kind="stable")
    sorted_key = est_key[order]
    rows = np.arange(len(ref_key))
    window_lo = np.searchsorted(sorted_key, ref_key - radius, side="left")
    middle = np.searchsorted(sorted_key, ref_key, side="left")
    window_hi = np.searchsorted(sorted_key, ref_key + radius, side="right")
    middle = np.clip(middle, window_lo, window_hi)

    def first_true(lo, hi, wanted):
        """Smallest position p in [lo, hi) where accept(p) == wanted holds from p on (accept is
        monotone there), hi if none."""
        lo, hi = lo.copy(), hi.copy()
        while True:
            active = lo < hi
            if not active.any():
                return lo
            mid = (lo + hi) // 2
            hit = np.zeros(len(lo), bool)
            idx = np.flatnonzero(active)
            hit[idx] = accept(rows[idx], order[mid[idx]]) == wanted
            hi = np.where(active & hit, mid, hi)
            lo = np.where(active & ~hit, mid + 1, lo)

    # Below the reference's key the accepted estimates are a suffix of [window_lo, middle), above
    # it a prefix of [middle, window_hi).
    lo = first_true(window_lo, middle, True)
    hi = first_true(middle, window_hi, False)
    return order, lo, hi


def _convex_matching_size(lo, hi, num_est) -> int:
    """Size of a maximum matching of the convex bipartite graph where reference i may take the
    estimates at positions [lo[i], hi[i]): Glover's greedy (each position in turn takes, of the
    references whose interval holds it, the one whose interval ends first) is exact, in
    O(n log n) time and O(n) memory whatever the overlaps."""
    import heapq

    keep = lo < hi
    lo, hi = lo[keep], hi[keep]
    if len(lo) == 0:
        return 0
    by_start = np.argsort(lo, kind="stable")
    starts, ends = lo[by_start].tolist(), hi[by_start].tolist()
    heap, matched, k, n = [], 0, 0, len(starts)
    position = starts[0]
    while position < num_est:
        while k < n and starts[k] <= position:
            heapq.heappush(heap, ends[k])
            k += 1
        while heap and heap[0] <= position:
            heapq.heappop(heap)
        if heap:
            heapq.heappop(heap)
            matched += 1
            position += 1
        elif k < n:
            position = starts[k]  # nothing open: jump to the next interval
        else:
            break
    return matched


def _classes(*columns):
    """`(first index of each class, class of each row, rows per class)` of the rows whose values
    in all `columns` are equal: such notes have the same candidates."""
    keys = np.stack(columns, axis=1)
    _, first, inverse, counts = np.unique(keys, axis=0, return_index=True, return_inverse=True,
                                          return_counts=True)
    return first, inverse.reshape(-1), counts


def _window_pairs(ref_key, est_key, radius) -> int:
    """How many candidate pairs `_edges` would examine for these keys and windows."""
    sorted_key = np.sort(est_key)
    lo = np.searchsorted(sorted_key, ref_key - radius, side="left")
    hi = np.searchsorted(sorted_key, ref_key + radius, side="right")
    return int(np.maximum(hi - lo, 0).sum())


def _compressed_matching_size(ref_classes, est_classes, windows, accept) -> int:
    """Size of a maximum matching where notes of one class (`_classes`) have the same candidates:
    a maximum flow from the reference classes (capacity: their sizes) through the accepted class
    pairs to the estimate classes (capacity: their sizes). Equal to the matching of the full graph
    (a flow decomposes into a matching and back), but the graph has one node per class, so many
    notes sharing an onset and pitch cost one node, not a quadratic number of edges.

    `windows`: `(ref_key, est_key, radius)` triples, each a necessary condition of `accept`
    (onset, pitch); candidates come from the one whose windows hold the fewest pairs (notes
    sharing an onset are told apart by pitch, notes sharing a pitch by onset)."""
    ref_first, _, ref_counts = ref_classes
    est_first, _, est_counts = est_classes
    pairs = [_window_pairs(w[0][ref_first], w[1][est_first], w[2][ref_first]) for w in windows]
    ref_key, est_key, radius = windows[int(np.argmin(pairs))]
    if min(pairs) > _PAIR_BUDGET:
        # So many near-equal notes that even their classes pair quadratically.
        return _implicit_matching_size(ref_key, est_key, radius, accept)
    rows, cols = _edges(ref_key[ref_first], est_key[est_first], radius[ref_first],
                        lambda r, c: accept(ref_first[r], est_first[c]))
    if len(rows) == 0:
        return 0
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import maximum_flow

    num_ref, num_est = len(ref_first), len(est_first)
    source, sink = num_ref + num_est, num_ref + num_est + 1
    middle = np.minimum(ref_counts[rows], est_counts[cols])
    tails = np.concatenate([np.full(num_ref, source), rows, num_ref + np.arange(num_est)])
    heads = np.concatenate([np.arange(num_ref), num_ref + cols, np.full(num_est, sink)])
    capacity = np.concatenate([ref_counts, middle, est_counts]).astype(np.int32)
    graph = csr_array((capacity, (tails, heads)), shape=(sink + 1, sink + 1))
    return int(maximum_flow(graph, source, sink, method="dinic").flow_value)


#: Candidate class pairs `_compressed_matching_size` may list for its maximum flow (about 100
#: bytes each in the flow graph); above it the matching runs on the notes with candidates found
#: on demand (`_implicit_matching_size`), in memory linear in the notes whatever the overlaps.
_PAIR_BUDGET = 2_000_000


def _implicit_matching_size(ref_key, est_key, radius, accept) -> int:
    """Size of a maximum matching where reference i may take the estimates j with `est_key[j]`
    within `ref_key[i] +- radius[i]` and `accept(i, j)`: Hopcroft-Karp whose adjacency is never
    stored. A reference's candidates are computed when they are needed (one window of the
    estimates sorted by key, filtered by `accept`), so memory is O(notes + one window) even when
    every note is a candidate of every other; the time grows with the pairs scanned instead."""
    num_ref, num_est = len(ref_key), len(est_key)
    order = np.argsort(est_key, kind="stable")
    sorted_key = est_key[order]
    lo = np.searchsorted(sorted_key, ref_key - radius, side="left")
    hi = np.searchsorted(sorted_key, ref_key + radius, side="right")

    def candidates(i):
        window = order[lo[i]:hi[i]]
        return window[accept(np.array([i]), window)]  # the reference's values broadcast

    match_ref = np.full(num_ref, -1, np.int64)
    match_est = np.full(num_est, -1, np.int64)
    for i in range(num_ref):  # a greedy start: most references are matched here
        found = candidates(i)
        free = found[match_est[found] < 0]
        if len(free):
            match_ref[i], match_est[free[0]] = free[0], i
    unreached = np.iinfo(np.int64).max
    while True:
        free_refs = np.flatnonzero(match_ref < 0)
        if not len(free_refs):
            break
        # Breadth-first layers of alternating paths from the free references, up to the first
        # layer that reaches a free estimate.
        layer = np.full(num_ref, unreached, np.int64)
        layer[free_refs] = 0
        queue, head, limit = free_refs.tolist(), 0, unreached
        while head < len(queue):
            i = queue[head]
            head += 1
            if layer[i] >= limit:
                break
            owners = match_est[candidates(i)]
            if (owners < 0).any():
                limit = min(limit, layer[i] + 1)
            owners = owners[owners >= 0]  # distinct: a reference owns one estimate
            owners = owners[layer[owners] == unreached]
            layer[owners] = layer[i] + 1
            queue.extend(owners.tolist())
        if limit == unreached:
            break
        # Depth-first, vertex-disjoint shortest augmenting paths along the layers (iterative:
        # paths can be as long as the song); `next_edge` is each reference's current arc.
        next_edge = np.zeros(num_ref, np.int64)
        for root in free_refs:
            stack, via = [int(root)], []
            top, found = -1, None
            while stack:
                i = stack[-1]
                if top != i:
                    top, found = i, candidates(i)
                # The next arc that leads on: to a free estimate from the last layer (a
                # shortest augmenting path), or to an estimate whose owner is one layer deeper.
                rest = found[next_edge[i]:]
                owners = match_est[rest]
                leads = np.where(owners < 0, layer[i] + 1 == limit,
                                 layer[np.maximum(owners, 0)] == layer[i] + 1)
                k = int(np.argmax(leads)) if len(leads) else 0
                pushed = False
                if len(leads) and leads[k]:
                    next_edge[i] += k + 1
                    j, owner = int(rest[k]), int(owners[k])
                    if owner < 0:  # flip the path
                        for r, e in zip(stack, via + [j]):
                            match_ref[r], match_est[e] = e, r
                        stack = []
                    else:
                        stack.append(owner)
                        via.append(j)
                        pushed = True
                else:
                    next_edge[i] = len(found)
                if stack and not pushed:  # a dead end for the rest of this phase
                    layer[i] = unreached
                    stack.pop()
                    if via:
                        via.pop()
    return int((match_ref >= 0).sum())


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
    number of notes: COn and COff are convex bipartite graphs (each reference's candidates are
    one run of the estimates sorted by onset / offset) matched by Glover's exact greedy without
    listing pairs; COnP and COnPOff merge notes with equal values into classes and match the
    classes by maximum flow, so thousands of notes sharing an onset cost a node each side, not
    millions of pairs; where even the classes would pair by the million (thousands of distinct
    notes within one tolerance of each other), Hopcroft-Karp runs on the notes with candidates
    found on demand, in linear memory. Tolerances outside TOLERANCE_RANGES are a ValueError.
    """
    from mir_eval.transcription import N_DECIMALS
    from mir_eval.util import midi_to_hz

    check_tolerances(onset_tolerance=onset_tolerance, pitch_tolerance=pitch_tolerance,
                     offset_ratio=offset_ratio, offset_min_tolerance=offset_min_tolerance)
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
    onset_radius = np.full(num_ref, onset_tolerance + margin)
    # COn and COff: one run of candidates per reference (onset / offset distance alone decides;
    # COff's tolerance is the reference note's own), matched exactly by Glover's greedy.
    _, on_lo, on_hi = _intervals(ref_on, est_on, onset_radius, onset_hit)
    _, off_lo, off_hi = _intervals(ref_off, est_off, offset_tolerances + margin, offset_hit)
    # COnP and COnPOff: notes equal in every value a decision reads have the same candidates.
    ref_p = _classes(ref_on, ref_log2)
    est_p = _classes(est_on, est_log2)
    ref_po = _classes(ref_on, ref_log2, ref_off, offset_tolerances)
    est_po = _classes(est_on, est_log2, est_off)

    def onset_pitch(r, c):
        return onset_hit(r, c) & pitch_hit(r, c)

    def onset_pitch_offset(r, c):
        return onset_hit(r, c) & pitch_hit(r, c) & offset_hit(r, c)

    # Candidate windows by onset or by pitch (log2 Hz; the slack covers the rounding of
    # 1200 * difference, the exact test then decides).
    windows = [(ref_on, est_on, onset_radius),
               (ref_log2, est_log2, np.full(num_ref, pitch_tolerance / 1200 + 1e-9))]
    matched = {
        "COnPOff": _compressed_matching_size(ref_po, est_po, windows, onset_pitch_offset),
        "COnP": _compressed_matching_size(ref_p, est_p, windows, onset_pitch),
        "COn": _convex_matching_size(on_lo, on_hi, num_est),
        "COff": _convex_matching_size(off_lo, off_hi, num_est),
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
