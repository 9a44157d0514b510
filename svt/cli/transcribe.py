"""`svt-transcribe INPUT... --out-dir DIR [--model MODEL_DIR]`: singing to notes, JSON/CSV/MIDI.

Without --model the transcriber shipped in the package is used (docs/shipped-model.md): notes carry
the pitch that was sung, as fractional MIDI numbers (MIDI files: the nearest note plus a pitch
bend).

INPUT: audio files or folders of them (wav, flac, ogg, and mp3/m4a where a decoder is installed),
any sample rate and channel count. For each input the notes are written to DIR/<name>.json (name:
the file stem, made distinct where inputs share one) (`[[onset_s, offset_s, midi], ...]`) and, as
asked by --format, DIR/<name>.csv and DIR/<name>.mid; --plot adds DIR/<name>.png. A file that
fails is reported and the others go on; the exit status is 1 if any failed, 130/143 when
interrupted (Ctrl-C / SIGTERM: nothing half-written is left).

Dataset folders: where song folders hold `vocals.<ext>` (MIR-ST500 `wav16kHz/test/<id>/vocals.wav`,
N20EMv2 `data/<id>/vocals.wav`), each song's vocals are transcribed and named after the song folder
(`<id>.json`, the key of the dataset's annotation file, so `svt-score Annotations.json DIR` matches
them); the other audio in song folders (accompaniment, mixtures, noisy mixtures) is skipped.

Whole songs: with --separate the vocals of each input (a mix) are first separated with Demucs
(htdemucs; needs `pip install demucs`), window by window so memory stays bounded on long files,
and the notes are transcribed from them; --save-vocals also writes DIR/<name>.vocals.wav (16 kHz
mono). The Demucs weights are downloaded by demucs on first use and cached; offline with nothing
cached the run stops before any work, saying what to download and where to put it (or pass
--separation-model PATH, a Demucs .th/.safetensors file or a folder of them). Cost on a 2-core
CPU: about 2 CPU-seconds per second of audio, and about 1.8 GB of memory whatever the length.

With an audio-visual model (the N20EMv2/audio_visual recipe's bundle), --video gives each input's
lip video: a .npy file of uint8 (T, H, W) lip regions at 50 fps for a single input, or a folder
holding <stem>.npy for each input's file stem. With --separate the audio is separated and the
video used as it is.

The work is `svt.transcribe_files` (svt/inference/files.py), callable from Python the same way.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from svt.cli.argtypes import (
    PITCH_PRECISION_CHOICES,
    PITCH_PRECISION_HELP,
    bounded_float,
    positive_int,
    probability,
)
from svt.fileio import Terminated, stop_signals_raise
from svt.inference.files import TranscribeFilesError, transcribe_files
from svt.inference.transcribe import (
    CHUNK_SECONDS_RANGE,
    CONTEXT_SECONDS_RANGE,
    DEFAULT_CONTEXT_SECONDS,
)

PROG = "svt-transcribe"


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders")
    parser.add_argument("--model", default=None,
                        help="model bundle (a recipe's <output_folder>/model, results/demo/model) "
                             "or a recipe output folder (default: the model shipped in the "
                             "package)")
    parser.add_argument("--out-dir", required=True, help="folder for the outputs")
    parser.add_argument("--format", default="json,csv,mid",
                        help="comma-separated outputs besides JSON: csv, mid (default: all)")
    parser.add_argument("--plot", action="store_true",
                        help="also write a piano-roll PNG over the spectrogram")
    parser.add_argument("--reference", default=None,
                        help="reference notes (file, folder matched by name, or dict file): drawn "
                             "in the plot and scored")
    parser.add_argument("--video", default=None,
                        help="lip video(s) for an audio-visual model: a .npy file (one input) or "
                             "a folder of <stem>.npy matched to the inputs by file stem")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--pitch-precision", choices=PITCH_PRECISION_CHOICES,
                        default=PITCH_PRECISION_CHOICES[0], help=PITCH_PRECISION_HELP)
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="chunks per forward pass (default: the model's, 16 for the shipped "
                             "model, 4 for SSL encoders)")
    parser.add_argument("--chunk-seconds", type=bounded_float(*CHUNK_SECONDS_RANGE),
                        default=None,
                        help="audio kept per chunk, %g to %g s (default: the model's training "
                             "utterance length)" % CHUNK_SECONDS_RANGE)
    parser.add_argument("--context-seconds", type=bounded_float(*CONTEXT_SECONDS_RANGE),
                        default=DEFAULT_CONTEXT_SECONDS,
                        help="extra audio read on each side of a chunk, %g to %g s (default "
                             "0.5)" % CONTEXT_SECONDS_RANGE)
    parser.add_argument("--onset-threshold", type=probability, default=None,
                        help="onset probability a note needs to start, in (0, 1) (default: the "
                             "model's)")
    parser.add_argument("--offset-threshold", type=probability, default=None,
                        help="offset probability that ends a note, in (0, 1) (default: the "
                             "model's)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files in --out-dir that svt-transcribe did not write "
                             "(otherwise the run stops before any work)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip inputs whose outputs are all in --out-dir already (resumes an "
                             "interrupted run; outputs are written atomically, the .json last)")
    parser.add_argument("--save-frames", action="store_true",
                        help="also write <name>.npz: frame posteriors onset, offset "
                             "(probabilities), octave, pitch_class (class indices), sung_pitch "
                             "(fractional MIDI, NaN = unvoiced; models with a pitch network) and "
                             "frame_rate")
    parser.add_argument("--separate", action="store_true",
                        help="the inputs are whole songs (mixes): separate the vocals with Demucs "
                             "first (needs demucs; its weights, about 80 MB, are downloaded on "
                             "first use and cached)")
    parser.add_argument("--separation-model", default=None, metavar="PATH",
                        help="with --separate: the Demucs model, a .th or .safetensors file, a "
                             "folder of them with their bag .yaml, or a pretrained name "
                             "(default: htdemucs)")
    parser.add_argument("--save-vocals", action="store_true",
                        help="with --separate: also write the separated vocals as "
                             "<name>.vocals.wav (16 kHz mono)")
    return parser


def parse_args(parser, argv=None):
    """Parsed `argv`; an argparse error (exit 2) for options that need --separate without it."""
    args = parser.parse_args(argv)
    if not args.separate:
        for option, given in (("--save-vocals", args.save_vocals),
                              ("--separation-model", args.separation_model is not None)):
            if given:
                parser.error(f"{option} is for vocal separation: add --separate (the inputs are "
                             "then separated into vocals before they are transcribed)")
    return args


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    try:
        with stop_signals_raise():
            return run(args)
    except (KeyboardInterrupt, Terminated) as stop:
        # The finally clauses have removed temporary files and unfinished outputs; what was
        # reported as written is complete.
        print(f"{PROG}: interrupted; the files reported above are complete, nothing "
              "half-written was left; run the same command with --skip-existing to go on",
              file=sys.stderr)
        return getattr(stop, "exit_status", 130)


def report(level: str, message: str) -> None:
    """`transcribe_files`'s messages: "info" on stdout, the others on stderr, labelled."""
    if level == "info":
        print(message)
    else:
        label = "" if level == "notice" else f"{level}: "
        print(f"{PROG}: {label}{message}", file=sys.stderr)


