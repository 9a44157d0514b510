"""Transcribing files to files: audio files and folders in, note files out (`transcribe_files`,
what `svt-transcribe` runs).

    import svt
    results = svt.transcribe_files(["take1.wav", "MIR-ST500/wav16kHz/test"], "notes",
                                   formats=("json", "mid"), plot=True)
    failed = [r for r in results if r.status in ("failed", "missing")]
    svt.transcribe_files("song.mp3", "notes", separate=True, save_vocals=True)  # whole songs

Inputs: audio files (`AUDIO_SUFFIXES`) and folders searched recursively. Where song folders hold
`vocals.<ext>` (MIR-ST500 `wav16kHz/test/<id>/vocals.wav`, N20EMv2 `data/<id>/vocals.wav`) each
song's vocals are transcribed and named after the song folder (`<id>.json`, the key of the
dataset's annotation file); the other audio in song folders is skipped (`find_inputs`).

Outputs: `<name>.json` (`[[onset_s, offset_s, midi], ...]`) for every input and, as asked,
`<name>.csv`, `<name>.mid`, `<name>.npz` (frame posteriors), `<name>.png` (piano roll) and
`<name>.vocals.wav` (the separated vocals, `save_vocals`); names never clash (`output_stems`,
checked case-insensitively where the folder ignores case). Every file is written atomically, the
`.json` last, so a JSON means the input's outputs are complete. The files written are listed in
`RECORD_FILE` in the output folder with their size and SHA-256: only files that still hold what
was written are replaced without `overwrite` (one edited by hand since is the user's), and only
those count as done for `skip_existing`. A record of an older svt-transcribe, names without
checksums, cannot tell an edited file from an untouched one: its files are kept unless
`overwrite` (the safe choice; the error says so). Names starting with `.svt-` are reserved for
the record and the staging folders. Record updates are serialised with `fcntl.flock` on the
output folder, so runs sharing one `--out-dir` never lose each other's entries.

Whole songs (`separate=True`): each input's vocals are separated from the mix with Demucs
(`svt.inference.separation`, in bounded memory) and transcribed; the separator is loaded once for
all inputs, and the piano roll shows the separated vocals. Whether its weights can be had (cached,
or downloadable now) is checked first of all, without downloading anything: offline with nothing
cached, the run is refused with the message saying what to download and where to put it.

Every check that needs no model (separation weights, inputs, names, the output folder, files that
would be replaced, lip videos, the device, reference notes, the options) runs before the models
load, and refuses the run with a `TranscribeFilesError` before anything is written; after that, a
file that fails is reported and the others go on.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svt.audio import (
    AUDIO_SUFFIXES,
    SAMPLE_RATE,
    ArraySource,
    AudioInputWarning,
    NonFiniteAudioWarning,
    read_audio,
)
from svt.errors import SvtUserError
from svt.fileio import atomic_path, raise_if_stopped, write_json_atomic
from svt.inference.bundle import BundleError, check_pitch_precision
from svt.inference.transcribe import (
    DEFAULT_CONTEXT_SECONDS,
    DEFAULT_MODEL,
    SilentInputWarning,
    check_arguments,
    check_separation_arguments,
    resolve_device,
    resolve_model,
    separation_model_for,
    transcribe,
    transcribe_source,
)
from svt.notes.formats import (
    NoteFileError,
    detect_format,
    read_note_source,
    write_notes_csv,
    write_notes_json,
    write_notes_midi,
)

logger = logging.getLogger(__name__)

#: The note files `transcribe_files` can write; the JSON is always written.
FORMATS = ("json", "csv", "mid")
#: In the dataset layouts (MIR-ST500 `wav16kHz/<split>/<id>/vocals.wav`, N20EMv2
#: `data/<id>/vocals.wav`) a song is a folder holding `vocals.<ext>`: the folder's name is the
#: song id its annotations use.
VOCALS_STEM = "vocals"
#: The list of the files `transcribe_files` wrote in an output folder: only those it replaces
#: without `overwrite`, and only those count as done for `skip_existing`.
RECORD_FILE = ".svt-transcribe.json"
#: Output names starting with this are the record's and the staging folders': no input may map
#: onto them (an input `.svt-transcribe.wav` would write its notes over the record).
RESERVED_PREFIX = ".svt-"
#: The record's layout: `{"format": 2, "written": [names], "files": {name: [[size, sha256],
#: ...]}}` (`written` alone in format 1, which older svt-transcribe versions still read).
RECORD_FORMAT = 2
#: The separated vocals' file (`save_vocals`): `<name>.vocals.wav`, 16-bit 16 kHz mono.
VOCALS_SUFFIX = ".vocals.wav"


class TranscribeFilesError(SvtUserError, ValueError):
    """The run was refused before any work and nothing was written. `errors`: one line per
    problem; `advice`: what to do about them together (or None)."""

    def __init__(self, errors, advice=None):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        self.advice = advice
        super().__init__("\n".join([*self.errors, *([advice] if advice else [])]))


@dataclass
class FileResult:
    """What `transcribe_files` did with one input.

    status: "written" (every output written), "skipped" (`skip_existing`: its outputs were
    there), "failed" (`error` says why; the other inputs went on) or "missing" (no such file or
    folder; `name` is None)."""

    input: Path
    name: str | None
    status: str
    outputs: list = field(default_factory=list)
    notes: np.ndarray | None = None
    scores: dict | None = None
    error: str | None = None
    warnings: list = field(default_factory=list)
    seconds: float = 0.0


# ---------------------------------------------------------------------------- finding the inputs

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


def find_videos(video, files):
    """`{audio file: its lip video or None}` from `video` (None: audio only): a `.npy` file for a
    single input, or a folder where a file's video is `<name>.npy` (`song_name`) or, in the
    N20EMv2 layout, `<song>/video_50fps.npy`."""
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


def read_references(path, stems) -> dict:
    """`{output name: reference notes}` from a note file, a folder of them (matched by name) or
    a dict file. One note file for one input goes with it whatever the names; songs from a
    folder or a dict file are matched by name, so a reference of another song is never scored."""
    references = read_note_source(path)
    single_file = Path(path).is_file() and detect_format(path) != "json-dict"
    if single_file and len(stems) == 1:
        return {stems[0]: next(iter(references.values()))}
    return references


# ---------------------------------------------------------------------------- naming the outputs

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


def _refuse_clashes(clashes: dict) -> None:
    if clashes:
        raise TranscribeFilesError(
            [f"{', '.join(map(str, group))} would all be written as {name}.*"
             for name, group in clashes.items()],
            "nothing was written; rename the inputs or run them separately")


def parse_formats(formats) -> set:
    """The note formats asked for (`"csv,mid"` or `("csv", "mid")`; `midi` and `.mid` are `mid`),
    "json" included or not; a TranscribeFilesError for any other."""
    if isinstance(formats, str):
        formats = formats.split(",")
    formats = {str(f).strip().lower().lstrip(".") for f in formats if str(f).strip()}
    formats = {"mid" if f == "midi" else f for f in formats}
    unknown = formats - set(FORMATS)
    if unknown:
        raise TranscribeFilesError(f"unknown --format {sorted(unknown)}; choose from csv, mid")
    return formats


def output_suffixes(formats, save_frames=False, plot=False, save_vocals=False) -> list:
    """The files each input gets, the `.json` first."""
    return [".json", *(f".{f}" for f in sorted(set(formats) - {"json"})),
            *([".npz"] if save_frames else []), *([".png"] if plot else []),
            *([VOCALS_SUFFIX] if save_vocals else [])]


# ---------------------------------------------------------------------------- the output folder

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


def read_record_entries(out_dir: Path) -> dict:
    """`{name: [(size, sha256), ...] or None}` of the files svt-transcribe wrote in `out_dir`
    (None: listed by an older record without checksums, content unknown); {} if it never did."""
    try:
        record = json.loads((Path(out_dir) / RECORD_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(record, dict):
        return {}
    entries = {}
    written = record.get("written", [])
    for name in written if isinstance(written, list) else []:
        if isinstance(name, str):
            entries[name] = None
    files = record.get("files", {})
    for name, versions in (files.items() if isinstance(files, dict) else []):
        if isinstance(versions, list):
            entries[str(name)] = [(int(v[0]), str(v[1])) for v in versions
                                  if isinstance(v, list) and len(v) == 2
                                  and isinstance(v[0], int) and isinstance(v[1], str)]
    return entries


def read_record(out_dir: Path) -> set:
    """Names of the files svt-transcribe wrote in `out_dir` (empty if it never did)."""
    return set(read_record_entries(out_dir))


def _write_record(out_dir: Path, entries: dict) -> None:
    files = {name: [list(v) for v in versions] for name, versions in sorted(entries.items())
             if versions}
    write_json_atomic(Path(out_dir) / RECORD_FILE,
                      {"format": RECORD_FORMAT, "written": sorted(entries), "files": files},
                      indent=0)


@contextlib.contextmanager
def record_lock(out_dir: Path):
    """Hold an exclusive `fcntl.flock` on the output folder itself (no lock file left behind)
    while the record is read and rewritten, so concurrent runs never lose each other's entries.
    Where flock is not available the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def file_digest(path) -> tuple[int, str]:
    """`(size, sha256 hex)` of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return os.path.getsize(path), digest.hexdigest()


def is_ours(out_dir: Path, name: str, entries: dict) -> bool:
    """Whether `out_dir/name` still holds what svt-transcribe wrote there (its size and SHA-256
    are in the record): a file changed since is the user's; an entry of an older record without
    checksums is unknown content, so not ours."""
    versions = entries.get(name)
    path = Path(out_dir) / name
    if not versions or not path.is_file():
        return False
    size = os.path.getsize(path)
    if not any(size == recorded for recorded, _ in versions):
        return False
    return file_digest(path) in versions


def add_to_record(out_dir: Path, names) -> None:
    """Record the current content of `out_dir/<name>` for each name (under `record_lock`)."""
    with record_lock(Path(out_dir)):
        entries = read_record_entries(out_dir)
        for name in names:
            entries[name] = [file_digest(Path(out_dir) / name)]
        _write_record(out_dir, entries)


def _publish(out_dir: Path, staging: Path, names) -> None:
    """Move the finished outputs `staging/<name>` into `out_dir`, in order, with the record kept
    true at every moment: first each file's new content is recorded beside the content it
    replaces (when that was ours), then the files are renamed into place, then the old content
    is dropped from the record. A run stopped anywhere leaves only recorded, replaceable files."""
    new = {name: file_digest(staging / name) for name in names}
    with record_lock(out_dir):
        entries = read_record_entries(out_dir)
        for name in names:
            keep = entries.get(name) if is_ours(out_dir, name, entries) else None
            entries[name] = [new[name], *(v for v in keep or [] if v != new[name])]
        _write_record(out_dir, entries)
    for name in names:
        os.replace(staging / name, out_dir / name)
    with record_lock(out_dir):
        entries = read_record_entries(out_dir)
        for name in names:
            entries[name] = [new[name]]
        _write_record(out_dir, entries)


def write_frames(path, frames, frame_rate: float) -> None:
    """The frame posteriors as `.npz` (atomically); frame i is at i / frame_rate seconds."""
    names = ("onset", "offset", "octave", "pitch_class", "sung_pitch")
    arrays = {name: np.asarray(f) for name, f in zip(names, frames)}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, frame_rate=np.float64(frame_rate))


def _plan_outputs(files, out_dir: Path, suffixes, overwrite, skip_existing, report):
    """`(names, todo, done_before)`: each file's output name, the `(file, name)` pairs to
    transcribe and those `skip_existing` leaves out; a TranscribeFilesError where names clash,
    `out_dir` cannot take the outputs, or they would replace files svt-transcribe did not write
    (without `overwrite`)."""
    stems = output_stems(files)
    _refuse_clashes(name_clashes(files, stems))
    problem = check_out_dir(out_dir)
    if problem:
        raise TranscribeFilesError(problem)
    if folds_case(out_dir):  # `Song.wav` and `song.wav` would share `song.json`
        _refuse_clashes(name_clashes(files, [stem.casefold() for stem in stems]))
    reserved = [(path, stem) for path, stem in zip(files, stems)
                if stem.casefold().startswith(RESERVED_PREFIX)]
    if reserved:
        raise TranscribeFilesError(
            [f"{path}: its outputs would be named {stem}.*, but names starting with "
             f"{RESERVED_PREFIX} are svt-transcribe's own (its record {RECORD_FILE})"
             for path, stem in reserved],
            "nothing was written; rename those inputs (or copy them under another name)")
    recorded = read_record_entries(out_dir)
    todo = list(zip(files, stems))
    done_before = []
    if skip_existing:
        done_before = [(path, stem) for path, stem in todo
                       if all(is_ours(out_dir, f"{stem}{suffix}", recorded)
                              for suffix in suffixes)]
        todo = [item for item in todo if item not in done_before]
        if done_before:
            report("info", f"--skip-existing: {len(done_before)} of {len(files)} file(s) already "
                           f"have their outputs in {out_dir}; {len(todo)} to transcribe")
    foreign = [f"{stem}{suffix}" for _, stem in todo for suffix in suffixes
               if (out_dir / f"{stem}{suffix}").exists()
               and not is_ours(out_dir, f"{stem}{suffix}", recorded)]
    if foreign and not overwrite:
        def why(name):
            if name not in recorded:
                return ""
            if recorded[name] is None:
                return (" (listed by an older svt-transcribe without a checksum, so a change "
                        "since cannot be ruled out)")
            return " (changed since svt-transcribe wrote it)"

        shown = ", ".join(f"{out_dir / name}{why(name)}" for name in foreign[:5]) \
            + (" ..." if len(foreign) > 5 else "")
        raise TranscribeFilesError(
            f"{len(foreign)} output(s) would replace files that svt-transcribe did not write or "
            f"that were changed since it wrote them: {shown}. Nothing was written; choose another "
            "--out-dir, or pass --overwrite to replace them")
    return stems, todo, done_before


def _log(level: str, message: str) -> None:
    """The default `report`: Python's logging."""
    {"error": logger.error, "warning": logger.warning}.get(level, logger.info)(message)


