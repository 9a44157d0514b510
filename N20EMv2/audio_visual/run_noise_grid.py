#!/usr/bin/env python3
"""Run the paper's noise grid: for every noise type x SNR (plus clean), extract the trained audio
model's features from the noisy mixtures, then train and test the audio-visual model (AV) and the
audio-only control (A) under that matched condition; finally collect the table and figure.

    python run_noise_grid.py --output results/noise_grid \
        --audio_args "hparams/train_audio_ssl.yaml --data_folder /data/N20EMv2 --mir_st500_folder /data/MIR-ST500" \
        --video_args "hparams/train_video_ssl.yaml --data_folder /data/N20EMv2" \
        --av_args "--data_folder /data/N20EMv2 --prepare_folder ../audio_only/data \
                   --init_head_from ../audio_only/results/<run>/model"

The audio and video models must be trained already (their recipes with the same arguments);
`--audio_args`/`--video_args` are passed to those recipes' experiment.py (YAML paths relative to
their folders) with `--extract_features True` added. Both must write features to the same
`features_folder` that the AV runs read (`<prepare_folder>/features`). Finished conditions are
skipped, so an interrupted grid resumes.
"""
import argparse
import os
import runpy
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPES = {"audio": HERE.parent / "audio_only", "video": HERE.parent / "video_only",
           "av": HERE}
AV_YAML = "hparams/train_rca.yaml"
SYSTEMS = ("AV", "A")  # the fusion, and the audio-only control (--system A)


def run_recipe(kind, argv):
    folder = RECIPES[kind]
    argv = list(argv)
    if argv and argv[0].endswith(".yaml") and not os.path.isabs(argv[0]):
        argv[0] = str(folder / argv[0])
    return runpy.run_path(str(folder / "experiment.py"), run_name="grid")["main"](argv)


def conditions(noise_types, snrs):
    yield None, None
    for noise_type in noise_types:
        for snr in snrs:
            yield noise_type, snr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="grid results folder")
    parser.add_argument("--audio_args", required=True,
                        help="arguments of ../audio_only/experiment.py (YAML first)")
    parser.add_argument("--video_args", required=True,
                        help="arguments of ../video_only/experiment.py (YAML first)")
    parser.add_argument("--av_args", required=True,
                        help="arguments of experiment.py shared by every AV / A run")
    parser.add_argument("--noise_types", default="accomp,babble,white,natural")
    parser.add_argument("--snrs", default="-10,-5,0,5,10",
                        help="comma-separated SNRs in dB; write --snrs=-10,-5 (with '=': a bare "
                             "'-10,-5' reads as an option)")
    parser.add_argument("--systems", default="AV,A")
    args = parser.parse_args(argv)
    from svt.datasets.musan import condition_name

    output = Path(args.output)
    noise_types = [t for t in args.noise_types.split(",") if t]
    snrs = [float(s) for s in args.snrs.split(",") if s]
    systems = [s for s in args.systems.split(",") if s]
    for system in systems:
        if system not in SYSTEMS:
            raise SystemExit(f"unknown system {system!r}; choose from {sorted(SYSTEMS)}")

    print("video features (all splits)")
    run_recipe("video", shlex.split(args.video_args) + ["--extract_features", "True"])
    for noise_type, snr in conditions(noise_types, snrs):
        condition = condition_name(noise_type, snr)
        noise = [] if noise_type is None else ["--noise_type", noise_type, "--snr_db", f"{snr:g}"]
        done = all((output / system / condition / "summary_n20em_test.json").is_file()
                   for system in systems)
        if done:
            print(f"{condition}: done, skipped")
            continue
        print(f"{condition}: audio features")
        run_recipe("audio", shlex.split(args.audio_args) + ["--extract_features", "True"] + noise)
        for system in systems:
            out = output / system / condition
            if (out / "summary_n20em_test.json").is_file():
                continue
            print(f"{condition}: training {system}")
            run_recipe("av", [AV_YAML, "--system", system, *shlex.split(args.av_args), *noise,
                              "--output_folder", str(out)])
    report = runpy.run_path(str(HERE / "report.py"), run_name="grid")["main"]
    return report([str(output)])


if __name__ == "__main__":
    sys.exit(main())