def run(args) -> int:
    """Transcribe the inputs of parsed `args`; the exit status."""
    try:
        results = transcribe_files(
            args.inputs, args.out_dir, model=args.model, formats=args.format, plot=args.plot,
            save_frames=args.save_frames, reference=args.reference, video=args.video,
            overwrite=args.overwrite, skip_existing=args.skip_existing, device=args.device,
            chunk_seconds=args.chunk_seconds, context_seconds=args.context_seconds,
            batch_size=args.batch_size, onset_threshold=args.onset_threshold,
            offset_threshold=args.offset_threshold, separate=args.separate,
            separation_model=args.separation_model, save_vocals=args.save_vocals,
            pitch_precision=args.pitch_precision, progress=tqdm, report=report)
    except TranscribeFilesError as err:
        for line in err.errors:
            print(f"{PROG}: error: {line}", file=sys.stderr)
        if err.advice:
            print(f"{PROG}: {err.advice}", file=sys.stderr)
        return 2
    scored = [r for r in results if r.scores is not None]
    if scored:
        print(f"\n{'song':<30}{'COnPOff F1':>12}{'COnP F1':>10}{'COn F1':>10}{'COff F1':>10}")
        for r in scored:
            print(f"{r.name[:30]:<30}" + "".join(f"{100 * r.scores[f'{m}_f1']:>{w}.2f}" for m, w
                                                 in (("COnPOff", 12), ("COnP", 10), ("COn", 10),
                                                     ("COff", 10))))
    ran = [r for r in results if r.status in ("written", "failed")]
    failures = [r for r in ran if r.status == "failed"]
    print(f"\n{len(ran) - len(failures)} of {len(ran)} file(s) transcribed in "
          f"{sum(r.seconds for r in ran):.1f} s"
          + (f"; {len(failures)} failed:" if failures else ""))
    for r in failures:
        print(f"  {r.error}")
    return 1 if failures or any(r.status == "missing" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
