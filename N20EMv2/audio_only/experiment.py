#!/usr/bin/env python3
"""Audio-only SVT on N20EMv2 ("Ours 2"): train on MIR-ST500 train + N20EMv2 train, select by valid
COnPOff F1, test on N20EMv2 test/valid, MIR-ST500 test and, when given, TONAS and ISMIR2014.
With --extract_features True, write the trained model's per-song features instead (clean, or
with --noise_type/--snr_db from the noisy mixtures) for the audio-visual stage.

    python experiment.py hparams/train_audio_ssl.yaml --data_folder /path/to/N20EMv2 \
        --mir_st500_folder /path/to/MIR-ST500
    python experiment.py hparams/train_audio_ssl.yaml ... --extract_features True \
        [--noise_type accomp --snr_db -10]
"""
import sys

from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.datasets.musan import condition_name
from svt.datasets.n20emv2 import prepare_n20emv2_audio
from svt.datasets.tonas import prepare_tonas
from svt.training.experiment import (
    extract_features,
    load_experiment,
    prepare_on_main,
    train_and_test,
)


def main(argv=None):
    hparams, run_opts = load_experiment(argv)
    common = dict(save_folder=hparams["prepare_folder"], dur_threshold=hparams["dur_threshold"],
                  frame_rate=hparams["frame_rate"])
    mir_st500_train = None
    if hparams["mir_st500_folder"]:
        prepare_on_main(prepare_mir_st500, data_folder=hparams["mir_st500_folder"],
                        num_valid=hparams["num_valid"], valid_seed=hparams["valid_seed"],
                        **common)
        # All MIR-ST500 training songs (train + held-out valid), as the original mixed in.
        mir_st500_train = [f"{hparams['csv_folder']}/mir_st500_{split}.csv"
                           for split in ("train", "valid")]
    elif hparams["mix_train"]:
        raise SystemExit("mix_train: True needs --mir_st500_folder (MIR-ST500 train is mixed in); "
                         "pass it, or set --mix_train False to train on N20EMv2 only")
    prepare_on_main(prepare_n20emv2_audio, data_folder=hparams["data_folder"],
                    mir_st500_train_csv=mir_st500_train, **common)
    if hparams["tonas_folder"]:
        prepare_on_main(prepare_tonas, data_folder=hparams["tonas_folder"], **common)
    if hparams["ismir2014_folder"]:
        prepare_on_main(prepare_ismir2014, data_folder=hparams["ismir2014_folder"], **common)
    if hparams["extract_features"]:
        # Per-song features of the trained model for every N20EMv2 split (the original's
        # extraction YAML forgot the training songs).
        csvs = {"train": hparams["train_csv"], "valid": hparams["valid_csv"],
                "test": hparams["test_csvs"]["n20em_test"]}
        name = condition_name(hparams["noise_type"], hparams["snr_db"]) + "_feats"
        return extract_features(hparams, run_opts, csvs, name=name)
    train_csv = hparams["mix_train_csv"] if hparams["mix_train"] else hparams["train_csv"]
    return train_and_test(hparams, run_opts, train_csv=train_csv)


if __name__ == "__main__":
    main(sys.argv[1:])