# ---------------------------------------------------------------------------- the call

def transcribe_files(inputs, out_dir, *, model=None, formats=FORMATS, plot=False,
                     save_frames=False, reference=None, video=None, overwrite=False,
                     skip_existing=False, device="auto", chunk_seconds=None,
                     context_seconds=DEFAULT_CONTEXT_SECONDS, batch_size=None,
                     onset_threshold=None, offset_threshold=None, separate=False,
                     separation_model=None, save_vocals=False, progress=None,
                     report=None, pitch_precision=None) -> list[FileResult]:
    """Transcribe audio files and folders into note files in `out_dir`; one `FileResult` per
    input (inputs that do not exist first, then the audio files in the order found).

    Args:
        inputs: an audio file or folder, or a list of them (see the module docstring).
        out_dir: the folder for the outputs (created).
        model: a loaded model or a bundle / recipe output folder (None: the shipped model).
        formats: note files besides the JSON, which is always written: "csv", "mid".
        plot: also write `<name>.png`, the notes over the spectrogram (with the reference).
        save_frames: also write `<name>.npz`: frame posteriors onset, offset, octave,
            pitch_class, sung_pitch (models with a pitch network) and frame_rate.
        reference: reference notes (a note file, a folder matched by name, or a dict file):
            scored (`FileResult.scores`) and drawn in the plots.
        video: lip videos for an audio-visual model (`find_videos`).
        overwrite: replace files in `out_dir` that `transcribe_files` did not write (otherwise
            the run is refused before any work).
        skip_existing: leave out inputs whose outputs are all there (resumes a stopped run).
        device, chunk_seconds, context_seconds, batch_size, onset_threshold, offset_threshold,
        pitch_precision: as for `svt.transcribe` (`device`: "auto" takes a GPU when there is
            one).
        separate: the inputs are whole songs (mixes): separate their vocals with Demucs first
            (needs demucs; see the module docstring).
        separation_model: with `separate`, the Demucs model: None (`htdemucs`, downloaded by
            demucs on first use and cached), a pretrained name, a local model file or folder, or
            a model loaded with `svt.inference.separation.load_separation_model`.
        save_vocals: with `separate`, also write the separated vocals as `<name>.vocals.wav`
            (16 kHz mono, 16-bit; listed in the record like the other outputs).
        progress: a tqdm-like class for progress bars (None: none).
        report: `report(level, message)` is called with what happens, as it happens; levels
            "error" (a missing input, a file that failed), "warning" (a silent input, damaged
            samples, references not found), "notice" (files skipped in dataset folders), "info"
            (a file done, inputs left out by `skip_existing`). None: Python's logging.

    Raises:
        TranscribeFilesError: before any work, with nothing written (see the module docstring);
        a stop (KeyboardInterrupt) leaves the outputs written so far, nothing half-written.
    """
    report = report or _log
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    formats = parse_formats(formats)
    try:
        check_arguments(onset_threshold, offset_threshold, chunk_seconds, context_seconds,
                        batch_size)
        check_separation_arguments(separate, separation_model)
        if pitch_precision is not None:
            check_pitch_precision(pitch_precision)
    except ValueError as err:
        raise TranscribeFilesError(str(err)) from None
    if save_vocals and not separate:
        raise TranscribeFilesError("save_vocals (--save-vocals) writes the vocals that vocal "
                                   "separation makes; pass separate=True (--separate) too")
    separation = _check_separation(separation_model) if separate else None
    if any(not str(item).strip() for item in inputs):
        # An unset shell variable ("$SONG") would otherwise mean the current folder, recursively.
        raise TranscribeFilesError("an input is an empty string (an unset shell variable?); name "
                                   "the files or folders to transcribe")
    files, missing, skipped = find_inputs(inputs)
    results = []
    for path in missing:
        results.append(FileResult(path, None, "missing", error=f"{path}: no such file or folder"))
        report("error", results[-1].error)
    for folder, left_out in skipped.items():
        kinds = sorted({f.name for f in left_out})
        shown = ", ".join(kinds[:4]) + (", ..." if len(kinds) > 4 else "")
        report("notice", f"{folder}: song folders with vocals.* (a dataset layout): their vocals "
                         f"are transcribed and named after the song folders; {len(left_out)} "
                         f"other audio file(s) in them skipped ({shown}); name a file directly to "
                         "transcribe it")
    if not files:
        raise TranscribeFilesError("no audio files to transcribe")
    out_dir = Path(out_dir)
    suffixes = output_suffixes(formats, save_frames, plot, save_vocals)
    stems, todo, done_before = _plan_outputs(files, out_dir, suffixes, overwrite, skip_existing,
                                             report)
    try:
        videos = find_videos(video, files)
    except ValueError as err:
        raise TranscribeFilesError(f"--video: {err}") from None
    lacking = [path for path, _ in todo if video is not None and videos[path] is None]
    if lacking:
        raise TranscribeFilesError(
            [f"{path}: no lip video for it in {video} (expected {song_name(path)}.npy or "
             f"{song_name(path)}/video_50fps.npy)" for path in lacking],
            "nothing was written; add the videos or leave those inputs out")
    try:
        if model is None and video is not None:
            raise ValueError("--video needs --model (an audio-visual bundle); the shipped model "
                             "is audio-only")
        device = resolve_device(device)
    except ValueError as err:
        raise TranscribeFilesError(str(err)) from None
    references = {}
    if reference:  # not None, nor an empty --reference ""
        try:
            references = read_references(reference, stems)
        except (NoteFileError, ValueError) as err:
            raise TranscribeFilesError(f"--reference: {err}") from None
    separator = None
    if separate and todo:
        from svt.inference.separation import SeparationError

        report("info", f"vocal separation: {separation}")
        try:
            separator = separation_model_for(separation_model, device, check=False)
        except SeparationError as err:
            raise TranscribeFilesError(f"cannot load the separation model: {err}") from None
    try:
        model = resolve_model(DEFAULT_MODEL if model is None else model, device,
                              "audio" if video is None else "audio_visual", pitch_precision)
    except (BundleError, ValueError, OSError) as err:
        raise TranscribeFilesError(f"cannot load the model: {err}") from None

    by_input = {path: FileResult(path, stem, "skipped",
                                 outputs=[out_dir / f"{stem}{suffix}" for suffix in suffixes])
                for path, stem in done_before}
    options = dict(chunk_seconds=chunk_seconds, context_seconds=context_seconds,
                   batch_size=batch_size, onset_threshold=onset_threshold,
                   offset_threshold=offset_threshold)
    for path, stem in (progress(todo, unit="file", desc="transcribing")
                       if progress is not None and len(todo) > 1 else todo):
        by_input[path] = _transcribe_one(path, stem, out_dir, suffixes, model, separator,
                                         videos.get(path), references.get(stem), options,
                                         progress, report)
    unmatched = [s for s in stems if s not in references]
    if references and unmatched:
        report("warning", f"no reference notes for: {', '.join(unmatched)} (references are "
                          "matched by file name)")
    return results + [by_input[path] for path in files]


