"""Data preparation: frame labels, note files, 16 kHz mono audio and utterance CSVs.

Every dataset goes through the same steps (spec section 2): find each song's vocals and notes,
check that they belong together, convert the audio to 16 kHz mono when it is not, save the frame
labels (`svt.labels.notes_to_frames`) and the note list, then write one CSV row per utterance of
`dur_threshold` seconds. The dataset-specific functions only find the songs:

* `prepare_mir_st500`: `Annotations.json` + `wav16kHz/{train,test}/<id>/vocals.wav`, plus a seeded
  validation hold-out of training songs (the original never created its `mir_st500_valid.csv`);
* `prepare_tonas`: TONAS as distributed (`<stem>.wav` beside `<stem>.notes.Corrected`, in any
  subfolders), or the original's converted layout;
* `prepare_ismir2014`: wav files and ground-truth note files matched by song name, or the converted
  layout;
* `prepare_n20emv2_audio`: `annotations.json` (`{entry: {"midi", "split"}}`) +
  `data/<entry>/vocals.wav`, and `mix_train.csv` (MIR-ST500 + N20EMv2 training rows);
* `prepare_n20emv2_video`: the same `annotations.json` + `data/<entry>/video_50fps.npy` lip videos
  → `n20em_video_{train,valid,test}.csv` (VIDEO_CSV_COLUMNS), labels at the video's 50 fps.

Nothing is ever written into a dataset folder. Everything goes under the user's `save_folder`::

    <save_folder>/labels/<dataset>/<song>.npy        frame labels (L, 4) int64,
                                                     L = round(num_samples / 16000 * frame_rate)
    <save_folder>/labels/<dataset>/_settings.json    frame rate the labels were made with
    <save_folder>/notes/<dataset>/<song>.json        the song's notes [[onset, offset, midi], ...]
    <save_folder>/audio16k/<dataset>/<song>.wav      16 kHz mono copy, only for songs whose vocals
                                                     are not 16 kHz mono (or were separated)
    <save_folder>/dur_<D>s/<name>.csv                utterance CSVs (CSV_COLUMNS)
    <save_folder>/labels/n20emv2_video/<song>.npy    video frame labels (T, 4), one per frame
    <save_folder>/notes/n20emv2_video/<song>.json    notes, as used by the video CSVs
    <save_folder>/dur_<D>s/n20em_video_<split>.csv   video utterance CSVs (VIDEO_CSV_COLUMNS)

Dataset names (CSV `dataset` column, ID prefix, folder names): `mir_st500`, `tonas`, `ismir2014`,
`n20emv2`. Writes are atomic and preparation resumes: a song whose outputs exist, are newer than its
inputs (audio and annotation file) and have the right label length is skipped; `overwrite=True`
redoes everything, and so does a changed frame rate.

Differences from the original preparers (spec section 9):

* a song shorter than D/2 gets one utterance instead of being silently dropped (bug 9.6);
* CSV IDs are `<dataset>_<song>_<utter_id>`, so MIR-ST500 and N20EMv2 rows never collide in
  `mix_train.csv` (bug 9.8); the CSVs also carry `song` and `dataset` columns;
* the labels are where the CSV says they are (bug 9.2) and no CSV depends on the current directory
  (bug 9.4);
* stereo or non-16 kHz vocals are converted instead of failing an assertion;
* inputs are validated up front (missing audio, unmatched songs, empty or invalid note lists,
  annotations that do not fit the audio) with errors naming the dataset, song and file;
  `strict=False` skips such songs with a warning instead.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import argparse
import logging
import os
import sys
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from svt.audio import SAMPLE_RATE, AudioError, audio_info, is_16k_mono, resample, to_16k_mono, \
    write_audio
from svt.fileio import atomic_path, write_json_atomic, write_text_atomic
from svt.labels import notes_to_frames, num_label_frames, validate_notes
from svt.notes_io import NoteFileError, read_notes, read_tonas, song_id, write_notes_json

logger = logging.getLogger(__name__)

CSV_COLUMNS = ["ID", "song", "dataset", "duration", "wav", "utter_id", "utter_num", "frame_anno",
               "song_anno"]
#: Notes may end at most this many seconds after the end of the audio.
END_TOLERANCE_S = 1.0
#: Default share of MIR-ST500 training songs held out for validation.
VALID_SHARE = 0.05
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
#: Problems listed in one error message before "... and N more".
MAX_LISTED = 40


class PrepareError(ValueError):
    """Input data that cannot be prepared; the message names the dataset, song and file."""


# ------------------------------------------------------------------------ utterances and CSVs

def split_utterances(duration_s: float, dur_threshold: float) \
        -> list[tuple[int, int, float, float]]:
    """Utterances of a song: `[(utter_id, utter_num, start_s, utter_duration_s), ...]`.

    The original count-based rule (spec 2.8): `utter_num = round(duration / D)` with Python's
    banker's rounding; utterances 1..n-1 last D seconds and the last one takes the remainder
    (between D/2 and 1.5 D). Fix of bug 9.6: a song shorter than D/2 (round gives 0) gets one
    utterance of its whole duration instead of being dropped. A zero-length song has none.
    """
    if dur_threshold <= 0:
        raise ValueError(f"dur_threshold must be positive, got {dur_threshold}")
    if duration_s <= 0:
        return []
    utter_num = max(1, round(duration_s / dur_threshold))
    utterances = []
    for k in range(1, utter_num + 1):
        start = (k - 1) * dur_threshold
        length = dur_threshold if k < utter_num else duration_s - start
        utterances.append((k, utter_num, start, length))
    return utterances


def utterance_slice(utter_id: int, utter_num: int, rate: float, dur_threshold: float,
                    total: int) -> tuple[int, int]:
    """Index range `[start, stop)` of utterance `utter_id` (1-based) of `utter_num` in a sequence
    of `total` items at `rate` items per second (samples at 16000, label frames at 49.8 or 50).

    `start = round((k-1) * rate * D)`, `stop = round(k * rate * D)`, the last utterance runs to
    `total` (spec 2.8; with D = 5: 80000 samples, 249 frames at 49.8 fps, 250 at 50 fps). This is
    the one definition shared by preparation and the training/evaluation pipelines.
    """
    utter_id, utter_num = int(utter_id), int(utter_num)
    if not 1 <= utter_id <= utter_num:
        raise ValueError(f"utter_id must be in 1..utter_num={utter_num}, got {utter_id}")
    start = round((utter_id - 1) * rate * dur_threshold)
    stop = int(total) if utter_id == utter_num else round(utter_id * rate * dur_threshold)
    return int(start), int(stop)


def csv_folder(save_folder, dur_threshold) -> Path:
    """`<save_folder>/dur_<D>s` (D written with `%g`: 5 -> `dur_5s`, 2.5 -> `dur_2.5s`)."""
    return Path(os.path.abspath(save_folder)) / f"dur_{dur_threshold:g}s"


def write_csv(path, rows, columns=CSV_COLUMNS) -> Path:
    """Write rows (dicts with `columns`, by default CSV_COLUMNS) atomically with `\\n` line ends;
    returns the path."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
    return Path(path)


