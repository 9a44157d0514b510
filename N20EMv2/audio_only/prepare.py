#!/usr/bin/env python3
"""Prepare N20EMv2 audio (and optionally MIR-ST500, TONAS, ISMIR2014) for the audio recipe.

    python prepare.py --data_folder /path/to/N20EMv2 [--prepare_folder data]
        [--mir_st500 /path/to/MIR-ST500] [--tonas /path/to/TONAS] [--ismir2014 /path/to/ISMIR2014]

N20EMv2 layout: annotations.json ({entry: {"midi": notes, "split": train|valid|test}}) +
data/<entry>/vocals.wav. Writes <prepare_folder>/dur_<D>s/n20em_{train,valid,test}.csv. With
--mir_st500 it also prepares MIR-ST500 (mir_st500_{train,valid,test}.csv) and writes mix_train.csv
= all MIR-ST500 training songs (its train and held-out valid CSVs, i.e. the 400 songs the original
mixed in) followed by the N20EMv2 training songs.
"""
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from svt.datasets.arguments import (
    add_mir_st500_arguments,
    add_test_set_arguments,
    cli_parser,
    common_kwargs,
    prepare_test_sets,
    run_cli,
)
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.datasets.n20emv2 import prepare_n20emv2_audio


def main(argv=None):
    parser = cli_parser(__doc__)
    parser.add_argument("--mir_st500", default=None,
                        help="MIR-ST500 root: also prepare it and write mix_train.csv")
    add_mir_st500_arguments(parser)
    add_test_set_arguments(parser)
    args = parser.parse_args(argv)
    kwargs = common_kwargs(args)

    def run():
        csvs = {}
        if args.mir_st500:
            csvs.update(prepare_mir_st500(args.mir_st500, num_valid=args.num_valid,
                                          valid_seed=args.valid_seed, separate=args.separate,
                                          **kwargs))
        mix = [csvs["mir_st500_train"], csvs["mir_st500_valid"]] if csvs else None
        csvs.update(prepare_n20emv2_audio(args.data_folder, mir_st500_train_csv=mix, **kwargs))
        return {**csvs, **prepare_test_sets(args, **kwargs)}

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