def _check_separation(separation_model) -> str:
    """Where the separator comes from (one line), checked without downloading anything; a
    TranscribeFilesError (the separation module's message) when it cannot be had."""
    from svt.inference.separation import SeparationError, check_separation_available

    if separation_model is not None and not isinstance(separation_model, (str, os.PathLike)):
        return "the Demucs model given"
    try:
        return check_separation_available(separation_model)
    except SeparationError as err:
        raise TranscribeFilesError(str(err)) from None


def _transcribe_one(path, stem, out_dir, suffixes, model, separator, video, reference, options,
                    progress, report) -> FileResult:
    """One input's transcription and outputs (its vocals separated first when there is a
    `separator`); a failure is reported and returned, not raised."""
    result = FileResult(path, stem, "failed")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SilentInputWarning)
            warnings.simplefilter("always", NonFiniteAudioWarning)
            warnings.simplefilter("always", AudioInputWarning)
            vocals = None
            if separator is None:
                notes, frames = transcribe(path, model=model, video=video, progress=progress,
                                           return_frames=True, **options)
            else:
                from svt.inference.separation import separate_file

                vocals = separate_file(path, separator, progress=progress)
                notes, frames = transcribe_source(
                    ArraySource(vocals), model, name=f"the vocals separated from {path}",
                    video=video, progress=progress, **options)
        for warning in caught:
            if issubclass(warning.category, (SilentInputWarning, NonFiniteAudioWarning,
                                             AudioInputWarning)):
                result.warnings.append(str(warning.message))
                report("warning", str(warning.message))
        # Written into a staging folder, then recorded (size, SHA-256) and moved into place
        # (`_publish`): a run stopped between two of them leaves only files svt-transcribe may
        # replace, and a file edited by hand later is told apart from one it wrote.
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f"{RESERVED_PREFIX}staging-"))
        try:
            _write_outputs(staging, stem, suffixes, notes, frames, vocals, model, reference,
                           result, path)
            _publish(out_dir, staging, [f"{stem}{suffix}" for suffix in
                                        [*(s for s in suffixes if s != ".json"), ".json"]])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.status, result.notes = "written", notes
        result.outputs = [out_dir / f"{stem}{suffix}" for suffix in suffixes]
        report("info", f"{path}: {len(notes)} notes -> {out_dir / stem}.json")
    except Exception as err:  # one bad file must not stop a folder run
        raise_if_stopped()  # ... but Ctrl-C / SIGTERM must, even when a library caught it
        result.error = str(err) if str(path) in str(err) else f"{path}: {err}"
        report("error", result.error)
    result.seconds = time.perf_counter() - start
    return result