def read_csv(path) -> tuple[list[str], list[list[str]]]:
    """`(header, rows)` of a CSV file."""
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    if not table:
        raise PrepareError(f"{path}: the CSV file is empty (no header row); prepare it again")
    return table[0], table[1:]


def merge_csvs(out, inputs) -> Path:
    """Concatenate CSVs with identical headers into `out` (rows in input order), like SpeechBrain's
    `merge_csvs`; IDs must be unique across the inputs. Returns `out`."""
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise PrepareError(f"merge_csvs({out}): no input CSVs given")
    header, rows, seen = None, [], {}
    for path in inputs:
        if not path.is_file():
            raise PrepareError(f"merge_csvs({out}): input {path} does not exist; prepare that "
                               "dataset first")
        this_header, this_rows = read_csv(path)
        if header is None:
            header = this_header
        elif this_header != header:
            raise PrepareError(
                f"merge_csvs({out}): {path} has the columns {this_header} but {inputs[0]} has "
                f"{header}; CSVs can only be merged when their headers are identical (prepare both "
                "with the same svt version)")
        id_col = header.index("ID") if "ID" in header else None
        for row in this_rows:
            if id_col is not None:
                if row[id_col] in seen:
                    raise PrepareError(f"merge_csvs({out}): ID {row[id_col]!r} appears in both "
                                       f"{seen[row[id_col]]} and {path}")
                seen[row[id_col]] = path
            rows.append(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(out, buffer.getvalue())
    return Path(out)


# ---------------------------------------------------------------------------- songs

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


@dataclass
class PreparedSong:
    dataset: str
    song: str
    wav: Path  # 16 kHz mono
    num_samples: int
    frame_anno: Path
    song_anno: Path
    split: str | None = None

    @property
    def duration(self) -> float:
        return self.num_samples / SAMPLE_RATE


def song_outputs(save_folder, dataset: str, song: str) -> dict:
    """Where a song's prepared files go: `labels`, `notes` and (when converted) `audio16k`."""
    root = Path(os.path.abspath(save_folder))
    return {
        "labels": root / "labels" / dataset / f"{song}.npy",
        "notes": root / "notes" / dataset / f"{song}.json",
        "audio16k": root / "audio16k" / dataset / f"{song}.wav",
    }


def utterance_rows(song: PreparedSong, dur_threshold: float) -> list[dict]:
    """CSV rows of one prepared song; `duration` is the utterance's exact length in seconds."""
    rows = []
    for k, n, _, _ in split_utterances(song.duration, dur_threshold):
        start, stop = utterance_slice(k, n, SAMPLE_RATE, dur_threshold, song.num_samples)
        rows.append({
            "ID": f"{song.dataset}_{song.song}_{k}",
            "song": song.song,
            "dataset": song.dataset,
            "duration": repr((stop - start) / SAMPLE_RATE),
            "wav": str(song.wav),
            "utter_id": k,
            "utter_num": n,
            "frame_anno": str(song.frame_anno),
            "song_anno": str(song.song_anno),
        })
    return rows


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
                "with strict=False (command line: --skip_invalid).")
        for line in lines:
            logger.warning("skipping %s", line.strip()[2:])


def _check_layout_paths(dataset: str, data_folder, save_folder) -> Path:
    data = Path(data_folder)
    if not data.is_dir():
        raise PrepareError(f"{dataset}: data folder {data} does not exist; pass the dataset's root "
                           "folder")
    data_abs, save_abs = Path(os.path.abspath(data)), Path(os.path.abspath(save_folder))
    if save_abs == data_abs or data_abs in save_abs.parents:
        raise PrepareError(f"{dataset}: save_folder {save_abs} is inside the data folder "
                           f"{data_abs}; svt never writes into a dataset, choose a save_folder "
                           "outside it")
    return data


def _note_array(value, source: str) -> np.ndarray:
    """A JSON note list as a validated, onset-sorted `(N, 3)` array; ValueError otherwise."""
    if not isinstance(value, list):
        raise ValueError(f"{source}: expected a list of [onset_s, offset_s, midi] notes, got "
                         f"{type(value).__name__}")
    for i, note in enumerate(value):
        if not (isinstance(note, (list, tuple)) and len(note) >= 3
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in note[:3])):
            raise ValueError(f"{source}: note {i} is {note!r}, expected [onset_s, offset_s, midi]")
    notes = validate_notes([list(n[:3]) for n in value], source)
    return notes[np.argsort(notes[:, 0], kind="stable")]


def _load_json_object(path: Path, dataset: str, layout: str) -> dict:
    if not path.is_file():
        raise PrepareError(f"{dataset}: annotation file {path} not found; expected the layout "
                           f"{layout}")
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PrepareError(f"{dataset}: {path}: line {err.lineno}: invalid JSON ({err.msg}); fix "
                           "or re-download the annotation file") from None
    if not isinstance(value, dict):
        raise PrepareError(f"{dataset}: {path}: expected a JSON object {{song: notes}}, got a "
                           f"{type(value).__name__}")
    return value


def _audio_files(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in AUDIO_SUFFIXES)


def _unique_song_names(paths, root: Path, stem) -> dict:
    """`{song_name: path}`: names are `stem(path)`; where several files share one, each gets its
    relative folder prefixed (`Martinetes1_01-...`) so every song keeps a distinct name."""
    by_stem: dict = {}
    for p in paths:
        by_stem.setdefault(stem(p), []).append(p)
    names = {}
    for name, group in by_stem.items():
        if len(group) == 1:
            names[name] = group[0]
            continue
        for p in group:
            prefix = "_".join(p.parent.relative_to(root).parts) or "root"
            names[f"{prefix}_{name}"] = p
    return names


