"""Finding a dataset's songs: folder checks, audio and annotation discovery, song names, and the
input checks that run before anything is written.

A dataset module (`svt.datasets.ssvd` is the shortest) turns the files of a dataset folder into
`SongSource`s, one per song: its name, its validated notes, the annotation file they came from and
its vocals (or a mixture to separate). Everything that can be wrong with the input (a missing or
unreadable recording, an annotation without audio, notes in Hz, notes that outlast the audio, two
recordings with one name) is collected per song in a `Problems` list and reported together, with
the dataset, song and file named, before any file is written (`keep_usable_songs`); with
`strict=False` such songs are skipped with a warning each instead. `svt.datasets.songs` then
prepares the songs that are left.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from svt.audio import AudioError, audio_info
from svt.data.utterances import PrepareError, check_preparation_settings
from svt.datasets.separation import SEPARATION_HELP, VOCALS_HELP
from svt.fileio import no_duplicate_keys, unsafe_name_reason
from svt.notes.formats import NoteFileError
from svt.notes.labels import validate_notes

logger = logging.getLogger(__name__)
#: Notes may end at most this many seconds after the end of the audio.
END_TOLERANCE_S = 1.0
#: File name suffixes read as audio when a dataset folder is searched (`find_audio_files`).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
#: Problems listed in one error message before "... and N more".
MAX_LISTED = 40
#: Highest MIDI note number; a median pitch above HZ_LIKE_MEDIAN suggests pitches in Hz (sung
#: notes lie around MIDI 40-80, while 100 Hz and more is every voice's range in Hz).
MAX_MIDI = 127
HZ_LIKE_MEDIAN = 100


@dataclass
class SongSource:
    """One song to prepare, as found in a dataset folder."""

    dataset: str
    song: str
    notes: np.ndarray
    anno_file: Path  # the annotation file (shared or per song)
    audio: Path | None = None  # the vocals, any rate / channels
    mixture: Path | None = None  # a mixture to separate when there are no vocals
    split: str | None = None


def natural_key(name: str):
    """Sort key putting "2" before "10"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", str(name)) if part]


class Problems:
    """Per-song input problems: raised together (strict) or skipped with a warning each."""

    def __init__(self, dataset: str, data_folder):
        self.dataset, self.data_folder = dataset, data_folder
        self.items: list[tuple[str, str]] = []

    def add(self, song: str, message: str) -> None:
        self.items.append((song, message))

    @property
    def songs(self) -> set:
        return {song for song, _ in self.items}

    def resolve(self, strict: bool) -> None:
        if not self.items:
            return
        lines = [f"  - {self.dataset} song {song!r}: {message}" for song, message in self.items]
        if strict:
            shown = lines[:MAX_LISTED]
            if len(lines) > MAX_LISTED:
                shown.append(f"  ... and {len(lines) - MAX_LISTED} more")
            raise PrepareError(
                f"{self.dataset}: {len(self.items)} problem(s) with the data in "
                f"{self.data_folder}:\n" + "\n".join(shown) + "\nFix them, or skip these songs "
                "with --skip_invalid (on the command line of prepare.py or experiment.py; "
                "strict=False in Python).")
        for line in lines:
            logger.warning("skipping %s", line.strip()[2:])


# ---------------------------------------------------------------------------- folders