def _write_outputs(out_dir, stem, suffixes, notes, frames, vocals, model, reference, result,
                   path) -> None:
    """Every output of one input into `out_dir` (the staging folder), the `.json` last."""
    if VOCALS_SUFFIX in suffixes:
        from svt.inference.separation import save_vocals

        save_vocals(out_dir / f"{stem}{VOCALS_SUFFIX}", vocals, SAMPLE_RATE)
    if ".npz" in suffixes:
        write_frames(out_dir / f"{stem}.npz", frames, model.encoder.frame_rate)
    if ".csv" in suffixes:
        write_notes_csv(out_dir / f"{stem}.csv", notes)
    if ".mid" in suffixes:
        write_notes_midi(out_dir / f"{stem}.mid", notes)
    if reference is not None:
        from svt.notes.scoring import score_song

        result.scores = score_song(reference, notes)
    if ".png" in suffixes:
        from svt.inference.plot import plot_piano_roll

        # The transcription warned about the file's level and length already.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AudioInputWarning)
            warnings.simplefilter("ignore", NonFiniteAudioWarning)
            audio = read_audio(path) if vocals is None else vocals
        plot_piano_roll(out_dir / f"{stem}.png", notes, audio, SAMPLE_RATE,
                        reference=reference, title=stem, scores=result.scores)
    # Last: a JSON file means every output of its input is complete (skip_existing).
    write_notes_json(out_dir / f"{stem}.json", notes)