def _mixture_in(folder: Path):
    found = sorted(p for p in folder.iterdir() if p.is_file()
                   and p.name.lower().startswith("mixture") and not p.name.startswith("."))
    return found[0] if found else None


_SEPARATION_HELP = (
    "vocals are required: preparation needs the singing voice alone. Either install demucs "
    "(`pip install demucs`) and pass --separate (separate=True) to extract the vocals from "
    "Mixture.*, or put the separated vocals at <song>/vocals.wav yourself (any sample rate and "
    "number of channels: it is converted to 16 kHz mono)")


def _demucs_available() -> bool:
    return importlib.util.find_spec("demucs") is not None


def _folder_sources(dataset, annotations, folders, ann_path, problems, layout, separate=False,
                    splits=None) -> list[SongSource]:
    """Match `{song: notes or error}` with `{song: song_folder}`; `vocals.wav` in each folder."""
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
                problems.add(song, f"missing {vocals}; the folder has the mixture {mixture.name}. "
                                   f"{_SEPARATION_HELP}")
                continue
            else:
                present = ", ".join(p.name for p in sorted(folder.iterdir())
                                    if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
                problems.add(song, f"missing {vocals}"
                                   + (f" (the folder holds {present})" if present else "")
                                   + "; put the song's vocals there under that name (any sample "
                                   "rate and channels; they are converted), or a Mixture.* file "
                                   "and pass --separate (needs demucs)")
                continue
        sources.append(source)
    return sources


def _annotation_entries(raw: dict, ann_path: Path) -> dict:
    """`{song: notes array or ValueError}` from a `{song: note_list}` object."""
    entries = {}
    for key, value in raw.items():
        try:
            entries[str(key)] = _note_array(value, f"{ann_path}: song {key!r}")
        except (ValueError, TypeError) as err:
            entries[str(key)] = ValueError(str(err))
    return entries


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
            message = _mismatch(src, frames / rate, src.audio)
            if message:
                problems.add(src.song, message)
                continue
        kept.append(src)
    return kept


def _mismatch(src: SongSource, duration: float, audio) -> str | None:
    last = float(src.notes[:, 1].max())
    if last > duration + END_TOLERANCE_S:
        return (f"annotation/audio mismatch: notes in {src.anno_file} end at {last:.2f} s but the "
                f"audio {audio} lasts only {duration:.2f} s; check that they belong to the same "
                "song (and the same cut)")
    return None


# ---------------------------------------------------------------------------- the core

def _is_fresh(outputs, inputs) -> bool:
    try:
        newest_input = max(Path(p).stat().st_mtime_ns for p in inputs)
        return all(Path(p).is_file() for p in outputs) and \
            min(Path(p).stat().st_mtime_ns for p in outputs) >= newest_input
    except OSError:
        return False


def _write_song_labels(out: dict, notes, num_frames: int, frame_rate: float, inputs,
                       relabel: bool, counts: dict, source: str) -> None:
    """Frame labels and the note JSON of one song (`song_outputs` paths), unless they are newer
    than `inputs` and of the right length; counts "prepared" or "up to date"."""
    if (not relabel and _is_fresh([out["labels"], out["notes"]], inputs)
            and _label_length(out["labels"]) == num_frames):
        counts["up to date"] += 1
        return
    save_labels(out["labels"], notes_to_frames(notes, num_frames, frame_rate, source=source))
    write_notes_json(out["notes"], notes)
    counts["prepared"] += 1


def _label_length(path) -> int | None:
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError):
        return None
    return shape[0] if len(shape) == 2 and shape[1] == 4 else None


def save_labels(path, labels) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, labels)


def _labels_outdated(settings_path: Path, settings: dict, dataset: str) -> bool:
    """True when existing labels were made with other settings (frame rate, ...): every song must
    then be relabelled. The stale settings file is removed first, so a crash before the end
    leaves no settings behind that would vouch for a half-relabelled folder."""
    if not settings_path.is_file():
        return False
    try:
        previous = json.loads(settings_path.read_text())
    except json.JSONDecodeError:
        previous = None
    if previous == settings:
        return False
    logger.info("%s: labels in %s were made with %s; relabelling all songs with %s",
                dataset, settings_path.parent, previous, settings)
    settings_path.unlink()
    return True


def prepare_songs(sources, save_folder, dataset: str, frame_rate: float = 49.8,
                  overwrite: bool = False, progress: bool = True) -> list[PreparedSong]:
    """Prepare songs of one dataset (audio, labels, notes under `save_folder`); resumable."""
    settings_path = Path(os.path.abspath(save_folder)) / "labels" / dataset / "_settings.json"
    settings = {"frame_rate": float(frame_rate), "sample_rate": SAMPLE_RATE}
    relabel = _labels_outdated(settings_path, settings, dataset) or overwrite

    prepared, counts = [], {"prepared": 0, "up to date": 0, "converted": 0, "separated": 0}
    for src in tqdm(sources, desc=f"preparing {dataset}", unit="song", disable=not progress):
        prepared.append(_prepare_song(src, save_folder, frame_rate, overwrite, relabel, counts))
    if not settings_path.is_file():  # new, or removed above as outdated
        write_json_atomic(settings_path, settings)
    logger.info("%s: %d songs (%s) in %s", dataset, len(prepared),
                ", ".join(f"{v} {k}" for k, v in counts.items() if v), save_folder)
    return prepared


