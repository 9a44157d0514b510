"""Preparing the songs a dataset module found: 16 kHz mono audio, frame labels, note files and the
utterance CSVs, resumable.

`prepare_songs` takes the `svt.datasets.layout.SongSource`s of one dataset and writes, under the
preparation folder (`prepare_folder`; nothing is ever written into a dataset folder)::

    <prepare_folder>/labels/<dataset>/<song>.npy      frame labels (L, 4) int64, L =
                                                      round(seconds * label_frame_rate)
    <prepare_folder>/labels/<dataset>/_settings.json  the label frame rate the labels were made at
    <prepare_folder>/notes/<dataset>/<song>.json      the song's notes [[onset, offset, midi], ...]
    <prepare_folder>/audio16k/<dataset>/<song>.wav    16 kHz mono copy, only for songs whose vocals
                                                      are not 16 kHz mono (or were separated)

(`song_outputs` names these paths) and returns one `PreparedSong` per song; `write_utterance_csv`
then writes `<prepare_folder>/dur_<D>s/<name>.csv` with one row per utterance of `dur_threshold`
seconds (`utterance_rows`, columns `svt.data.utterances.CSV_COLUMNS`). `prepare_evaluation_set`
does all of it for a dataset with a single CSV `<dataset>.csv` (TONAS, ISMIR2014, SSVD).

Writes are atomic and preparation resumes: a song whose outputs exist, are newer than its inputs
(audio and annotation file) and have the right label length is skipped; `overwrite=True` redoes
everything, and so does a changed label frame rate (`labels_outdated`).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from svt.audio import SAMPLE_RATE, audio_info, is_16k_mono, to_16k_mono
from svt.data.utterances import (
    PrepareError,
    csv_folder,
    split_utterances,
    utterance_slice,
    write_csv,
)
from svt.datasets.layout import (
    SongSource,
    annotation_mismatch,
    keep_usable_songs,
    natural_key,
)
from svt.datasets.separation import separate_vocals
from svt.fileio import atomic_path, unsafe_name_reason, write_json_atomic
from svt.notes.formats import write_notes_json
from svt.notes.labels import notes_to_frames, num_label_frames

logger = logging.getLogger(__name__)


@dataclass
class PreparedSong:
    """One song after `prepare_songs`: its 16 kHz mono audio and its label and note files."""

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


def song_outputs(prepare_folder, dataset: str, song: str) -> dict:
    """Where a song's prepared files go: `labels`, `notes` and (when converted) `audio16k`."""
    reason = unsafe_name_reason(song)
    if reason:
        raise PrepareError(f"{dataset}: song id {song!r} {reason}; it would name files outside "
                           f"{prepare_folder}")
    root = Path(os.path.abspath(prepare_folder))
    return {
        "labels": root / "labels" / dataset / f"{song}.npy",
        "notes": root / "notes" / dataset / f"{song}.json",
        "audio16k": root / "audio16k" / dataset / f"{song}.wav",
    }


# ---------------------------------------------------------------------------- labels and notes

def _is_fresh(outputs, inputs) -> bool:
    try:
        newest_input = max(Path(p).stat().st_mtime_ns for p in inputs)
        return all(Path(p).is_file() for p in outputs) and \
            min(Path(p).stat().st_mtime_ns for p in outputs) >= newest_input
    except OSError:
        return False


def _label_length(path) -> int | None:
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (OSError, ValueError):
        return None
    return shape[0] if len(shape) == 2 and shape[1] == 4 else None


