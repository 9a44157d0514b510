#!/usr/bin/env python3
"""Evaluate a trained audio-only model on ISMIR2014.

    python experiment.py hparams/evaluate.yaml --data_folder /path/to/ISMIR2014 --model /path/to/model
"""
import sys

from svt.datasets.ismir2014 import prepare_ismir2014
from svt.training.experiment import evaluate_dataset, run_recipe


def main(argv=None):
    return evaluate_dataset(prepare_ismir2014, argv)


if __name__ == "__main__":
    sys.exit(run_recipe(main, "ISMIR2014"))
