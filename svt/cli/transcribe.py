"""`svt-transcribe INPUT... --out-dir DIR [--model MODEL_DIR]`: singing to notes, JSON/CSV/MIDI.

Without --model the transcriber shipped in the package is used (docs/shipped-model.md): notes carry
the pitch that was sung, as fractional MIDI numbers (MIDI files: the nearest note plus a pitch
bend).

INPUT: audio files or folders of them (wav, flac, ogg, and mp3/m4a where a decoder is installed),
any sample rate and channel count. For each input the notes are written to DIR/<name>.json (name:
the file stem, made distinct where inputs share one, see `output_stems`)
(`[[onset_s, offset_s, midi], ...]`) and, as asked by --format, DIR/<name>.csv and DIR/<name>.mid;
--plot adds DIR/<name>.png. A file that fails is reported and the others go on; the exit status is
1 if any failed, 130/143 when interrupted (Ctrl-C / SIGTERM: nothing half-written is left).

Dataset folders: where song folders hold `vocals.<ext>` (MIR-ST500 `wav16kHz/test/<id>/vocals.wav`,
N20EMv2 `data/<id>/vocals.wav`), each song's vocals are transcribed and named after the song folder
(`<id>.json`, the key of the dataset's annotation file, so `svt-score Annotations.json DIR` matches
them); the other audio in song folders (accompaniment, mixtures, noisy mixtures) is skipped.

With an audio-visual model (the N20EMv2/audio_visual recipe's bundle), --video gives each input's
lip video: a .npy file of uint8 (T, H, W) lip regions at 50 fps for a single input, or a folder
holding <stem>.npy for each input's file stem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from svt.audio import NonFiniteAudioWarning
from svt.cli.argtypes import (
    non_negative_float,
    positive_float,
    positive_int,
    probability,
)
from svt.fileio import (
    Terminated,
    atomic_path,
    raise_if_stopped,
    stop_signals_raise,
    write_json_atomic,
)
from svt.inference.bundle import BundleError
from svt.inference.transcribe import (
    AUDIO_SUFFIXES,
    DEFAULT_CONTEXT_SECONDS,
    DEFAULT_MODEL,
    SilentInputWarning,
    resolve_device,
    resolve_model,
    transcribe,
)
from svt.notes.formats import (
    NoteFileError,
    detect_format,
    write_notes_csv,
    write_notes_json,
    write_notes_midi,
)

FORMATS = ("json", "csv", "mid")


#: In the dataset layouts (MIR-ST500 `wav16kHz/<split>/<id>/vocals.wav`, N20EMv2
#: `data/<id>/vocals.wav`) a song is a folder holding `vocals.<ext>`: the folder's name is the
#: song id its annotations use.
VOCALS_STEM = "vocals"


def is_vocals(path) -> bool:
    return Path(path).stem.lower() == VOCALS_STEM


def song_name(path) -> str:
    """The name a file's notes are written under: its stem, or for `<song>/vocals.<ext>` the song
    folder's name (so outputs match `Annotations.json` / `annotations.json` keys)."""
    path = Path(os.path.abspath(path))
    return path.parent.name if is_vocals(path) and path.parent.name else path.stem


def _audio_in(folder):
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _dataset_songs(files):
    """`(kept, skipped)` for the audio found under one folder. Where song folders hold
    `vocals.<ext>` (a dataset tree), only their vocals are the singing to transcribe: the other
    audio inside a song folder (accompaniment, mixtures, N20EMv2's `noise_data/` mixtures) is
    skipped; files outside song folders are kept."""
    song_folders = {f.parent for f in files if is_vocals(f)}
    if not song_folders:
        return files, []
    kept, skipped = [], []
    for f in files:
        inside = any(folder == f.parent or folder in f.parents for folder in song_folders)
        (skipped if inside and not is_vocals(f) else kept).append(f)
    return kept, skipped


