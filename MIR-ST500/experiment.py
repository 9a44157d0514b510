#!/usr/bin/env python3
"""Audio-only SVT on MIR-ST500 ("Ours 1"): prepare, train, export the bundle, test on MIR-ST500
test and, when given, TONAS and ISMIR2014.

    python experiment.py hparams/train_audio_ssl.yaml --data_folder /path/to/MIR-ST500 \
        [--tonas_folder /path/to/TONAS] [--ismir2014_folder /path/to/ISMIR2014]
    torchrun --nproc_per_node=4 experiment.py hparams/train_audio_ssl.yaml --data_folder ...
"""
import sys

from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.datasets.tonas import prepare_tonas
from svt.training.experiment import load_experiment, prepare_on_main, train_and_test


def main(argv=None):
    hparams, run_opts = load_experiment(argv)
    common = dict(save_folder=hparams["prepare_folder"], dur_threshold=hparams["dur_threshold"],
                  frame_rate=hparams["frame_rate"])
    prepare_on_main(prepare_mir_st500, data_folder=hparams["data_folder"],
                    num_valid=hparams["num_valid"], valid_seed=hparams["valid_seed"], **common)
    if hparams["tonas_folder"]:
        prepare_on_main(prepare_tonas, data_folder=hparams["tonas_folder"], **common)
    if hparams["ismir2014_folder"]:
        prepare_on_main(prepare_ismir2014, data_folder=hparams["ismir2014_folder"], **common)
    return train_and_test(hparams, run_opts)


if __name__ == "__main__":
    main(sys.argv[1:])
