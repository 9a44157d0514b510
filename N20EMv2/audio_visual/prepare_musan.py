#!/usr/bin/env python3
"""Prepare MUSAN for the noisy-singing experiments (babble, natural noise).

    python prepare_musan.py --musan /path/to/musan --out /path/to/musan_prepared [--jobs 8]
        [--seed 1234] [--num_babble_train 8000 --num_babble_valid 1000 --num_babble_test 1000]
        [--slurm_partition cpu [--nshard 100]]

Writes under --out (see svt/noise.py): short-musan/{speech,music,noise}/<subset>/<name>-<i>.wav
(10-s clips; files of 10 s or less are kept as they are), short-musan/speech/spk.{train,valid,test}
(seeded 80/10/10 speaker split), short-musan/babble/wav/<split>-<00001>.wav (30-talker babble),
short-musan/nframes.audio, and the pools noise/babble.json and noise/natural.json that
synthesize_noise.py reads. Existing outputs are kept, so an interrupted run can simply be
restarted. With --slurm_partition the heavy stages run as a Slurm job array (needs `submitit`).
"""
import argparse
import logging
import sys
from pathlib import Path

try:
    import svt  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from svt.audio import AudioError
from svt.data.utterances import PrepareError
from svt.datasets.musan import DEFAULT_NUM_BABBLE, NoiseError, prepare_musan


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--musan", required=True,
                        help="MUSAN root (holding speech/, music/ and noise/)")
    parser.add_argument("--out", required=True,
                        help="output folder (short-musan/ and noise/ go here; may be --musan)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="local worker processes (default 1; 0: one per CPU)")
    parser.add_argument("--seed", type=int, default=1234,
                        help="seed of the speaker split, babble and natural-noise split")
    for split in ("train", "valid", "test"):
        parser.add_argument(f"--num_babble_{split}", type=int, default=DEFAULT_NUM_BABBLE[split],
                            help=f"babble mixtures for {split} (default "
                                 f"{DEFAULT_NUM_BABBLE[split]})")
    parser.add_argument("--speakers_per_babble", type=int, default=30,
                        help="speech clips per babble mixture (default 30)")
    parser.add_argument("--natural_all_clips", action="store_true",
                        help="natural-noise pool: every 10-s clip of every MUSAN noise file "
                             "(default: only files of 1-10 s, the original's pool)")
    parser.add_argument("--overwrite", action="store_true", help="redo every output")
    parser.add_argument("--slurm_partition", default=None,
                        help="run on this Slurm partition through submitit (optional)")
    parser.add_argument("--nshard", type=int, default=100,
                        help="Slurm array tasks per stage (default 100)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = prepare_musan(
            args.musan, args.out, jobs=args.jobs, seed=args.seed,
            num_babble={"train": args.num_babble_train, "valid": args.num_babble_valid,
                        "test": args.num_babble_test},
            speakers_per_babble=args.speakers_per_babble,
            natural_max_source_s=None if args.natural_all_clips else 10.0,
            overwrite=args.overwrite, progress=not args.no_progress,
            slurm_partition=args.slurm_partition, slurm_nshard=args.nshard)
    except (NoiseError, AudioError, PrepareError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"short-musan: {result['short_musan']}")
    print(f"clips: {result['clips']} ({result['written']['clips']} written)")
    print(f"speakers: {result['speakers']}")
    print(f"babble: {result['babble']} ({result['written']['babble']} written)")
    print(f"nframes: {result['nframes']}")
    print(f"babble pool: {result['babble_index']}")
    print(f"natural pool: {result['natural_index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
