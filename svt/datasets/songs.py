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

Writes are atomic and preparation resumes: a song whose outputs exist and were made from the same
inputs is skipped; `overwrite=True` redoes everything, and so does a changed label frame rate
(`labels_outdated`). "The same inputs" is decided from content, never from modification times
(a `tar`, `cp -p` or `rsync -t` copy gives a changed annotation file an older time than the
labels made from the old one): each song's `<prepare_folder>/labels/<dataset>/<song>.inputs.json`
(`SongRecord`) holds a digest of what its labels were made from (the song's notes, a SHA-256 of
its audio file, the label frame rate and frame count) and of what its converted audio was made
from. A file's SHA-256 is computed again only when its size or modification time differ from the
recorded ones (so an unchanged dataset is not read twice). Songs prepared before these records
existed are prepared again once.

Song ids become file names; one too long for the file system (more than MAX_NAME_BYTES bytes of
UTF-8) is shortened with a hash (`file_stem`) while the CSVs keep the full id.
"""
from __future__ import annotations

import hashlib
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


#: The longest file-name stem (UTF-8 bytes) a song id is used as unchanged: file systems allow
#: 255 bytes per name, and the atomic writes add a `.` prefix and a `.<random>.tmp` suffix.
MAX_NAME_BYTES = 200


def file_stem(name: str) -> str:
    """The file-name stem of a song id (or song key): the id itself when it fits MAX_NAME_BYTES,
    else its first characters, `~` and 16 hex digits of its SHA-256 (distinct ids keep distinct
    names; the CSVs and predictions keep the full id)."""
    name = str(name)
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    head = encoded[:MAX_NAME_BYTES - 17].decode("utf-8", "ignore")  # whole characters only
    return f"{head}~{digest}"


def song_outputs(prepare_folder, dataset: str, song: str) -> dict:
    """Where a song's prepared files go: `labels`, `notes`, (when converted) `audio16k`, and the
    `record` of the inputs they were made from (`SongRecord`)."""
    reason = unsafe_name_reason(song)
    if reason:
        raise PrepareError(f"{dataset}: song id {song!r} {reason}; it would name files outside "
                           f"{prepare_folder}")
    root = Path(os.path.abspath(prepare_folder))
    stem = file_stem(song)
    return {
        "labels": root / "labels" / dataset / f"{stem}.npy",
        "notes": root / "notes" / dataset / f"{stem}.json",
        "audio16k": root / "audio16k" / dataset / f"{stem}.wav",
        "record": root / "labels" / dataset / f"{stem}.inputs.json",
    }


# ---------------------------------------------------------------------------- freshness

#: Version of the `.inputs.json` records: a record of another version counts as absent.
RECORD_VERSION = 1


def digest(*parts) -> str:
    """SHA-256 (hex) of JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def notes_digest(notes) -> str:
    """SHA-256 of a note array's values (the annotation entry a song's labels are made from)."""
    array = np.ascontiguousarray(np.asarray(notes, dtype=np.float64))
    return hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()


class SongRecord:
    """What a song's outputs were made from, kept in its `.inputs.json` beside the labels:
    `{"version", "outputs": {output: input digest}, "files": {path: [size, mtime_ns, sha256]}}`.
    `files` caches the content hashes of the input files, so that a file whose size and time are
    unchanged is not read again; any change of either (older or newer) rehashes it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            data = {}
        self.outputs = dict(data.get("outputs") or {})
        self.cached = dict(data.get("files") or {})
        self.files: dict = {}

    def file_hash(self, path) -> str:
        """SHA-256 of the file's content (from the record when its size and time match)."""
        path = Path(path)
        real = os.path.realpath(path)
        stat = path.stat()
        cached = self.cached.get(real)
        if isinstance(cached, list) and len(cached) == 3 and cached[:2] == [stat.st_size,
                                                                            stat.st_mtime_ns]:
            sha = cached[2]
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            sha = h.hexdigest()
        self.files[real] = [stat.st_size, stat.st_mtime_ns, sha]
        return sha

    def fresh(self, output: str, paths, made_from: str) -> bool:
        """`output` (a key of `outputs`) was made from `made_from` and its files `paths` exist."""
        return self.outputs.get(output) == made_from and all(Path(p).is_file() for p in paths)

    def made(self, output: str, made_from: str) -> None:
        self.outputs[output] = made_from

    def forget(self) -> None:
        """Remove the record before an output is rewritten: a crash half-way then leaves no
        record vouching for a half-updated song."""
        if self.path.exists():
            self.path.unlink()

    def save(self) -> None:
        write_json_atomic(self.path, {"version": RECORD_VERSION, "outputs": self.outputs,
                                      "files": self.files})


# ---------------------------------------------------------------------------- labels and notes


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
                      relabel: bool, counts: dict, source: str, record: SongRecord | None = None) \
        -> None:
    """The frame labels (`num_frames` at `label_frame_rate`, `notes_to_frames`) and the note JSON
    of one song, at its `song_outputs` paths `out`, unless the song's record says they were made
    from the same notes, the same content of the files in `inputs` (the audio or video) and the
    same frame rate and count (and `relabel` is false); adds 1 to `counts["prepared"]` or
    `counts["up to date"]`. `source` names the song in the errors of invalid notes. `record`:
    the song's `SongRecord` when the caller records more outputs in it (saved by the caller),
    else it is read and saved here."""
    own = record is None
    if own:
        record = SongRecord(out["record"])
    made_from = digest("labels", notes_digest(notes), [record.file_hash(p) for p in inputs],
                       float(label_frame_rate), int(num_frames))
    if (not relabel and record.fresh("labels", [out["labels"], out["notes"]], made_from)
            and _label_length(out["labels"]) == num_frames):
        counts["up to date"] += 1
    else:
        record.forget()
        save_labels(out["labels"], notes_to_frames(notes, num_frames, label_frame_rate,
                                                   source=source))
        write_notes_json(out["notes"], notes)
        record.made("labels", made_from)
        counts["prepared"] += 1
    if own:
        record.save()


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
    record = SongRecord(out["record"])
    source_file = src.mixture if src.mixture is not None else src.audio
    source_hash = record.file_hash(source_file)
    if src.mixture is not None:
        wav = out["audio16k"]
        made_from = digest("separated", source_hash, SAMPLE_RATE)
        if overwrite or not record.fresh("audio16k", [wav], made_from):
            record.forget()
            separate_vocals(src.mixture, wav)
            record.made("audio16k", made_from)
            counts["separated"] += 1
        message = annotation_mismatch(src, audio_info(wav)[1] / SAMPLE_RATE, wav)
        if message:
            raise PrepareError(f"{src.dataset} song {src.song!r}: {message}")
    elif is_16k_mono(src.audio):
        wav = src.audio
    else:
        wav = out["audio16k"]
        made_from = digest("converted", source_hash, SAMPLE_RATE)
        if overwrite or not record.fresh("audio16k", [wav], made_from):
            record.forget()
            to_16k_mono(src.audio, wav)
            record.made("audio16k", made_from)
            counts["converted"] += 1
    num_samples = audio_info(wav)[1]
    num_frames = num_label_frames(num_samples, SAMPLE_RATE, label_frame_rate)
    write_song_labels(out, src.notes, num_frames, label_frame_rate, [source_file], relabel,
                      counts, source=f"{src.dataset} song {src.song!r} ({src.anno_file})",
                      record=record)
    record.save()
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
