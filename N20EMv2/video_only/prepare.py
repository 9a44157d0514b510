#!/usr/bin/env python3
"""Prepare the N20EMv2 lip videos for the video recipe.

    python prepare.py --data_folder /path/to/N20EMv2 [--prepare_folder data] [--label_frame_rate 50]

N20EMv2 layout: annotations.json ({entry: {"midi": notes, "split": train|valid|test}}) +
data/<entry>/video_50fps.npy (uint8 (T, H, W) grayscale lip frames, H, W >= 88) and, optionally,
data/<entry>/vocals.wav (the video must then last as long as the audio, within --av_tolerance_s).
Writes <prepare_folder>/labels/n20emv2_video/<song>.npy (one label frame per video frame),
<prepare_folder>/notes/n20emv2_video/<song>.json and
<prepare_folder>/dur_<D>s/n20em_video_{train,valid,test}.csv.
"""
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from svt.datasets.arguments import cli_parser, common_kwargs, run_cli
from svt.datasets.n20emv2 import prepare_n20emv2_video


def main(argv=None):
    parser = cli_parser(__doc__, label_frame_rate=50,
                        label_frame_rate_help="frame rate of the videos and of their labels "
                                              "(default 50)")
    parser.add_argument("--av_tolerance_s", type=float, default=0.1,
                        help="allowed difference between the video and vocals.wav durations in "
                             "seconds (default 0.1)")
    args = parser.parse_args(argv)
    kwargs = common_kwargs(args)
    return run_cli(lambda: prepare_n20emv2_video(args.data_folder, tolerance_s=args.av_tolerance_s,
                                                 **kwargs))


if __name__ == "__main__":
    sys.exit(main())
