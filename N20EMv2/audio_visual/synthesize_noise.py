#!/usr/bin/env python3
"""Write noisy versions of every N20EMv2 song (4 noise types x 5 SNRs by default).

    python synthesize_noise.py --n20emv2 /path/to/N20EMv2 --musan_prepared /path/to/musan_prepared
        [--noise_types accomp babble white natural] [--snrs -10 -5 0 5 10]
        [--snr_definition amplitude|power] [--jobs 8] [--seed 1234] [--overwrite]

Reads annotations.json ({entry: {"midi", "split"}}), data/<entry>/vocals.wav and (accomp)
data/<entry>/accomp.wav; --musan_prepared is the --out folder of prepare_musan.py (needed for
babble and natural). Writes data/<entry>/noise_data/<type>/SNR_<snr>dB.wav (16 kHz mono 16-bit),
a mix.json next to them (settings, noise sources, gains) and noise_data/{babble,natural}/noise.wav.
Babble and natural clips come from the pool of each song's own split. SNR "amplitude" (default,
the original's) compares mean absolute amplitudes, "power" compares powers. Everything is seeded
per (song, noise type), so results do not depend on --jobs; existing files are kept unless
--overwrite.
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
from svt.datasets.musan import (
    DEFAULT_SNRS,
    NOISE_TYPES,
    SNR_DEFINITIONS,
    NoiseError,
    synthesize_noisy_songs,
)


def _split_list(values):
    return [v for value in values for v in value.split(",") if v.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n20emv2", required=True, help="N20EMv2 root (annotations.json, data/)")
    parser.add_argument("--musan_prepared", default=None,
                        help="output folder of prepare_musan.py (for babble and natural noise)")
    parser.add_argument("--noise_types", nargs="+", default=list(NOISE_TYPES),
                        help=f"noise types (default: {' '.join(NOISE_TYPES)})")
    parser.add_argument("--snrs", nargs="+", default=[str(s) for s in DEFAULT_SNRS],
                        help="SNRs in dB (default: -10 -5 0 5 10)")
    parser.add_argument("--snr_definition", choices=SNR_DEFINITIONS, default="amplitude",
                        help="amplitude: mean absolute amplitude ratio (the original); "
                             "power: power ratio")
    parser.add_argument("--jobs", type=int, default=1,
                        help="local worker processes (default 1; 0: one per CPU)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--overwrite", action="store_true", help="replace existing mixtures")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    noise_types = _split_list(args.noise_types)
    unknown = [t for t in noise_types if t not in NOISE_TYPES]
    if unknown:
        parser.error(f"unknown noise type(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(NOISE_TYPES)}")
    try:
        snrs = [float(s) for s in _split_list(args.snrs)]
    except ValueError:
        parser.error(f"--snrs: numbers expected, got {' '.join(args.snrs)}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = synthesize_noisy_songs(
            args.n20emv2, args.musan_prepared, noise_types=noise_types, snrs=snrs,
            snr_definition=args.snr_definition, seed=args.seed, jobs=args.jobs,
            overwrite=args.overwrite, progress=not args.no_progress)
    except (NoiseError, AudioError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{result['songs']} songs: {result['written']} mixtures written, "
          f"{result['skipped']} already done, {result['kept']} existing files kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
