#!/usr/bin/env python3
"""Prepare recordings in the SSVD layout (evaluation only) -> <prepare_folder>/dur_<D>s/ssvd.csv.

    python prepare.py --data_folder /path/to/SSVD [--prepare_folder data] [--label_frame_rate 100]

Reads `<id>.flac` (or .wav, any rate; converted to 16 kHz mono) beside `<id>.txt`, one note per
line: `onset_s offset_s midi` with a fractional MIDI pitch (tab separated, CRLF, no header, as
SSVD v2.0 ships them).
"""
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svt.datasets.arguments import cli_parser, common_kwargs, run_cli
from svt.datasets.ssvd import prepare_ssvd


def main(argv=None):
    args = cli_parser(__doc__).parse_args(argv)
    return run_cli(lambda: prepare_ssvd(args.data_folder, **common_kwargs(args)))


if __name__ == "__main__":
    sys.exit(main())
