"""Peak memory and time of note matching: mir_eval's dense matchers against svt's sparse one.

`svt.notes.scoring.match_counts` used to call mir_eval's `match_notes`, `match_note_onsets` and
`match_note_offsets`, which build N_ref x N_est float64 matrices; svt now builds only the pairs
within the tolerances. Each case runs in a fresh interpreter, which reports its peak resident
memory (VmHWM from /proc/self/status) and the wall time of the four matchings; the parent checks
that svt's match counts equal mir_eval's wherever both run.

    .venv/bin/python benchmarks/bench_score_memory.py [--sizes 2000 9061] [--svt-only 200000]

mir_eval is not run at the --svt-only sizes: at 200,000 notes one of its float64 matrices alone
is 320 GB.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

SEED = 0


def song(num_notes: int, seed: int = SEED):
    """A reference melody (notes 0.1-0.5 s, gaps 0-0.3 s, MIDI 45-75) and an estimate of it with
    onset/offset jitter, some wrong pitches, 10 % of the notes missed and 5 % spurious ones, as a
    transcription would be."""
    import numpy as np

    rng = np.random.default_rng(seed)
    durations = rng.uniform(0.1, 0.5, num_notes)
    onsets = np.cumsum(durations + rng.uniform(0.0, 0.3, num_notes)) - durations
    pitches = np.clip(60 + np.cumsum(rng.integers(-3, 4, num_notes)) % 30 - 15, 45, 75)
    ref = np.c_[onsets, onsets + durations, pitches.astype(float)]
    est = ref.copy()
    est[:, 0] = np.maximum(est[:, 0] + rng.normal(0, 0.03, num_notes), 0.0)
    est[:, 1] = np.maximum(est[:, 1] + rng.normal(0, 0.06, num_notes), est[:, 0] + 0.02)
    est[:, 2] += rng.choice([0.0, 0.0, 0.0, 0.0, 1.0, -0.3], num_notes)
    est = est[rng.random(num_notes) > 0.1]
    extra_onsets = rng.uniform(0, ref[-1, 1], num_notes // 20)
    extra = np.c_[extra_onsets, extra_onsets + 0.2, rng.uniform(45, 75, len(extra_onsets))]
    return ref, np.concatenate([est, extra])


def mir_eval_counts(ref, est, tol):
    from mir_eval import transcription
    from mir_eval.util import midi_to_hz

    r_int, r_hz, e_int, e_hz = ref[:, :2], midi_to_hz(ref[:, 2]), est[:, :2], midi_to_hz(est[:, 2])
    return {
        "COnPOff": len(transcription.match_notes(r_int, r_hz, e_int, e_hz, **tol)),
        "COnP": len(transcription.match_notes(
            r_int, r_hz, e_int, e_hz, onset_tolerance=tol["onset_tolerance"],
            pitch_tolerance=tol["pitch_tolerance"], offset_ratio=None)),
        "COn": len(transcription.match_note_onsets(r_int, e_int,
                                                   onset_tolerance=tol["onset_tolerance"])),
        "COff": len(transcription.match_note_offsets(
            r_int, e_int, offset_ratio=tol["offset_ratio"],
            offset_min_tolerance=tol["offset_min_tolerance"])),
    }


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(matcher: str, num_notes: int) -> None:
    """Run one case and print one JSON line: counts, seconds, peak RSS."""
    from svt.notes.scoring import DEFAULT_TOLERANCES, match_counts

    ref, est = song(num_notes)
    before = peak_rss_mib()  # interpreter, numpy, mir_eval, scipy and the two note arrays
    start = time.perf_counter()
    if matcher == "mir_eval":
        counts = mir_eval_counts(ref, est, DEFAULT_TOLERANCES)
    else:
        counts = match_counts(ref, est, **DEFAULT_TOLERANCES).matched
    seconds = time.perf_counter() - start
    print(json.dumps({"counts": counts, "seconds": seconds, "peak_mib": peak_rss_mib(),
                      "before_mib": before, "num_ref": len(ref), "num_est": len(est)}))


def run_case(matcher: str, num_notes: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", matcher, str(num_notes)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 9061],
                        help="reference sizes run with both matchers (9061: the notes of the "
                             "60-minute transcription benchmark)")
    parser.add_argument("--svt-only", type=int, nargs="*", default=[200_000],
                        help="reference sizes run with svt alone")
    parser.add_argument("--child", nargs=2, metavar=("MATCHER", "NOTES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0

    print("peak RSS = VmHWM of a fresh interpreter; 'base' = its peak before matching "
          "(imports and notes)")
    print(f"{'notes ref/est':>15}  {'matcher':<9}{'seconds':>9}{'peak MiB':>10}{'base MiB':>10}"
          f"  counts COnPOff/COnP/COn/COff")
    failures = 0
    for size in args.sizes + args.svt_only:
        matchers = ("mir_eval", "svt") if size in args.sizes else ("svt",)
        results = {m: run_case(m, size) for m in matchers}
        for matcher, r in results.items():
            if "error" in r:
                print(f"{size:>15}  {matcher:<9}failed: {r['error']}")
                continue
            counts = "/".join(str(r["counts"][k]) for k in ("COnPOff", "COnP", "COn", "COff"))
            print(f"{r['num_ref']:>7}/{r['num_est']:<7}  {matcher:<9}{r['seconds']:>9.3f}"
                  f"{r['peak_mib']:>10.0f}{r['before_mib']:>10.0f}  {counts}")
        if len(results) == 2 and not any("error" in r for r in results.values()):
            ours, theirs = results["svt"], results["mir_eval"]
            same = ours["counts"] == theirs["counts"]
            failures += not same
            above = ((ours["peak_mib"] - ours["before_mib"])
                     / max(theirs["peak_mib"] - theirs["before_mib"], 1e-9))
            print(f"{'':>15}  counts {'equal' if same else 'DIFFER'}; svt / mir_eval: peak RSS "
                  f"{ours['peak_mib'] / theirs['peak_mib']:.3f}x (above base {above:.4f}x), "
                  f"time {ours['seconds'] / theirs['seconds']:.4f}x")
    for size in args.svt_only:
        print(f"mir_eval not run at {size} notes: one {size}x{size} float64 matrix is "
              f"{size * size * 8 / 1e9:,.1f} GB")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