def check_output_folder(folder, option: str = "prepare_folder") -> Path:
    """The folder a preparation writes to (named by `option` in messages) is a folder or can be
    made one. Nothing is created here, so a preparation that fails leaves nothing behind: a file
    on the way, or a nearest existing folder that cannot be written, is a PrepareError now rather
    than a traceback mid-preparation. Returns the absolute path."""
    path = Path(os.path.abspath(folder))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise PrepareError(f"--{option} {folder}: {existing} is a file, not a folder; give a "
                           "folder (it is created when missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        state = "is not writable" if existing == path else f"cannot be created in {existing}"
        raise PrepareError(f"--{option} {folder}: the folder {state} (no permission); give a "
                           "folder you can write to")
    return path


def check_dataset_folders(dataset: str, data_folder, prepare_folder, dur_threshold=None,
                          label_frame_rate=None) -> Path:
    """The first call of every prepare function, before any work: the data folder exists, the
    preparation folder lies outside it (nothing is ever written into a dataset) and can be
    written, and (when given) the utterance length and label frame rate make sense. Raises
    PrepareError naming the dataset and the option; returns the data folder as a Path."""
    if dur_threshold is not None or label_frame_rate is not None:
        check_preparation_settings(5 if dur_threshold is None else dur_threshold,
                                   49.8 if label_frame_rate is None else label_frame_rate)
    data = Path(data_folder)
    if not data.is_dir():
        raise PrepareError(f"{dataset}: data folder {data} does not exist; pass the dataset's root "
                           "folder")
    inside = folder_inside(prepare_folder, data)
    if inside:
        raise PrepareError(f"{dataset}: prepare_folder {prepare_folder} {inside}; svt never writes "
                           "into a dataset, choose a prepare_folder outside it")
    check_output_folder(prepare_folder)
    return data


def folder_inside(folder, dataset_folder) -> str | None:
    """How `folder` (an output folder, existing or not) lies in `dataset_folder`, for the message
    of a refusal ("is inside the data folder X", naming the real paths when a symbolic link
    leads there), or None when it does not. Real paths are compared (`Path.resolve`, which
    follows every link of the part that exists), so `link/prep` with `link -> <data>/wav16kHz`
    is inside the dataset."""
    data_real = Path(dataset_folder).resolve()
    out_real = Path(folder).resolve()
    if out_real != data_real and data_real not in out_real.parents:
        return None
    data_abs, out_abs = Path(os.path.abspath(dataset_folder)), Path(os.path.abspath(folder))
    linked = out_abs != out_real or data_abs != data_real
    where = f"is inside the data folder {data_abs}"
    if linked:
        where += f" (through a symbolic link: it is {out_real}, inside {data_real})"
    return where


def find_audio_files(folder: Path) -> list[Path]:
    """Every audio file (AUDIO_SUFFIXES, any case) in `folder` and its subfolders, sorted; hidden
    files (`.`-prefixed, e.g. macOS `._x.wav` resource forks) are left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in AUDIO_SUFFIXES)


def unique_song_names(paths, root: Path, stem, problems=None) -> dict:
    """`{song_name: path}` for recordings found below `root`: names are `stem(path)`; where several
    files share one, each gets its relative folder prefixed (`Martinetes1_01-...`) so every song
    keeps a distinct name. Where that still leaves two files one name (`a.wav` and `a.flac` in one
    folder, or `x/c.wav` beside a root `x_c.wav`), neither is kept: a problem each in `problems`
    (PrepareError without)."""
    by_stem: dict = {}
    for p in paths:
        by_stem.setdefault(stem(p), []).append(p)
    candidates: dict = {}
    for name, group in by_stem.items():
        if len(group) == 1:
            candidates.setdefault(name, []).append(group[0])
            continue
        for p in group:
            prefix = "_".join(p.parent.relative_to(root).parts) or "root"
            candidates.setdefault(f"{prefix}_{name}", []).append(p)
    names, collisions = {}, {}
    for name, group in candidates.items():
        if len(group) == 1:
            names[name] = group[0]
        else:
            collisions[name] = group
    if problems is not None:
        for name, group in collisions.items():
            problems.add(name, f"two recordings map to song name {name!r}: "
                               f"{', '.join(str(p) for p in group)}; keep one of them (or rename "
                               "one) so that every song has its own name")
    elif collisions:
        name, group = next(iter(collisions.items()))
        raise PrepareError(f"two recordings map to song name {name!r}: "
                           f"{', '.join(str(p) for p in group)}; keep one of them (or rename one)")
    return names


# ---------------------------------------------------------------------------- annotations

def read_annotation_json(path: Path, dataset: str, layout: str) -> dict:
    """A dataset's shared annotation file (`{song: ...}` JSON object, e.g. MIR-ST500's
    `Annotations.json`), read strictly: a missing file names the expected `layout`, and invalid
    JSON, a key named twice (json would keep only the last song of that name) or a value that is
    not an object are PrepareErrors naming the file."""
    if not path.is_file():
        raise PrepareError(f"{dataset}: annotation file {path} not found; expected the layout "
                           f"{layout}")
    try:
        value = json.loads(path.read_text(), object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise PrepareError(f"{dataset}: {path}: line {err.lineno}: invalid JSON ({err.msg}); fix "
                           "or re-download the annotation file") from None
    except ValueError as err:  # a key named twice: json would keep the last one silently
        raise PrepareError(f"{dataset}: {path}: {err} (in the same JSON object); json keeps only "
                           "the last one, so the other song's notes would be lost. Remove or "
                           "rename the duplicate") from None
    if not isinstance(value, dict):
        raise PrepareError(f"{dataset}: {path}: expected a JSON object {{song: notes}}, got a "
                           f"{type(value).__name__}")
    return value


def parse_note_list(value, source: str) -> np.ndarray:
    """A JSON note list (`[[onset_s, offset_s, midi], ...]`) as a validated, onset-sorted `(N, 3)`
    array: every note three numbers, onsets before offsets (`svt.notes.labels.validate_notes`) and
    MIDI pitches (`check_midi_pitches`). ValueError naming `source` and the note otherwise."""
    if not isinstance(value, list):
        raise ValueError(f"{source}: expected a list of [onset_s, offset_s, midi] notes, got "
                         f"{type(value).__name__}")
    for i, note in enumerate(value):
        if not (isinstance(note, (list, tuple)) and len(note) >= 3
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in note[:3])):
            raise ValueError(f"{source}: note {i} is {note!r}, expected [onset_s, offset_s, midi]")
    notes = validate_notes([list(n[:3]) for n in value], source)
    check_midi_pitches(notes, source)
    return notes[np.argsort(notes[:, 0], kind="stable")]


def check_midi_pitches(notes: np.ndarray, source: str) -> None:
    """ValueError when the pitches of a note list are not MIDI note numbers: above 127, or a
    median above 100 (they look like Hz)."""
    if not len(notes):
        return
    pitches = notes[:, 2]
    median, highest = float(np.median(pitches)), float(pitches.max())
    if highest > MAX_MIDI or median > HZ_LIKE_MEDIAN:
        raise ValueError(f"{source}: the pitches look like Hz, not MIDI note numbers (median "
                         f"{median:g}, highest {highest:g}; MIDI notes lie in 0-{MAX_MIDI}, sung "
                         "ones around 40-80); convert them with midi = 69 + 12 * log2(hz / 440)")


def parse_annotations(raw: dict, ann_path: Path) -> dict:
    """`{song: notes array or ValueError}` from a `{song: note_list}` object (`parse_note_list`
    per song). A song whose notes, or whose id (ids become file names), are invalid maps to the
    error, so that `match_song_folders` reports it as a problem of that song alone."""
    entries = {}
    for key, value in raw.items():
        reason = unsafe_name_reason(key)
        if reason:
            entries[str(key)] = ValueError(f"{ann_path}: song id {key!r} {reason}; song ids "
                                           "become file names, so it is refused")
            continue
        try:
            entries[str(key)] = parse_note_list(value, f"{ann_path}: song {key!r}")
        except (ValueError, TypeError) as err:
            entries[str(key)] = ValueError(str(err))
    return entries


def read_song_notes(path, reader, song, problems):
    """`reader(path)` (a note-file reader of `svt.notes.formats`), or None after adding the
    reader's NoteFileError/ValueError to `problems` as the song's "invalid notes"."""
    try:
        return reader(path)
    except (NoteFileError, ValueError) as err:
        problems.add(song, f"invalid notes: {err}")
        return None


# ---------------------------------------------------------------------------- matching songs

def _mixture_in(folder: Path):
    found = sorted(p for p in folder.iterdir() if p.is_file()
                   and p.name.lower().startswith("mixture") and not p.name.startswith("."))
    return found[0] if found else None


def match_song_folders(dataset, annotations, folders, ann_path, problems, layout, separate=None,
                       splits=None) -> list[SongSource]:
    """Songs of a layout with one folder per song and one shared annotation file: matches
    `{song: notes or error}` (`parse_annotations`) with `{song: song_folder}`, the vocals being
    `vocals.wav` in each folder. An annotation without a folder, a folder without an annotation,
    invalid notes or missing vocals are problems of that song (`layout` is the expected layout in
    their messages). `separate`: whether a `Mixture.*` file stands in for missing vocals (True),
    is refused with the `--separate` remedy (False), or None for a dataset whose preparation
    cannot separate (its messages then name only the remedies that exist for it). `splits`:
    `{song: split}` recorded in each SongSource."""
    sources = []
    for song in sorted(set(annotations) - set(folders), key=natural_key):
        problems.add(song, f"annotated in {ann_path} but has no audio folder (expected {layout}); "
                           "add the audio or remove the entry")
    for song in sorted(set(folders) - set(annotations), key=natural_key):
        problems.add(song, f"audio folder {folders[song]} has no entry in {ann_path}; add its "
                           "notes or remove the folder")
    for song in sorted(set(annotations) & set(folders), key=natural_key):
        notes = annotations[song]
        if isinstance(notes, Exception):
            problems.add(song, f"invalid notes: {notes}")
            continue
        folder = folders[song]
        vocals = folder / "vocals.wav"
        source = SongSource(dataset, song, notes, ann_path, split=(splits or {}).get(song))
        if vocals.is_file():
            source.audio = vocals
        else:
            mixture = _mixture_in(folder)
            if mixture is not None and separate:
                source.mixture = mixture
            elif mixture is not None:
                help_text = VOCALS_HELP if separate is None else SEPARATION_HELP
                problems.add(song, f"missing {vocals}; the folder has the mixture {mixture.name}. "
                                   f"{help_text}")
                continue
            else:
                present = ", ".join(p.name for p in sorted(folder.iterdir())
                                    if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
                problems.add(song, f"missing {vocals}"
                                   + (f" (the folder holds {present})" if present else "")
                                   + "; put the song's vocals there under that name (any sample "
                                   "rate and channels; they are converted)"
                                   + ("" if separate is None else ", or a Mixture.* file and "
                                      "pass --separate (needs demucs)"))
                continue
        sources.append(source)
    return sources


def read_converted_layout(dataset, data, problems) -> list[SongSource]:
    """The songs of the original recipes' converted layout, `Annotations.json` +
    `wav16kHz/<song>/vocals.wav` (TONAS and ISMIR2014 accept it besides their native layouts)."""
    ann_path = data / "Annotations.json"
    raw = read_annotation_json(ann_path, dataset, "Annotations.json + wav16kHz/<song>/vocals.wav")
    audio_root = data / "wav16kHz"
    folders = {p.name: p for p in sorted(audio_root.iterdir()) if p.is_dir()} \
        if audio_root.is_dir() else {}
    return match_song_folders(dataset, parse_annotations(raw, ann_path), folders, ann_path,
                              problems, "wav16kHz/<song>/vocals.wav")


def pair_audio_with_notes(dataset, data, audio_files, notes_files, notes_stem, reader, problems,
                          notes_suffix: str, audio_suffix: str) -> list[SongSource]:
    """Songs of a layout with one note file per recording, beside it: the audio `<stem>.<ext>`
    goes with the note file for which `notes_stem(path)` is `<stem>` in the same folder, read with
    `reader`. Songs are named by `unique_song_names`. An audio file without annotation, or the
    reverse, is a problem naming the missing file (`notes_suffix` / `audio_suffix` as shown in
    those messages)."""
    beside = {(p.parent, notes_stem(p)): p for p in notes_files}
    matched, sources = set(), []
    named = unique_song_names(audio_files, data, lambda p: p.stem, problems)
    claimed = {(p.parent, p.stem) for p in audio_files}  # beside a colliding recording
    for song, wav in named.items():
        note_file = beside.get((wav.parent, wav.stem))
        if note_file is None:
            problems.add(song, f"audio {wav} has no {wav.stem}{notes_suffix} beside it; add the "
                               "annotation or remove the file")
            continue
        matched.add(note_file)
        notes = read_song_notes(note_file, reader, song, problems)
        if notes is not None:
            sources.append(SongSource(dataset, song, notes, note_file, audio=wav))
    for note_file in notes_files:
        if note_file not in matched and (note_file.parent, notes_stem(note_file)) not in claimed:
            stem = notes_stem(note_file)
            problems.add(stem, f"annotation {note_file} has no audio file {stem}{audio_suffix} "
                               "beside it; add the audio or remove the annotation")
    return sources


# ---------------------------------------------------------------------------- checks

def annotation_mismatch(src: SongSource, duration: float, audio) -> str | None:
    """Why `src`'s notes do not fit a recording of `duration` seconds (`audio`, named in the
    message): they end more than END_TOLERANCE_S after it. None when they fit."""
    last = float(src.notes[:, 1].max())
    if last > duration + END_TOLERANCE_S:
        return (f"annotation/audio mismatch: notes in {src.anno_file} end at {last:.2f} s but the "
                f"audio {audio} lasts only {duration:.2f} s; check that they belong to the same "
                "song (and the same cut)")
    return None


def _check_sources(sources, problems) -> list[SongSource]:
    """Header-only checks of every song: readable audio, non-empty notes that fit the audio."""
    kept = []
    for src in sources:
        if len(src.notes) == 0:
            problems.add(src.song, f"the note list in {src.anno_file} is empty; annotate the song "
                                   "or remove it")
            continue
        if src.audio is not None:
            try:
                rate, frames, _ = audio_info(src.audio)
            except AudioError as err:
                problems.add(src.song, str(err))
                continue
            if frames == 0:
                problems.add(src.song, f"{src.audio} holds no samples; replace it with the song's "
                                       "audio")
                continue
            message = annotation_mismatch(src, frames / rate, src.audio)
            if message:
                problems.add(src.song, message)
                continue
        kept.append(src)
    return kept


def keep_usable_songs(sources, problems, strict, dataset, data_folder) -> list[SongSource]:
    """The last step before anything is written: checks every song's audio header (readable, not
    empty, not shorter than its notes) and notes (not empty), then resolves all the problems
    found so far (`Problems.resolve`: one PrepareError listing them when `strict`, a warning each
    otherwise). Returns the usable songs; PrepareError when none is left."""
    sources = _check_sources(sources, problems)
    problems.resolve(strict)
    if not sources:
        raise PrepareError(f"{dataset}: no usable songs found in {data_folder}")
    return sources
