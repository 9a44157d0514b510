"""The command line the recipes' prepare.py scripts share: `--data_folder`, `--prepare_folder`,
`--dur_threshold`, `--label_frame_rate` (the names of the YAML keys the experiment.py scripts
take), `--overwrite`, `--skip_invalid`, the MIR-ST500 and extra-test-set options, and `run_cli`,
which prints the written CSVs or the error as one line (exit status 1). The former spellings
`--save_folder` and `--frame_rate` are still accepted (not shown in `--help`).
"""
from __future__ import annotations

import argparse
import logging
import sys

from svt.data.utterances import PrepareError, check_preparation_settings
from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.tonas import prepare_tonas
from svt.errors import SvtUserError

# ---------------------------------------------------------------------------- command lines

def _setting(name: str):
    """An argparse type for --dur_threshold / --label_frame_rate: a number in the range
    `check_preparation_settings` accepts (the check the prepare functions run too)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            check_preparation_settings(value, 49.8) if name == "dur_threshold" \
                else check_preparation_settings(5, value)
        except PrepareError as err:
            raise argparse.ArgumentTypeError(str(err).split(": ", 1)[1]) from None
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def cli_parser(description: str, label_frame_rate: float = 49.8,
               label_frame_rate_help: str = "label frames per second (default 49.8, wav2vec2's "
                                            "rate)") -> argparse.ArgumentParser:
    """Arguments shared by the recipes' prepare.py scripts (`label_frame_rate`: the default of
    --label_frame_rate)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_folder", required=True, help="dataset root folder")
    parser.add_argument("--prepare_folder", default="data",
                        help="where labels, notes, converted audio and CSVs go (default: data)")
    parser.add_argument("--dur_threshold", type=_setting("dur_threshold"), default=5,
                        help="utterance length in seconds (default 5)")
    parser.add_argument("--label_frame_rate", type=_setting("label_frame_rate"),
                        default=label_frame_rate, help=label_frame_rate_help)
    # The former spellings, still accepted (the top-level README names them); not in --help.
    parser.add_argument("--save_folder", dest="prepare_folder", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    parser.add_argument("--frame_rate", dest="label_frame_rate", type=_setting("label_frame_rate"),
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every song instead of skipping up-to-date ones")
    parser.add_argument("--skip_invalid", action="store_true",
                        help="skip songs with missing/unmatched audio or invalid notes (warning) "
                             "instead of stopping with an error")
    return parser


def add_test_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tonas", default=None, help="TONAS folder (optional extra test set)")
    parser.add_argument("--ismir2014", default=None,
                        help="ISMIR2014 folder (optional extra test set)")


def add_mir_st500_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num_valid", type=int, default=None,
                        help="MIR-ST500 training songs held out for validation (default: 5%%, "
                             "at least 1)")
    parser.add_argument("--valid_seed", type=int, default=1986, help="seed of that hold-out")
    parser.add_argument("--separate", action="store_true",
                        help="extract vocals from Mixture.* with demucs where vocals.wav is "
                             "missing")


def common_kwargs(args) -> dict:
    """The keyword arguments every prepare function takes, from the parsed command line."""
    return dict(prepare_folder=args.prepare_folder, dur_threshold=args.dur_threshold,
                label_frame_rate=args.label_frame_rate, strict=not args.skip_invalid,
                overwrite=args.overwrite)


def prepare_test_sets(args, **kwargs) -> dict:
    """TONAS / ISMIR2014 CSVs for the folders given on the command line."""
    csvs = {}
    if getattr(args, "tonas", None):
        csvs.update(prepare_tonas(args.tonas, **kwargs))
    if getattr(args, "ismir2014", None):
        csvs.update(prepare_ismir2014(args.ismir2014, **kwargs))
    return csvs


def run_cli(run) -> int:
    """Run `run() -> {csv_name: path}` with INFO logging; print the CSVs, or an error about the
    user's input (`svt.errors.SvtUserError`) as one line (exit 1)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        csvs = run()
    except SvtUserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, path in csvs.items():
        print(f"{name}: {path}")
    return 0
