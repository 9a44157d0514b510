#!/usr/bin/env python3
"""Prepare MIR-ST500 (and optionally TONAS / ISMIR2014 as extra test sets) for the audio recipe.

    python prepare.py --data_folder /path/to/MIR-ST500 [--prepare_folder data] [--num_valid 20]
        [--tonas /path/to/TONAS] [--ismir2014 /path/to/ISMIR2014] [--separate] [--skip_invalid]

MIR-ST500 layout: Annotations.json + wav16kHz/{train,test}/<id>/vocals.wav. Writes
<prepare_folder>/dur_<D>s/mir_st500_{train,valid,test}.csv (the validation CSV is a seeded hold-out
of training songs), tonas.csv, ismir2014.csv; labels, notes and converted audio under
<prepare_folder>.
"""
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svt.datasets.arguments import (
    add_mir_st500_arguments,
    add_test_set_arguments,
    cli_parser,
    common_kwargs,
    prepare_test_sets,
    run_cli,
)
from svt.datasets.mir_st500 import prepare_mir_st500


def main(argv=None):
    parser = cli_parser(__doc__)
    add_mir_st500_arguments(parser)
    add_test_set_arguments(parser)
    args = parser.parse_args(argv)
    kwargs = common_kwargs(args)

    def run():
        csvs = prepare_mir_st500(args.data_folder, num_valid=args.num_valid,
                                 valid_seed=args.valid_seed, separate=args.separate, **kwargs)
        return {**csvs, **prepare_test_sets(args, **kwargs)}

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