def save_labels(path, labels) -> None:
    """Write a label array as `.npy`, atomically (a crash never leaves half a file)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, labels)


def write_song_labels(out: dict, notes, num_frames: int, label_frame_rate: float, inputs,
                      relabel: bool, counts: dict, source: str) -> None:
    """The frame labels (`num_frames` at `label_frame_rate`, `notes_to_frames`) and the note JSON
    of one song, at its `song_outputs` paths `out`, unless they are newer than every file in
    `inputs` and of the right length (and `relabel` is false); adds 1 to `counts["prepared"]` or
    `counts["up to date"]`. `source` names the song in the errors of invalid notes."""
    if (not relabel and _is_fresh([out["labels"], out["notes"]], inputs)
            and _label_length(out["labels"]) == num_frames):
        counts["up to date"] += 1
        return
    save_labels(out["labels"], notes_to_frames(notes, num_frames, label_frame_rate, source=source))
    write_notes_json(out["notes"], notes)
    counts["prepared"] += 1


def labels_outdated(settings_path: Path, settings: dict, dataset: str) -> bool:
    """True when existing labels were made with other settings (frame rate, ...): every song must
    then be relabelled. The stale settings file is removed first, so a crash before the end
    leaves no settings behind that would vouch for a half-relabelled folder; the caller writes
    `settings` there once every song is done."""
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


# ---------------------------------------------------------------------------- songs

def prepare_songs(sources, prepare_folder, dataset: str, label_frame_rate: float = 49.8,
                  overwrite: bool = False, progress: bool = True) -> list[PreparedSong]:
    """Prepare songs of one dataset (audio, labels, notes under `prepare_folder`); resumable."""
    settings_path = Path(os.path.abspath(prepare_folder)) / "labels" / dataset / "_settings.json"
    # The on-disk key stays "frame_rate", so folders prepared before keep being recognised.
    settings = {"frame_rate": float(label_frame_rate), "sample_rate": SAMPLE_RATE}
    relabel = labels_outdated(settings_path, settings, dataset) or overwrite

    prepared, counts = [], {"prepared": 0, "up to date": 0, "converted": 0, "separated": 0}
    for src in tqdm(sources, desc=f"preparing {dataset}", unit="song", disable=not progress):
        prepared.append(_prepare_song(src, prepare_folder, label_frame_rate, overwrite, relabel,
                                      counts))
    if not settings_path.is_file():  # new, or removed above as outdated
        write_json_atomic(settings_path, settings)
    logger.info("%s: %d songs (%s) in %s", dataset, len(prepared),
                ", ".join(f"{v} {k}" for k, v in counts.items() if v), prepare_folder)
    return prepared


def _prepare_song(src: SongSource, prepare_folder, label_frame_rate, overwrite, relabel, counts) \
        -> PreparedSong:
    out = song_outputs(prepare_folder, src.dataset, src.song)
    source_file = src.mixture if src.mixture is not None else src.audio
    if src.mixture is not None:
        wav = out["audio16k"]
        if overwrite or not _is_fresh([wav], [source_file]):
            separate_vocals(src.mixture, wav)
            counts["separated"] += 1
        message = annotation_mismatch(src, audio_info(wav)[1] / SAMPLE_RATE, wav)
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
    num_frames = num_label_frames(num_samples, SAMPLE_RATE, label_frame_rate)
    write_song_labels(out, src.notes, num_frames, label_frame_rate,
                      [source_file, src.anno_file, wav], relabel, counts,
                      source=f"{src.dataset} song {src.song!r} ({src.anno_file})")
    return PreparedSong(src.dataset, src.song, Path(os.path.abspath(wav)), num_samples,
                        out["labels"], out["notes"], src.split)


# ---------------------------------------------------------------------------- CSVs

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


def write_utterance_csv(path, songs, dur_threshold) -> Path:
    """The utterance CSV of `songs` (`PreparedSong`s, in the order given) at `path`: the
    `utterance_rows` of each, written atomically; a header-only CSV (with a warning) when there
    are no songs. Returns the path."""
    rows = [row for song in songs for row in utterance_rows(song, dur_threshold)]
    if not rows:
        logger.warning("%s: no songs, writing a CSV with only the header", path)
    write_csv(path, rows)
    logger.info("wrote %s (%d songs, %d utterances)", path, len(songs), len(rows))
    return Path(path)


def prepare_evaluation_set(dataset, data, prepare_folder, sources, problems, dur_threshold,
                           label_frame_rate, strict, overwrite, progress) -> dict:
    """The end of every single-CSV preparation (TONAS, ISMIR2014, SSVD): leaves out the songs with
    problems, checks the rest (`keep_usable_songs`, raising or warning as `strict` says),
    prepares them (`prepare_songs`) and writes `<prepare_folder>/dur_<D>s/<dataset>.csv`, songs
    in natural order. Returns `{dataset: csv_path}`."""
    sources = [s for s in sources if s.song not in problems.songs]
    sources = keep_usable_songs(sources, problems, strict, dataset, data)
    prepared = prepare_songs(sources, prepare_folder, dataset, label_frame_rate, overwrite,
                             progress)
    prepared.sort(key=lambda s: natural_key(s.song))
    path = csv_folder(prepare_folder, dur_threshold) / f"{dataset}.csv"
    return {dataset: write_utterance_csv(path, prepared, dur_threshold)}
