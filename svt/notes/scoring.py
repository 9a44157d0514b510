"""Note-level scores with mir_eval's transcription metrics at the paper's settings.

Metric names follow the singing-transcription literature:

* COnPOff: correct onset, pitch and offset (mir_eval `Precision`/`Recall`/`F-measure`);
* COnP: correct onset and pitch (`*_no_offset`);
* COn: correct onset (`Onset_*`);
* COff: correct offset (`Offset_*`).

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


def match_counts(ref_notes, est_notes, onset_tolerance=0.05, pitch_tolerance=50.0,
                 offset_ratio=0.2, offset_min_tolerance=0.05, song="song") -> SongScore:
    """Count the one-to-one matches mir_eval finds for each metric."""
    from mir_eval import transcription
    from mir_eval.util import midi_to_hz

    ref = validate_notes(ref_notes, f"{song} (reference)")
    est = validate_notes(est_notes, f"{song} (estimate)")
    if len(ref) == 0:
        raise ValueError(f"{song}: the reference has no notes, so precision and recall are "
                         "undefined; remove the song from the evaluation or fix its annotation")
    if len(est) == 0:
        return SongScore(len(ref), 0, {m: 0 for m in METRICS})
    ref_int, ref_hz = ref[:, :2], midi_to_hz(ref[:, 2])
    est_int, est_hz = est[:, :2], midi_to_hz(est[:, 2])
    matched = {
        "COnPOff": transcription.match_notes(
            ref_int, ref_hz, est_int, est_hz, onset_tolerance=onset_tolerance,
            pitch_tolerance=pitch_tolerance, offset_ratio=offset_ratio,
            offset_min_tolerance=offset_min_tolerance),
        "COnP": transcription.match_notes(
            ref_int, ref_hz, est_int, est_hz, onset_tolerance=onset_tolerance,
            pitch_tolerance=pitch_tolerance, offset_ratio=None),
        "COn": transcription.match_note_onsets(ref_int, est_int, onset_tolerance=onset_tolerance),
        "COff": transcription.match_note_offsets(
            ref_int, est_int, offset_ratio=offset_ratio,
            offset_min_tolerance=offset_min_tolerance),
    }
    return SongScore(len(ref), len(est), {m: len(v) for m, v in matched.items()})


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
