"""Speed of `notes_to_frames` and `frames_to_notes` against per-frame loop versions of the same
algorithms (the original recipes' style), measured in the same run on the parity cases.

    python benchmarks/bench_labels_decoding.py [--repeats 5]

Prints the median time per song of each implementation and the speed-up ratios
(targets: >= 10x for labels, >= 20x for decoding).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import numpy as np

from svt.notes.decoding import frames_to_notes
from svt.notes.labels import notes_to_frames
from svt.synthetic.reference_loops import frame2note_loop, note2frame_loop

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "notes_parity_dev.json.gz"


def median_seconds(fn, cases, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for case in cases:
            fn(case)
        times.append((time.perf_counter() - start) / len(cases))
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with gzip.open(CASES, "rt") as f:
        cases = json.load(f)
    for case in cases:  # decoder inputs as arrays, as a model would hand them over
        for key in ("onset_prob", "offset_prob", "octave", "pitch_class"):
            case[key + "_array"] = np.asarray(case[key])

    def decode_args(c):
        return (c["onset_prob_array"], c["offset_prob_array"], c["octave_array"],
                c["pitch_class_array"], c["onset_threshold"], c["offset_threshold"],
                c["frame_rate"])

    rows = [
        ("notes_to_frames", lambda c: notes_to_frames(c["notes"], c["num_frames"], c["frame_rate"]),
         lambda c: note2frame_loop(c["notes"], c["num_frames"], c["frame_rate"]), 10),
        ("frames_to_notes", lambda c: frames_to_notes(*decode_args(c)),
         lambda c: frame2note_loop(*decode_args(c)), 20),
    ]
    frames = np.mean([c["num_frames"] for c in cases])
    print(f"{len(cases)} songs, {frames:.0f} frames per song on average, median of "
          f"{args.repeats} runs")
    print(f"{'function':<18}{'vectorised ms/song':>20}{'loop ms/song':>15}{'speed-up':>10}"
          f"{'target':>8}")
    for name, fast, loop, target in rows:
        fast_s = median_seconds(fast, cases, args.repeats)
        loop_s = median_seconds(loop, cases, args.repeats)
        ratio = loop_s / fast_s
        print(f"{name:<18}{1e3 * fast_s:>20.3f}{1e3 * loop_s:>15.3f}{ratio:>9.1f}x"
              f"{'>=' + str(target) + 'x':>8}{'' if ratio >= target else '  (below target)'}")


if __name__ == "__main__":
    main()
