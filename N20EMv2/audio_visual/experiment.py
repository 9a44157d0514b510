#!/usr/bin/env python3
"""Audio-visual SVT on N20EMv2: RCA fusion of frozen audio and video features under a matched
noise condition (train_rca_av.yaml), or the audio-only control with zero video (train_rca_a.yaml).

    python experiment.py hparams/train_rca_av.yaml --data_folder /path/to/N20EMv2 \
        --prepare_folder ../audio_only/data --noise_type accomp --snr_db -10 \
        --init_head_from ../audio_only/results/<run>/model

Needs the features of the trained audio model for this condition and of the trained video model
(`--extract_features True` in ../audio_only and ../video_only); `run_noise_grid.py` runs the lot.
"""
import sys

from svt.training.experiment import load_experiment, train_fusion


def main(argv=None):
    hparams, run_opts = load_experiment(argv)
    return train_fusion(hparams, run_opts)


if __name__ == "__main__":
    main(sys.argv[1:])