def find_inputs(inputs):
    """`(files, missing, skipped)`: audio files named directly or found (recursively) in folders,
    in a stable order; inputs that do not exist; `{folder: [files]}` left out of dataset trees
    (`_dataset_songs`). A file named directly is always kept."""
    files, missing, skipped = [], [], {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            kept, left_out = _dataset_songs(_audio_in(path))
            files += kept
            if left_out:
                skipped[path] = left_out
        elif path.is_file():
            files.append(path)
        else:
            missing.append(path)
    # A file named twice (directly and through its folder) is transcribed once.
    unique = {}
    for f in files:
        unique.setdefault(os.path.abspath(f), f)
    return list(unique.values()), missing, skipped


def output_stems(files):
    """Output names, one per input and never two alike: `song_name` (the file stem, or the song
    folder of a `vocals.<ext>`); where several inputs share one, their folders below the folder
    they have in common joined with "__" (`x/a/song.wav` -> `x__a__song`, `x/1/vocals.wav` ->
    `x__1`), plus the extension where they differ only by it (`song__wav`, `song__flac`)."""
    resolved = [Path(os.path.abspath(f)) for f in files]
    bases = [song_name(f) for f in resolved]
    # The folder a name is made relative to: a song's vocals stand for their song folder.
    homes = [f.parent.parent if is_vocals(f) and f.parent.name else f.parent for f in resolved]
    names = []
    for f, base, home in zip(resolved, bases, homes):
        group = [i for i, b in enumerate(bases) if b == base]
        if len(group) == 1:
            names.append(base)
            continue
        root = Path(os.path.commonpath([homes[i] for i in group]))
        name = "__".join([*home.relative_to(root).parts, base])
        if sum(homes[i] == home for i in group) > 1:
            name += "__" + f.suffix.lstrip(".").lower()
        names.append(name)
    return names


def name_clashes(files, names) -> dict:
    """`{output name: [inputs]}` for every name more than one input would be written to."""
    by_name = {}
    for f, name in zip(files, names):
        by_name.setdefault(name, []).append(f)
    return {name: group for name, group in by_name.items() if len(group) > 1}


def folds_case(folder: Path) -> bool:
    """Whether file names in `folder` ignore case (macOS's and Windows' usual file systems), where
    `Song.json` and `song.json` are one file."""
    fd, probe = tempfile.mkstemp(prefix=".svt-case-probe-", dir=folder)
    os.close(fd)
    try:
        return os.path.exists(os.path.join(folder, os.path.basename(probe).upper()))
    finally:
        os.remove(probe)


def report_clashes(clashes: dict) -> int:
    for name, group in clashes.items():
        print(f"svt-transcribe: error: {', '.join(map(str, group))} would all be written as "
              f"{name}.*", file=sys.stderr)
    print("svt-transcribe: nothing was written; rename the inputs or run them separately",
          file=sys.stderr)
    return 2


#: svt-transcribe's list of the files it wrote in an --out-dir: only those it replaces without
#: --overwrite, and only those count as done for --skip-existing.
RECORD_FILE = ".svt-transcribe.json"


def read_record(out_dir: Path) -> set:
    """Names of the files svt-transcribe wrote in `out_dir` (empty if it never did)."""
    try:
        names = json.loads((out_dir / RECORD_FILE).read_text()).get("written", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {str(name) for name in names if isinstance(name, str)}


def add_to_record(out_dir: Path, names) -> None:
    record = read_record(out_dir) | set(names)
    write_json_atomic(out_dir / RECORD_FILE, {"written": sorted(record)}, indent=0)


def output_suffixes(args, formats) -> list:
    """The files each input gets, the `.json` first."""
    return [".json", *(f".{f}" for f in sorted(formats - {"json"})),
            *([".npz"] if args.save_frames else []), *([".png"] if args.plot else [])]


def check_out_dir(out_dir: Path) -> str | None:
    """Why outputs cannot be written to `out_dir` (None when they can); creates it."""
    if out_dir.exists() and not out_dir.is_dir():
        return f"--out-dir {out_dir} is a file, not a folder; give a folder for the outputs"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--out-dir {out_dir} cannot be created ({err.strerror or err})"
    if not os.access(out_dir, os.W_OK | os.X_OK):
        return f"--out-dir {out_dir} is not writable; choose another folder"
    return None


def build_parser():
    parser = argparse.ArgumentParser(prog="svt-transcribe", description=__doc__,
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
    parser.add_argument("--batch-size", type=positive_int, default=4,
                        help="chunks per forward pass")
    parser.add_argument("--chunk-seconds", type=positive_float, default=None,
                        help="audio kept per chunk (default: the model's training utterance "
                             "length)")
    parser.add_argument("--context-seconds", type=non_negative_float,
                        default=DEFAULT_CONTEXT_SECONDS,
                        help="extra audio read on each side of a chunk (default 0.5)")
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
    return parser


def save_frames(path, frames, frame_rate: float) -> None:
    """The frame posteriors as `.npz`; frame i is at i / frame_rate seconds."""
    names = ("onset", "offset", "octave", "pitch_class", "sung_pitch")
    arrays = {name: np.asarray(f) for name, f in zip(names, frames)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, frame_rate=np.float64(frame_rate))


def find_videos(video, files):
    """`{audio file: its lip video or None}` from --video (None: audio only). In a folder, a
    file's video is `<name>.npy` (`song_name`) or, in the N20EMv2 layout,
    `<song>/video_50fps.npy`."""
    if video is None:
        return {}
    video = Path(video)
    if video.is_dir():
        from svt.datasets.n20emv2 import N20EMV2_VIDEO_FILE

        def video_of(f):
            name = song_name(f)
            candidates = [video / f"{name}.npy", video / name / N20EMV2_VIDEO_FILE]
            return next((c for c in candidates if c.is_file()), None)

        return {f: video_of(f) for f in files}
    if not video.is_file():
        raise ValueError(f"{video}: no such file or folder")
    if len(files) != 1:
        raise ValueError(f"one video file was given for {len(files)} audio inputs; pass a folder "
                         "of <stem>.npy videos instead")
    return {files[0]: video}


def load_references(path, stems):
    from svt.cli.score import load_side

    references = load_side(path)
    # One note file for one input goes with it whatever the names; songs from a folder or a
    # dict file are matched by name, so a reference of another song is never scored.
    single_file = Path(path).is_file() and detect_format(path) != "json-dict"
    if single_file and len(stems) == 1:
        return {stems[0]: next(iter(references.values()))}
    return references


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with stop_signals_raise():
            return run(args)
    except (KeyboardInterrupt, Terminated) as stop:
        # The finally clauses have removed temporary files and unfinished outputs; what was
        # reported as written is complete.
        print("svt-transcribe: interrupted; the files reported above are complete, nothing "
              "half-written was left; run the same command with --skip-existing to go on",
              file=sys.stderr)
        return getattr(stop, "exit_status", 130)


def run(args) -> int:
    """Transcribe the inputs of parsed `args`; the exit status."""
    formats = {f.strip().lower().lstrip(".") for f in args.format.split(",") if f.strip()}
    formats = {"mid" if f in ("midi",) else f for f in formats}
    unknown = formats - set(FORMATS)
    if unknown:
        print(f"svt-transcribe: error: unknown --format {sorted(unknown)}; choose from csv, mid",
              file=sys.stderr)
        return 2
    if any(not item.strip() for item in args.inputs):
        # An unset shell variable ("$SONG") would otherwise mean the current folder, recursively.
        print("svt-transcribe: error: an input is an empty string (an unset shell variable?); "
              "name the files or folders to transcribe", file=sys.stderr)
        return 2
    files, missing, skipped = find_inputs(args.inputs)
    for path in missing:
        print(f"svt-transcribe: error: {path}: no such file or folder", file=sys.stderr)
    for folder, left_out in skipped.items():
        kinds = sorted({f.name for f in left_out})
        shown = ", ".join(kinds[:4]) + (", ..." if len(kinds) > 4 else "")
        print(f"svt-transcribe: {folder}: song folders with vocals.* (a dataset layout): their "
              f"vocals are transcribed and named after the song folders; {len(left_out)} other "
              f"audio file(s) in them skipped ({shown}); name a file directly to transcribe it",
              file=sys.stderr)
    if not files:
        print("svt-transcribe: error: no audio files to transcribe", file=sys.stderr)
        return 2
    stems = output_stems(files)
    clashes = name_clashes(files, stems)
    if clashes:
        return report_clashes(clashes)
    problem = check_out_dir(Path(args.out_dir))
    if problem:
        print(f"svt-transcribe: error: {problem}", file=sys.stderr)
        return 2
    if folds_case(Path(args.out_dir)):  # `Song.wav` and `song.wav` would share `song.json`
        clashes = name_clashes(files, [stem.casefold() for stem in stems])
        if clashes:
            return report_clashes(clashes)
    out_dir = Path(args.out_dir)
    suffixes = output_suffixes(args, formats)
    recorded = read_record(out_dir)
    todo = list(zip(files, stems))
    if args.skip_existing:
        done_before = [(path, stem) for path, stem in todo
                       if all(f"{stem}{suffix}" in recorded and (out_dir / f"{stem}{suffix}")
                              .is_file() for suffix in suffixes)]
        todo = [item for item in todo if item not in done_before]
        if done_before:
            print(f"--skip-existing: {len(done_before)} of {len(files)} file(s) already have "
                  f"their outputs in {out_dir}; {len(todo)} to transcribe")
    foreign = [out_dir / f"{stem}{suffix}" for _, stem in todo for suffix in suffixes
               if f"{stem}{suffix}" not in recorded and (out_dir / f"{stem}{suffix}").exists()]
    if foreign and not args.overwrite:
        shown = ", ".join(str(f) for f in foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        print(f"svt-transcribe: error: {len(foreign)} output(s) would replace files that "
              f"svt-transcribe did not write: {shown}. Nothing was written; choose another "
              "--out-dir, or pass --overwrite to replace them", file=sys.stderr)
        return 2
    try:
        videos = find_videos(args.video, files)
    except ValueError as err:
        print(f"svt-transcribe: error: --video: {err}", file=sys.stderr)
        return 2
    lacking = [path for path, _ in todo if args.video is not None and videos[path] is None]
    if lacking:
        for path in lacking:
            print(f"svt-transcribe: error: {path}: no lip video for it in {args.video} (expected "
                  f"{song_name(path)}.npy or {song_name(path)}/video_50fps.npy)", file=sys.stderr)
        print("svt-transcribe: nothing was written; add the videos or leave those inputs out",
              file=sys.stderr)
        return 2
    try:
        if args.model is None and args.video is not None:
            raise ValueError("--video needs --model (an audio-visual bundle); the shipped model "
                             "is audio-only")
        device = resolve_device(args.device)
    except ValueError as err:
        print(f"svt-transcribe: error: {err}", file=sys.stderr)
        return 2
    try:
        model = resolve_model(DEFAULT_MODEL if args.model is None else args.model, device,
                              "audio" if args.video is None else "audio_visual")
    except (BundleError, ValueError, OSError) as err:
        print(f"svt-transcribe: error: cannot load the model: {err}", file=sys.stderr)
        return 2
    references = {}
    if args.reference:
        try:
            references = load_references(args.reference, stems)
        except (NoteFileError, ValueError) as err:
            print(f"svt-transcribe: error: --reference: {err}", file=sys.stderr)
            return 2

    failures, summary = [], []
    start = time.time()
    for path, stem in tqdm(todo, unit="file", desc="transcribing", disable=len(todo) < 2):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SilentInputWarning)
                warnings.simplefilter("always", NonFiniteAudioWarning)
                notes, frames = transcribe(path, model=model, video=videos.get(path),
                                           chunk_seconds=args.chunk_seconds,
                                           context_seconds=args.context_seconds,
                                           batch_size=args.batch_size, progress=tqdm,
                                           onset_threshold=args.onset_threshold,
                                           offset_threshold=args.offset_threshold,
                                           return_frames=True)
            for warning in caught:
                if issubclass(warning.category, (SilentInputWarning, NonFiniteAudioWarning)):
                    print(f"svt-transcribe: warning: {warning.message}", file=sys.stderr)
            # Recorded before they are written: a run stopped between two of them leaves
            # only files svt-transcribe may replace.
            add_to_record(out_dir, [f"{stem}{suffix}" for suffix in suffixes])
            if args.save_frames:
                save_frames(out_dir / f"{stem}.npz", frames, model.encoder.frame_rate)
            if "csv" in formats:
                write_notes_csv(out_dir / f"{stem}.csv", notes)
            if "mid" in formats:
                write_notes_midi(out_dir / f"{stem}.mid", notes)
            reference = references.get(stem)
            scores = None
            if reference is not None:
                from svt.notes.scoring import score_song

                scores = score_song(reference, notes)
                summary.append((stem, scores))
            if args.plot:
                from svt.audio import read_audio
                from svt.inference.plot import plot_piano_roll

                plot_piano_roll(out_dir / f"{stem}.png", notes, read_audio(path), 16000,
                                reference=reference, title=stem, scores=scores)
            # Last: a JSON file means every output of its input is complete (--skip-existing).
            write_notes_json(out_dir / f"{stem}.json", notes)
            print(f"{path}: {len(notes)} notes -> {out_dir / stem}.json")
        except Exception as err:  # one bad file must not stop a folder run
            raise_if_stopped()  # ... but Ctrl-C / SIGTERM must, even when a library caught it
            message = str(err) if str(path) in str(err) else f"{path}: {err}"
            failures.append((path, message))
            print(f"svt-transcribe: error: {message}", file=sys.stderr)
    if summary:
        print(f"\n{'song':<30}{'COnPOff F1':>12}{'COnP F1':>10}{'COn F1':>10}{'COff F1':>10}")
        for stem, s in summary:
            print(f"{stem[:30]:<30}" + "".join(f"{100 * s[f'{m}_f1']:>{w}.2f}" for m, w in
                                               (("COnPOff", 12), ("COnP", 10), ("COn", 10),
                                                ("COff", 10))))
    unmatched = [s for s in stems if s not in references]
    if references and unmatched:
        print(f"svt-transcribe: warning: no reference notes for: {', '.join(unmatched)} "
              "(references are matched by file name)", file=sys.stderr)
    done = len(todo) - len(failures)
    print(f"\n{done} of {len(todo)} file(s) transcribed in {time.time() - start:.1f} s"
          + (f"; {len(failures)} failed:" if failures else ""))
    for _, reason in failures:
        print(f"  {reason}")
    return 1 if failures or missing else 0


if __name__ == "__main__":
    sys.exit(main())