def _prepare_song(src: SongSource, save_folder, frame_rate, overwrite, relabel, counts) \
        -> PreparedSong:
    out = song_outputs(save_folder, src.dataset, src.song)
    source_file = src.mixture if src.mixture is not None else src.audio
    if src.mixture is not None:
        wav = out["audio16k"]
        if overwrite or not _is_fresh([wav], [source_file]):
            separate_vocals(src.mixture, wav)
            counts["separated"] += 1
        message = _mismatch(src, audio_info(wav)[1] / SAMPLE_RATE, wav)
        if message:
            raise PrepareError(f"{src.dataset} song {src.song!r}: {message}")
    elif is_16k_mono(src.audio):
        wav = src.audio
    else:
        wav = out["audio16k"]
        if overwrite or not _is_fresh([wav], [source_file]):
            to_16k_mono(src.audio, wav)
            counts["converted"] += 1
    num_samples = audio_info(wav)[1]
    num_frames = num_label_frames(num_samples, SAMPLE_RATE, frame_rate)
    _write_song_labels(out, src.notes, num_frames, frame_rate, [source_file, src.anno_file, wav],
                       relabel, counts, source=f"{src.dataset} song {src.song!r} ({src.anno_file})")
    return PreparedSong(src.dataset, src.song, Path(os.path.abspath(wav)), num_samples,
                        out["labels"], out["notes"], src.split)


def _write_split_csv(path, songs, dur_threshold) -> Path:
    rows = [row for song in songs for row in utterance_rows(song, dur_threshold)]
    if not rows:
        logger.warning("%s: no songs, writing a CSV with only the header", path)
    write_csv(path, rows)
    logger.info("wrote %s (%d songs, %d utterances)", path, len(songs), len(rows))
    return Path(path)


def _finish_sources(sources, problems, strict, dataset, data_folder):
    sources = _check_sources(sources, problems)
    problems.resolve(strict)
    if not sources:
        raise PrepareError(f"{dataset}: no usable songs found in {data_folder}")
    return sources


def _check_separation(sources, dataset):
    needing = [s.song for s in sources if s.mixture is not None]
    if needing and not _demucs_available():
        raise PrepareError(f"{dataset}: {len(needing)} song(s) have only a mixture "
                           f"({', '.join(needing[:10])}{' ...' if len(needing) > 10 else ''}) and "
                           f"demucs is not installed. {_SEPARATION_HELP}")


# ---------------------------------------------------------------------------- separation

