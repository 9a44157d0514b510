#!/usr/bin/env python3
"""Evaluate a trained audio-only model on TONAS.

    python experiment.py hparams/evaluate.yaml --data_folder /path/to/TONAS --model /path/to/model
"""
import sys

from svt.datasets.tonas import prepare_tonas
from svt.training.experiment import evaluate_dataset, run_recipe


def main(argv=None):
    return evaluate_dataset(prepare_tonas, argv)


if __name__ == "__main__":
    sys.exit(run_recipe(main, "TONAS"))
