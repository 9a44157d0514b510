#!/usr/bin/env python3
"""Prepare TONAS (evaluation only) -> <prepare_folder>/dur_<D>s/tonas.csv.

    python prepare.py --data_folder /path/to/TONAS [--prepare_folder data]

Reads TONAS as distributed (<stem>.wav at 44.1 kHz beside <stem>.notes.Corrected, in Deblas/,
Martinetes1/, Martinetes2/ or any other subfolder; the audio is converted to 16 kHz mono), or the
converted layout Annotations.json + wav16kHz/<song>/vocals.wav.
"""
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svt.datasets.arguments import cli_parser, common_kwargs, run_cli
from svt.datasets.tonas import prepare_tonas


def main(argv=None):
    args = cli_parser(__doc__).parse_args(argv)
    return run_cli(lambda: prepare_tonas(args.data_folder, **common_kwargs(args)))


if __name__ == "__main__":
    sys.exit(main())