def separate_vocals(mixture_path, out_path, model: str = "htdemucs", device: str | None = None) \
        -> Path:
    """Extract the vocals of a mixture with demucs and write them as 16 kHz mono WAV to `out_path`.

    Raises PrepareError explaining the alternatives when demucs is not installed. The mixture must
    be readable by soundfile (WAV, FLAC, OGG, MP3); convert other formats (m4a) with ffmpeg first.
    """
    if not _demucs_available():
        raise PrepareError(f"{mixture_path}: cannot separate the vocals, demucs is not installed. "
                           f"{_SEPARATION_HELP}")
    import soundfile as sf
    import torch
    from demucs.apply import apply_model
    from demucs.pretrained import get_model

    try:
        mix, rate = sf.read(str(mixture_path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise PrepareError(f"{mixture_path}: cannot read the mixture ({err}); convert it to WAV "
                           "(`ffmpeg -i IN OUT.wav`)") from None
    separator = get_model(model)
    separator.eval()
    mix = mix.T  # (channels, n)
    if mix.shape[0] == 1:
        mix = np.repeat(mix, separator.audio_channels, axis=0)
    mix = mix[: separator.audio_channels]
    mix = resample(mix, rate, separator.samplerate)
    wav = torch.from_numpy(np.ascontiguousarray(mix))
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        stems = apply_model(separator, ((wav - mean) / std)[None], device=device, split=True,
                            overlap=0.25)[0]
    vocals = stems[separator.sources.index("vocals")] * std + mean
    vocals = resample(vocals.mean(0).cpu().numpy(), separator.samplerate, SAMPLE_RATE)
    write_audio(out_path, vocals, SAMPLE_RATE)
    logger.info("separated the vocals of %s with demucs %s: %s", mixture_path, model, out_path)
    return Path(out_path)


# ---------------------------------------------------------------------------- datasets

def _default_num_valid(num_train: int) -> int:
    return max(1, round(VALID_SHARE * num_train))


def holdout_split(songs, num_valid: int, seed: int) -> tuple[list, list]:
    """`(train, valid)`: `random.Random(seed).sample` of `num_valid` songs taken from the songs in
    natural order, so the hold-out depends only on the song names and the seed; both lists are in
    natural order."""
    ordered = sorted(songs, key=natural_key)
    valid = set(random.Random(seed).sample(ordered, num_valid))
    return [s for s in ordered if s not in valid], [s for s in ordered if s in valid]


MIR_ST500_LAYOUT = ("<data_folder>/Annotations.json + "
                    "<data_folder>/wav16kHz/{train,test}/<id>/vocals.wav")


def prepare_mir_st500(data_folder, save_folder, dur_threshold: float = 5, frame_rate: float = 49.8,
                      num_valid: int | None = None, valid_seed: int = 1986, separate: bool = False,
                      strict: bool = True, overwrite: bool = False, progress: bool = True) -> dict:
    """Prepare MIR-ST500 → `mir_st500_train.csv`, `mir_st500_valid.csv`, `mir_st500_test.csv`.

    Layout: `Annotations.json` (`{id: notes}`) and `wav16kHz/{train,test}/<id>/vocals.wav` (any rate
    or channels; non-16 kHz-mono vocals are converted). With `separate=True`, a song folder without
    vocals.wav but with a `Mixture.*` file gets its vocals extracted by demucs.

    Validation split (the original expected a `mir_st500_valid.csv` it never made): `num_valid`
    training songs (default 5 % of them, at least 1) chosen by `holdout_split(train_songs,
    num_valid, valid_seed)`; they leave the training CSV. Returns `{csv_name: path}`.
    """
    dataset = "mir_st500"
    data = _check_layout_paths(dataset, data_folder, save_folder)
    ann_path = data / "Annotations.json"
    raw = _load_json_object(ann_path, dataset, MIR_ST500_LAYOUT)
    audio_root = data / "wav16kHz"
    if not audio_root.is_dir():
        raise PrepareError(f"{dataset}: no folder {audio_root}; expected the layout "
                           f"{MIR_ST500_LAYOUT}")
    problems = Problems(dataset, data)
    folders, splits = {}, {}
    for split in ("train", "test"):
        split_dir = audio_root / split
        if not split_dir.is_dir():
            logger.warning("%s: no folder %s", dataset, split_dir)
            continue
        for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if folder.name in folders:
                problems.add(folder.name, f"in both {folders[folder.name]} and {folder}; keep "
                                          "only one")
                continue
            folders[folder.name], splits[folder.name] = folder, split
    sources = _folder_sources(dataset, _annotation_entries(raw, ann_path), folders, ann_path,
                              problems, "wav16kHz/{train,test}/<id>/vocals.wav", separate, splits)
    sources = [s for s in sources if s.song not in problems.songs]
    sources = _finish_sources(sources, problems, strict, dataset, data)
    _check_separation(sources, dataset)

    train_songs = [s.song for s in sources if s.split == "train"]
    if num_valid is None:
        num_valid = _default_num_valid(len(train_songs))
    num_valid = int(num_valid)
    if num_valid < 0 or (train_songs and num_valid >= len(train_songs)) or not train_songs:
        raise PrepareError(f"{dataset}: cannot hold out {num_valid} of {len(train_songs)} training "
                           "songs for validation; choose num_valid between 0 and "
                           f"{max(len(train_songs) - 1, 0)}")
    _, valid_songs = holdout_split(train_songs, num_valid, valid_seed)
    if num_valid == 0:
        logger.warning("%s: num_valid=0, mir_st500_valid.csv will be empty", dataset)
    valid_set = set(valid_songs)
    logger.info("%s: holding out %d training songs for validation (seed %d): %s", dataset,
                num_valid, valid_seed, ", ".join(valid_songs))

    prepared = prepare_songs(sources, save_folder, dataset, frame_rate, overwrite, progress)
    by_split = {"train": [], "valid": [], "test": []}
    for song in sorted(prepared, key=lambda s: natural_key(s.song)):
        split = "valid" if song.song in valid_set else song.split
        by_split[split].append(song)
    folder = csv_folder(save_folder, dur_threshold)
    return {f"{dataset}_{split}": _write_split_csv(folder / f"{dataset}_{split}.csv", songs,
                                                   dur_threshold)
            for split, songs in by_split.items()}


def _converted_layout_sources(dataset, data, problems):
    """The original's converted layout: `Annotations.json` + `wav16kHz/<song>/vocals.wav`."""
    ann_path = data / "Annotations.json"
    raw = _load_json_object(ann_path, dataset, "Annotations.json + wav16kHz/<song>/vocals.wav")
    audio_root = data / "wav16kHz"
    folders = {p.name: p for p in sorted(audio_root.iterdir()) if p.is_dir()} \
        if audio_root.is_dir() else {}
    return _folder_sources(dataset, _annotation_entries(raw, ann_path), folders, ann_path,
                           problems, "wav16kHz/<song>/vocals.wav")


def _prepare_evaluation_set(dataset, data, save_folder, sources, problems, dur_threshold,
                            frame_rate, strict, overwrite, progress) -> dict:
    sources = [s for s in sources if s.song not in problems.songs]
    sources = _finish_sources(sources, problems, strict, dataset, data)
    prepared = prepare_songs(sources, save_folder, dataset, frame_rate, overwrite, progress)
    prepared.sort(key=lambda s: natural_key(s.song))
    path = csv_folder(save_folder, dur_threshold) / f"{dataset}.csv"
    return {dataset: _write_split_csv(path, prepared, dur_threshold)}


def _read_song_notes(path, reader, song, problems):
    try:
        return reader(path)
    except (NoteFileError, ValueError) as err:
        problems.add(song, f"invalid notes: {err}")
        return None


def prepare_tonas(data_folder, save_folder, dur_threshold: float = 5, frame_rate: float = 49.8,
                  strict: bool = True, overwrite: bool = False, progress: bool = True) -> dict:
    """Prepare TONAS → `tonas.csv` (evaluation only).

    Native layout (the TONAS distribution): `<stem>.wav` (44.1 kHz, converted) beside
    `<stem>.notes.Corrected` (read with `read_tonas`), in `data_folder` or any subfolder (Deblas/,
    Martinetes1/, Martinetes2/). Songs are named by the stem. When `data_folder/Annotations.json`
    exists, the original's converted layout `wav16kHz/<song>/vocals.wav` is read instead.
    """
    dataset = "tonas"
    data = _check_layout_paths(dataset, data_folder, save_folder)
    problems = Problems(dataset, data)
    if (data / "Annotations.json").is_file():
        sources = _converted_layout_sources(dataset, data, problems)
    else:
        notes_files = sorted(p for p in data.rglob("*") if p.is_file()
                             and p.name.lower().endswith(".notes.corrected"))
        wavs = _audio_files(data)
        if not wavs and not notes_files:
            raise PrepareError(f"{dataset}: no audio or .notes.Corrected files in {data}; expected "
                               "TONAS as distributed (<stem>.wav beside <stem>.notes.Corrected) or "
                               "Annotations.json + wav16kHz/<song>/vocals.wav")
        beside = {(p.parent, song_id(p)): p for p in notes_files}
        matched = set()
        sources = []
        for song, wav in _unique_song_names(wavs, data, lambda p: p.stem).items():
            note_file = beside.get((wav.parent, wav.stem))
            if note_file is None:
                problems.add(song, f"audio {wav} has no {wav.stem}.notes.Corrected beside it; add "
                                   "the annotation or remove the file")
                continue
            matched.add(note_file)
            notes = _read_song_notes(note_file, read_tonas, song, problems)
            if notes is not None:
                sources.append(SongSource(dataset, song, notes, note_file, audio=wav))
        for note_file in notes_files:
            if note_file not in matched:
                problems.add(song_id(note_file), f"annotation {note_file} has no audio file "
                                                 f"{song_id(note_file)}.wav beside it; add the "
                                                 "audio or remove the annotation")
    return _prepare_evaluation_set(dataset, data, save_folder, sources, problems, dur_threshold,
                                   frame_rate, strict, overwrite, progress)


#: ISMIR2014 note-file names by preference; the first three are unambiguous ground-truth names,
#: plain `.txt`/`.lab` files count only when their name matches an audio file.
ISMIR2014_NOTE_SUFFIXES = (".groundtruth.txt", ".notes.txt", ".notes", ".txt", ".lab")
_ISMIR2014_EXPLICIT = ISMIR2014_NOTE_SUFFIXES[:3]


def _ismir_reader(path: Path):
    fmt = "ismir2014" if path.name.lower().endswith(_ISMIR2014_EXPLICIT) else None
    return read_notes(path, fmt)


def prepare_ismir2014(data_folder, save_folder, dur_threshold: float = 5,
                      frame_rate: float = 49.8, strict: bool = True, overwrite: bool = False,
                      progress: bool = True) -> dict:
    """Prepare ISMIR2014 → `ismir2014.csv` (evaluation only).

    Native layout: audio files and ground-truth note files (`onset duration midi` per row, e.g.
    `<song>.GroundTruth.txt`, `<song>.notes`, `<song>.txt`) matched by `song_id`: a note file in the
    audio file's folder is preferred, otherwise a unique one anywhere below `data_folder`. Plain
    `.txt`/`.lab` files are read with format detection (mir_eval Hz files are recognised). When
    `data_folder/Annotations.json` exists, the original's converted layout is read instead.
    """
    dataset = "ismir2014"
    data = _check_layout_paths(dataset, data_folder, save_folder)
    problems = Problems(dataset, data)
    if (data / "Annotations.json").is_file():
        sources = _converted_layout_sources(dataset, data, problems)
    else:
        wavs = _audio_files(data)
        note_files = [p for p in data.rglob("*") if p.is_file() and not p.name.startswith(".")
                      and p.name.lower().endswith(ISMIR2014_NOTE_SUFFIXES)]
        if not wavs:
            raise PrepareError(f"{dataset}: no audio files in {data}; expected wav files with "
                               "ground-truth note files (<song>.GroundTruth.txt, onset duration "
                               "midi per row) or Annotations.json + wav16kHz/<song>/vocals.wav")
        by_song: dict = {}
        for p in note_files:
            by_song.setdefault(song_id(p), []).append(p)

        def rank(p):
            return next(i for i, s in enumerate(ISMIR2014_NOTE_SUFFIXES)
                        if p.name.lower().endswith(s))

        matched, sources = set(), []
        for song, wav in _unique_song_names(wavs, data, lambda p: p.stem).items():
            candidates = by_song.get(wav.stem, [])
            near = [p for p in candidates if p.parent == wav.parent]
            pool = near or candidates
            folders = {p.parent for p in pool}
            if not pool:
                problems.add(song, f"audio {wav} has no ground-truth note file ({wav.stem}"
                                   ".GroundTruth.txt or similar) anywhere below the data folder; "
                                   "add it or remove the audio")
                continue
            if len(folders) > 1:
                problems.add(song, f"several note files for {wav} in different folders: "
                                   f"{', '.join(str(p) for p in pool)}; keep one or put it beside "
                                   "the audio")
                continue
            note_file = min(pool, key=rank)
            matched.update(candidates)
            notes = _read_song_notes(note_file, _ismir_reader, song, problems)
            if notes is not None:
                sources.append(SongSource(dataset, song, notes, note_file, audio=wav))
        for p in note_files:
            if p not in matched and p.name.lower().endswith(_ISMIR2014_EXPLICIT):
                problems.add(song_id(p), f"annotation {p} has no audio file {song_id(p)}.wav; "
                                         "add the audio or remove the annotation")
    return _prepare_evaluation_set(dataset, data, save_folder, sources, problems, dur_threshold,
                                   frame_rate, strict, overwrite, progress)


N20EMV2_SPLITS = ("train", "valid", "test")
N20EMV2_LAYOUT = "<data_folder>/annotations.json + <data_folder>/data/<entry>/vocals.wav"


def _n20emv2_entries(dataset, raw: dict, ann_path: Path, problems) -> tuple[dict, dict, dict]:
    """`(entries, splits, other)` of an N20EMv2 `annotations.json`: `{entry: notes array or
    ValueError}` and `{entry: split}` for the train/valid/test entries, `{entry: split}` of the
    others (logged as a warning and left out). Malformed entries go to `problems`."""
    entries, splits, other = {}, {}, {}
    for key, value in raw.items():
        key = str(key)
        if not isinstance(value, dict) or "midi" not in value:
            problems.add(key, f"entry in {ann_path} is not an object with a \"midi\" note list; "
                              "fix the entry")
            continue
        split = value.get("split")
        if split not in N20EMV2_SPLITS:
            other[key] = split
            continue
        splits[key] = split
        try:
            entries[key] = _note_array(value["midi"], f"{ann_path}: song {key!r}")
        except (ValueError, TypeError) as err:
            entries[key] = ValueError(str(err))
    if other:
        logger.warning("%s: %d entr%s of %s with a split other than %s left out: %s", dataset,
                       len(other), "y" if len(other) == 1 else "ies", ann_path,
                       "/".join(N20EMV2_SPLITS),
                       ", ".join(f"{k} (split={v!r})" for k, v in sorted(other.items())))
    return entries, splits, other


def _open_n20emv2(data_folder, save_folder, layout: str):
    """The parts of an N20EMv2 folder both preparations start from: `(data, ann_path, problems,
    entries, splits, other, folders)` with `folders` = the song folders under `data/` that have a
    usable annotation entry."""
    dataset = "n20emv2"
    data = _check_layout_paths(dataset, data_folder, save_folder)
    ann_path = data / "annotations.json"
    raw = _load_json_object(ann_path, dataset, layout)
    problems = Problems(dataset, data)
    entries, splits, other = _n20emv2_entries(dataset, raw, ann_path, problems)
    song_root = data / "data"
    if not song_root.is_dir():
        raise PrepareError(f"{dataset}: no folder {song_root}; expected the layout {layout}")
    folders = {p.name: p for p in sorted(song_root.iterdir())
               if p.is_dir() and p.name not in other and p.name not in problems.songs}
    return data, ann_path, problems, entries, splits, other, folders


def prepare_n20emv2_audio(data_folder, save_folder, dur_threshold: float = 5,
                          frame_rate: float = 49.8, mir_st500_train_csv=None, strict: bool = True,
                          overwrite: bool = False, progress: bool = True) -> dict:
    """Prepare N20EMv2 audio → `n20em_train.csv`, `n20em_valid.csv`, `n20em_test.csv`.

    Layout: `annotations.json` (`{entry: {"midi": notes, "split": "train"|"valid"|"test"}}`) and
    `data/<entry>/vocals.wav`. The split comes from the `split` field only; entries with another
    (or no) split value are listed in a warning and left out. With `mir_st500_train_csv` (a path
    or a list of paths), `mix_train.csv` = the rows of those CSVs followed by the N20EMv2 training
    rows. Returns `{csv_name: path}`.
    """
    dataset = "n20emv2"
    data, ann_path, problems, entries, splits, other, folders = _open_n20emv2(
        data_folder, save_folder, N20EMV2_LAYOUT)
    sources = _folder_sources(dataset, entries, folders, ann_path, problems,
                              "data/<entry>/vocals.wav", splits=splits)
    sources = [s for s in sources if s.song not in problems.songs]
    sources = _finish_sources(sources, problems, strict, dataset, data)
    prepared = prepare_songs(sources, save_folder, dataset, frame_rate, overwrite, progress)
    prepared.sort(key=lambda s: natural_key(s.song))
    folder = csv_folder(save_folder, dur_threshold)
    result = {f"n20em_{split}": _write_split_csv(folder / f"n20em_{split}.csv",
                                                 [s for s in prepared if s.split == split],
                                                 dur_threshold)
              for split in N20EMV2_SPLITS}
    if mir_st500_train_csv is not None:
        mir = [mir_st500_train_csv] if isinstance(mir_st500_train_csv, (str, os.PathLike)) \
            else list(mir_st500_train_csv)
        result["mix_train"] = merge_csvs(folder / "mix_train.csv", mir + [result["n20em_train"]])
        logger.info("wrote %s (%s + n20em_train)", result["mix_train"],
                    " + ".join(Path(p).stem for p in mir))
    return result


#: Columns of the N20EMv2 video CSVs: `video` is the lip video, `wav` the song's vocals (16 kHz
#: mono when available, for audio-visual use; empty when the song has no vocals.wav).
VIDEO_CSV_COLUMNS = ["ID", "song", "dataset", "duration", "video", "wav", "utter_id", "utter_num",
                     "frame_anno", "song_anno"]
#: Name of a song's lip video in an N20EMv2 entry folder.
N20EMV2_VIDEO_FILE = "video_50fps.npy"
N20EMV2_VIDEO_LAYOUT = ("<data_folder>/annotations.json + <data_folder>/data/<entry>/"
                        f"{N20EMV2_VIDEO_FILE} (+ vocals.wav)")
#: Label/notes folder name of the video preparation (its labels have one frame per video frame).
N20EMV2_VIDEO_LABELS = "n20emv2_video"


@dataclass
class PreparedVideo:
    song: str
    split: str
    video: Path
    num_frames: int
    wav: str  # "" without vocals
    frame_anno: Path
    song_anno: Path


def _video_song_wav(save_folder, song: str, vocals: Path) -> Path:
    """The vocals for the `wav` column: the file itself when it is 16 kHz mono, else the audio
    preparation's converted copy when it exists, else the original file."""
    if is_16k_mono(vocals):
        return Path(os.path.abspath(vocals))
    converted = song_outputs(save_folder, "n20emv2", song)["audio16k"]
    if converted.is_file():
        return converted
    logger.info("n20emv2 song %r: %s is not 16 kHz mono; the video CSV points to it as it is "
                "(prepare_n20emv2_audio converts it)", song, vocals)
    return Path(os.path.abspath(vocals))


def prepare_n20emv2_video(data_folder, save_folder, dur_threshold: float = 5,
                          frame_rate: float = 50, strict: bool = True, overwrite: bool = False,
                          progress: bool = True, tolerance_s: float = 0.1) -> dict:
    """Prepare N20EMv2 lip videos → `n20em_video_train.csv`, `n20em_video_valid.csv`,
    `n20em_video_test.csv` in `<save_folder>/dur_<D>s/` (columns VIDEO_CSV_COLUMNS).

    Layout: `annotations.json` (splits as in `prepare_n20emv2_audio`) and
    `data/<entry>/video_50fps.npy` (uint8 `(T, H, W)`, H, W >= 88, `frame_rate` frames per
    second); `data/<entry>/vocals.wav` is optional. Each video is checked with
    `svt.video.validate_video`; when the song has vocals, the video must last as long as them
    within `tolerance_s` (default 0.1 s = 5 frames at 50 fps).

    Writes, per song, `<save_folder>/labels/n20emv2_video/<song>.npy` (labels `(T, 4)` at
    `frame_rate`, one per video frame: `L = T` as in the original) and
    `<save_folder>/notes/n20emv2_video/<song>.json` (kept apart from the audio preparation's
    files so the two can run independently). Resumable like the audio preparation: a song whose
    outputs are newer than its video and `annotations.json` and have T label frames is skipped;
    `overwrite=True` or a new frame rate redoes every song. Problems (missing or invalid videos,
    unreadable vocals, length mismatches, invalid notes) are reported together with the song and
    file (`strict=True`) or skipped with a warning (`strict=False`).

    Utterances use the audio's count-based rule (`split_utterances` of `T / frame_rate` seconds,
    sliced with `utterance_slice`: 250 frames per 5-s utterance at 50 fps), so the audio and video
    utterances of a song match. The original video preparer used a loop-based rule instead
    (D-second utterances while more than 1.5 D remains, then the rest), which differs at exact
    boundaries by one utterance (spec 2.8). Returns `{csv_name: path}`.
    """
    from svt.video import VideoError, validate_video

    dataset = "n20emv2"
    data, ann_path, problems, entries, splits, other, folders = _open_n20emv2(
        data_folder, save_folder, N20EMV2_VIDEO_LAYOUT)
    expected_layout = f"data/<entry>/{N20EMV2_VIDEO_FILE}"
    for song in sorted(set(entries) - set(folders), key=natural_key):
        problems.add(song, f"annotated in {ann_path} but has no folder {data / 'data' / song} "
                           f"(expected {expected_layout}); add the video or remove the entry")
    for song in sorted(set(folders) - set(entries), key=natural_key):
        problems.add(song, f"folder {folders[song]} has no entry in {ann_path}; add its notes or "
                           "remove the folder")
    tolerance_frames = int(round(tolerance_s * frame_rate))
    found = []
    for song in sorted(set(entries) & set(folders), key=natural_key):
        notes = entries[song]
        if isinstance(notes, Exception):
            problems.add(song, f"invalid notes: {notes}")
            continue
        src = SongSource(dataset, song, notes, ann_path, split=splits[song])
        if len(notes) == 0:
            problems.add(song, f"the note list in {ann_path} is empty; annotate the song or "
                               "remove it")
            continue
        video = folders[song] / N20EMV2_VIDEO_FILE
        vocals = folders[song] / "vocals.wav"
        expected, wav = None, ""
        if vocals.is_file():
            try:
                rate, samples, _ = audio_info(vocals)
                wav = str(_video_song_wav(save_folder, song, vocals))
            except AudioError as err:
                problems.add(song, str(err))
                continue
            expected = int(round(samples / rate * frame_rate))
        try:
            num_frames = validate_video(video, expected, tolerance_frames)[0]
        except VideoError as err:
            problems.add(song, str(err))
            continue
        message = _mismatch(src, num_frames / frame_rate, video)
        if message:
            problems.add(song, message)
            continue
        found.append((src, Path(os.path.abspath(video)), num_frames, wav))
    problems.resolve(strict)
    if not found:
        raise PrepareError(f"{dataset}: no usable songs with videos found in {data}")

    root = Path(os.path.abspath(save_folder))
    settings_path = root / "labels" / N20EMV2_VIDEO_LABELS / "_settings.json"
    settings = {"frame_rate": float(frame_rate), "source": "video"}
    relabel = _labels_outdated(settings_path, settings, dataset) or overwrite

    prepared, counts = [], {"prepared": 0, "up to date": 0}
    for src, video, num_frames, wav in tqdm(found, desc=f"preparing {dataset} videos",
                                            unit="song", disable=not progress):
        out = song_outputs(save_folder, N20EMV2_VIDEO_LABELS, src.song)
        _write_song_labels(out, src.notes, num_frames, frame_rate, [video, ann_path], relabel,
                           counts, source=f"{dataset} song {src.song!r} ({ann_path})")
        prepared.append(PreparedVideo(src.song, src.split, video, num_frames, wav,
                                      out["labels"], out["notes"]))
    if not settings_path.is_file():  # new, or removed above as outdated
        write_json_atomic(settings_path, settings)
    logger.info("%s: %d videos (%s) in %s", dataset, len(prepared),
                ", ".join(f"{v} {k}" for k, v in counts.items() if v), save_folder)

    folder = csv_folder(save_folder, dur_threshold)
    result = {}
    for split in N20EMV2_SPLITS:
        rows = []
        for song in (s for s in prepared if s.split == split):
            for k, n, _, _ in split_utterances(song.num_frames / frame_rate, dur_threshold):
                start, stop = utterance_slice(k, n, frame_rate, dur_threshold, song.num_frames)
                rows.append({"ID": f"{dataset}_{song.song}_{k}", "song": song.song,
                             "dataset": dataset, "duration": repr((stop - start) / frame_rate),
                             "video": str(song.video), "wav": song.wav, "utter_id": k,
                             "utter_num": n, "frame_anno": str(song.frame_anno),
                             "song_anno": str(song.song_anno)})
        path = folder / f"n20em_video_{split}.csv"
        if not rows:
            logger.warning("%s: no songs, writing a CSV with only the header", path)
        result[f"n20em_video_{split}"] = write_csv(path, rows, VIDEO_CSV_COLUMNS)
        logger.info("wrote %s (%d utterances)", path, len(rows))
    return result


# ---------------------------------------------------------------------------- command lines

def cli_parser(description: str, frame_rate: float = 49.8,
               frame_rate_help: str = "label frames per second (default 49.8, wav2vec2's rate)") \
        -> argparse.ArgumentParser:
    """Arguments shared by the recipes' prepare.py scripts (`frame_rate`: the default of
    --frame_rate)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_folder", required=True, help="dataset root folder")
    parser.add_argument("--save_folder", default="data",
                        help="where labels, notes, converted audio and CSVs go (default: data)")
    parser.add_argument("--dur_threshold", type=float, default=5,
                        help="utterance length in seconds (default 5)")
    parser.add_argument("--frame_rate", type=float, default=frame_rate, help=frame_rate_help)
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every song instead of skipping up-to-date ones")
    parser.add_argument("--skip_invalid", action="store_true",
                        help="skip songs with missing/unmatched audio or invalid notes (warning) "
                             "instead of stopping with an error")
    return parser


def add_test_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tonas", default=None, help="TONAS folder (optional extra test set)")
    parser.add_argument("--ismir2014", default=None,
                        help="ISMIR2014 folder (optional extra test set)")


def add_mir_st500_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num_valid", type=int, default=None,
                        help="MIR-ST500 training songs held out for validation (default: 5%%, "
                             "at least 1)")
    parser.add_argument("--valid_seed", type=int, default=1986, help="seed of that hold-out")
    parser.add_argument("--separate", action="store_true",
                        help="extract vocals from Mixture.* with demucs where vocals.wav is "
                             "missing")


def common_kwargs(args) -> dict:
    return dict(save_folder=args.save_folder, dur_threshold=args.dur_threshold,
                frame_rate=args.frame_rate, strict=not args.skip_invalid,
                overwrite=args.overwrite)


def prepare_test_sets(args, **kwargs) -> dict:
    """TONAS / ISMIR2014 CSVs for the folders given on the command line."""
    csvs = {}
    if getattr(args, "tonas", None):
        csvs.update(prepare_tonas(args.tonas, **kwargs))
    if getattr(args, "ismir2014", None):
        csvs.update(prepare_ismir2014(args.ismir2014, **kwargs))
    return csvs


def run_cli(run) -> int:
    """Run `run() -> {csv_name: path}` with INFO logging; print the CSVs, or the error (exit 1)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        csvs = run()
    except (PrepareError, AudioError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name, path in csvs.items():
        print(f"{name}: {path}")
    return 0


__all__ = [
    "CSV_COLUMNS", "PrepareError", "PreparedSong", "SongSource", "VIDEO_CSV_COLUMNS",
    "csv_folder", "holdout_split", "merge_csvs", "prepare_ismir2014", "prepare_mir_st500",
    "prepare_n20emv2_audio", "prepare_n20emv2_video", "prepare_songs", "prepare_tonas", "read_csv",
    "separate_vocals", "song_outputs", "split_utterances", "utterance_rows", "utterance_slice",
    "write_csv",
]
