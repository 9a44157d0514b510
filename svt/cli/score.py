"""`svt-score REF EST`: note-level scores of transcriptions against references.

REF and EST are each a note file, a folder of note files (matched by song name) or a dict file
(`Annotations.json` / N20EMv2 `annotations.json`). Two single files are compared directly.
Files that read but look wrong (Hz where MIDI belongs or the reverse, times in milliseconds, a
text format told apart only by a guess) are scored and named in warnings on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from svt.cli.argtypes import bounded_float
from svt.notes.formats import NoteFileError, NoteFileWarning, read_note_source
from svt.notes.scoring import DEFAULT_TOLERANCES, TOLERANCE_RANGES, format_table, score_songs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svt-score", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", help="reference note file, folder or dict file")
    parser.add_argument("estimate", help="estimated note file, folder or dict file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    ranges = {name: bounded_float(low, high, low_open=name != "offset_min_tolerance")
              for name, (low, high) in TOLERANCE_RANGES.items()}
    parser.add_argument("--onset-tolerance", type=ranges["onset_tolerance"],
                        default=DEFAULT_TOLERANCES["onset_tolerance"], metavar="S",
                        help="onset tolerance in seconds, up to 1 (default 0.05)")
    parser.add_argument("--pitch-tolerance", type=ranges["pitch_tolerance"],
                        default=DEFAULT_TOLERANCES["pitch_tolerance"], metavar="CENTS",
                        help="pitch tolerance in cents, up to 1200 (default 50)")
    parser.add_argument("--offset-ratio", type=ranges["offset_ratio"],
                        default=DEFAULT_TOLERANCES["offset_ratio"],
                        metavar="R", help="offset tolerance as a ratio of the reference note's "
                        "duration, up to 1 (default 0.2)")
    parser.add_argument("--offset-min-tolerance", type=ranges["offset_min_tolerance"],
                        default=DEFAULT_TOLERANCES["offset_min_tolerance"], metavar="S",
                        help="minimum offset tolerance in seconds, 0 to 1 (default 0.05)")
    parser.add_argument("--format", dest="fmt", default=None,
                        choices=["json", "mirex", "ismir2014", "ssvd", "csv", "tonas", "midi"],
                        help="force the note-file format of both sides (default: detect)")
    parser.add_argument("--split", default=None,
                        help="with an N20EMv2 annotations.json, score only this split")
    parser.add_argument("--midi-track", type=_midi_number("track", None), default=None,
                        metavar="N", help="in MIDI files whose notes lie on several tracks, read "
                        "track N (counted from 0, as the error listing them does)")
    parser.add_argument("--midi-channel", type=_midi_number("channel", 15), default=None,
                        metavar="N", help="in MIDI files whose notes lie on several channels, read "
                        "channel N (0..15, as the error listing them does)")
    parser.add_argument("--summary-only", action="store_true", help="omit the per-song rows")
    return parser


def _midi_number(what, highest):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0 or (highest is not None and value > highest):
            bounds = f"0..{highest}" if highest is not None else "0 or more"
            raise argparse.ArgumentTypeError(f"expected a MIDI {what} number ({bounds}), got "
                                             f"{text!r}")
        return value
    return parse


def _report_warnings(caught) -> None:
    """Print each NoteFileWarning once as `svt-score: warning: ...`; show any other warning the way
    Python would have."""
    seen = set()
    for w in caught:
        if issubclass(w.category, NoteFileWarning):
            message = str(w.message)
            if message not in seen:
                seen.add(message)
                print(f"svt-score: warning: {message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    tolerances = {"onset_tolerance": args.onset_tolerance,
                  "pitch_tolerance": args.pitch_tolerance,
                  "offset_ratio": args.offset_ratio,
                  "offset_min_tolerance": args.offset_min_tolerance}
    # "always": every file's warning is recorded even when Python's default filter would show a
    # repeated one only once; duplicates are dropped when printing.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NoteFileWarning)
        try:
            midi = {"midi_track": args.midi_track, "midi_channel": args.midi_channel}
            ref = read_note_source(args.reference, args.fmt, args.split, **midi)
            est = read_note_source(args.estimate, args.fmt, args.split, **midi)
            if len(ref) == 1 and len(est) == 1 and not Path(args.reference).is_dir() \
                    and not Path(args.estimate).is_dir():
                # Two single files: compare them whatever their names.
                est = {next(iter(ref)): next(iter(est.values()))}
            scores, summary, missing = score_songs(ref, est, **tolerances)
        except (NoteFileError, ValueError) as err:
            error = err
        else:
            error = None
    _report_warnings(caught)  # before an error too: a unit warning may explain it
    if error is not None:
        print(f"svt-score: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            "mean": summary["mean"],
            "pooled": summary["pooled"],
            "songs": {song: s.metrics for song, s in scores.items()},
            "counts": {song: s.counts() for song, s in scores.items()},
            "missing": missing,
            "tolerances": tolerances,
        }, indent=2))
    else:
        print(format_table(scores, summary, per_song=not args.summary_only))
        print(f"\n{len(scores)} songs scored (mean = unweighted mean over songs, as in the paper; "
              "pooled = all notes together)")
    for side, songs in (("reference", missing["reference_only"]),
                        ("estimate", missing["estimate_only"])):
        if songs:
            shown = ", ".join(songs[:10]) + (" ..." if len(songs) > 10 else "")
            print(f"svt-score: warning: {len(songs)} song(s) only in the {side}, not scored: "
                  f"{shown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
