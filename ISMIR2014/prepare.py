#!/usr/bin/env python3
"""Prepare ISMIR2014 (evaluation only) -> <prepare_folder>/dur_<D>s/ismir2014.csv.

    python prepare.py --data_folder /path/to/ISMIR2014 [--prepare_folder data]

Reads audio files with ground-truth note files (onset duration midi per row, e.g.
<song>.GroundTruth.txt) matched by song name, beside the audio or anywhere below the folder; or the
converted layout Annotations.json + wav16kHz/<song>/vocals.wav.
"""
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svt.datasets.arguments import cli_parser, common_kwargs, run_cli
from svt.datasets.ismir2014 import prepare_ismir2014


def main(argv=None):
    args = cli_parser(__doc__).parse_args(argv)
    return run_cli(lambda: prepare_ismir2014(args.data_folder, **common_kwargs(args)))


if __name__ == "__main__":
    sys.exit(main())
