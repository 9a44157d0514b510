#!/usr/bin/env python3
"""Video-only SVT on N20EMv2 (AV-HuBERT visual encoder + linear head): prepare, train, export the
bundle, test on N20EMv2 test and valid; with --extract_features True, write per-song video
features of the trained model for the audio-visual stage instead (train, valid and test songs).

    python experiment.py hparams/train_video_ssl.yaml --data_folder /path/to/N20EMv2
    python experiment.py hparams/train_video_ssl.yaml --data_folder ... --extract_features True
"""
import sys

from svt.datasets.n20emv2 import prepare_n20emv2_video
from svt.training.experiment import (
    extract_features,
    load_experiment,
    prepare_on_main,
    train_and_test,
)


def main(argv=None):
    hparams, run_opts = load_experiment(argv)
    prepare_on_main(prepare_n20emv2_video, data_folder=hparams["data_folder"],
                    save_folder=hparams["prepare_folder"], dur_threshold=hparams["dur_threshold"],
                    frame_rate=hparams["frame_rate"])
    if hparams["extract_features"]:
        csvs = {"train": hparams["train_csv"], "valid": hparams["valid_csv"],
                "test": hparams["test_csvs"]["n20em_video_test"]}
        return extract_features(hparams, run_opts, csvs, name="video_feats")
    return train_and_test(hparams, run_opts)


if __name__ == "__main__":
    main(sys.argv[1:])
