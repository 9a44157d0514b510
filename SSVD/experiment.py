#!/usr/bin/env python3
"""Evaluate an audio-only model (default: the one shipped in the package) on recordings in the
SSVD layout.

    python experiment.py hparams/evaluate.yaml --data_folder /path/to/SSVD [--model /path/to/model]
"""
import sys

from svt.datasets.ssvd import prepare_ssvd
from svt.training.experiment import evaluate_dataset, run_recipe


def main(argv=None):
    return evaluate_dataset(prepare_ssvd, argv)


if __name__ == "__main__":
    sys.exit(run_recipe(main, "SSVD"))
