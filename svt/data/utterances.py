"""Data pipelines from prepared CSVs, and the stitching of utterance predictions into songs.

Training runs on utterances of `dur_threshold` seconds (docs/original-recipes.md §2.8); evaluation decodes whole songs.
Unlike the original, which loaded the whole wav / label file for every utterance and sliced it,
each utterance reads only its own samples (soundfile partial reads) and label frames (memory-mapped
`.npy`), so an epoch reads every file once instead of once per utterance.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch

from svt.audio import (
    SAMPLE_RATE,
    audio_info,
    read_audio,
)
from svt.errors import SvtUserError
from svt.fileio import write_text_atomic

CSV_COLUMNS = ["ID", "song", "dataset", "duration", "wav", "utter_id", "utter_num", "frame_anno",
               "song_anno"]


class PrepareError(SvtUserError, ValueError):
    """Input data that cannot be prepared; the message names the dataset, song and file."""


#: The highest label frame rate (frames per second) accepted: FCPE's 100 fps is the highest any
#: encoder produces; 1e6 would write gigabytes of labels before anything fails.
MAX_FRAME_RATE = 1000.0
#: The longest utterance (seconds) accepted.
MAX_DUR_THRESHOLD = 3600.0


def check_preparation_settings(dur_threshold, label_frame_rate) -> None:
    """The utterance length and label frame rate of a preparation make sense (PrepareError
    naming the option otherwise): 0 < label_frame_rate <= MAX_FRAME_RATE, 0 < dur_threshold <=
    MAX_DUR_THRESHOLD, and an utterance holds at least one label frame. Zero, negative, NaN or
    infinite values gave empty labels, tracebacks or gigabytes of files."""
    for name, value, high in (("label_frame_rate", label_frame_rate, MAX_FRAME_RATE),
                              ("dur_threshold", dur_threshold, MAX_DUR_THRESHOLD)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not 0 < value <= high:  # NaN fails every comparison
            unit = "label frames per second" if name == "label_frame_rate" else "seconds"
            raise PrepareError(f"--{name}: {value!r} is out of range; it must be a number of {unit}"
                               f" in (0, {high:g}]")
    if dur_threshold * label_frame_rate < 1:
        raise PrepareError(f"--dur_threshold {dur_threshold:g} at --label_frame_rate "
                           f"{label_frame_rate:g} gives utterances of less than one label frame; "
                           "make them longer")


def require_songs(csv_path) -> None:
    """A prepared split CSV has rows (PrepareError otherwise, naming the split and the CSVs
    beside it that do): an empty split failed with an IndexError deep in SpeechBrain."""
    path = Path(csv_path)
    if not path.is_file():
        return  # reported by the reader, with its own message
    with open(path, newline="") as f:
        rows = sum(1 for _ in csv.reader(f)) - 1
    if rows > 0:
        return
    split = path.stem.rsplit("_", 1)[-1] if path.stem.rsplit("_", 1)[-1] in (
        "train", "valid", "test") else path.stem
    found = []
    for other in sorted(path.parent.glob("*.csv")):
        with open(other, newline="") as f:
            count = sum(1 for _ in csv.reader(f)) - 1
        if count > 0:
            found.append(f"{other.stem} ({count} utterances)")
    raise PrepareError(f"no {split} songs in {path}; splits found: "
                       f"{', '.join(found) if found else 'none'}. Check the dataset layout (and "
                       "the warnings of the preparation, which name the songs left out)")


# ------------------------------------------------------------------------ utterances and CSVs

def split_utterances(duration_s: float, dur_threshold: float) \
        -> list[tuple[int, int, float, float]]:
    """Utterances of a song: `[(utter_id, utter_num, start_s, utter_duration_s), ...]`.

    The original count-based rule (docs/original-recipes.md §2.8): `utter_num = round(duration / D)` with Python's
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
    `total` (docs/original-recipes.md §2.8; with D = 5: 80000 samples, 249 frames at 49.8 fps, 250 at 50 fps). This is
    the one definition shared by preparation and the training/evaluation pipelines.
    """
    utter_id, utter_num = int(utter_id), int(utter_num)
    if not 1 <= utter_id <= utter_num:
        raise ValueError(f"utter_id must be in 1..utter_num={utter_num}, got {utter_id}")
    start = round((utter_id - 1) * rate * dur_threshold)
    stop = int(total) if utter_id == utter_num else round(utter_id * rate * dur_threshold)
    return int(start), int(stop)


def csv_folder(prepare_folder, dur_threshold) -> Path:
    """`<prepare_folder>/dur_<D>s` (D written with `%g`: 5 -> `dur_5s`, 2.5 -> `dur_2.5s`)."""
    return Path(os.path.abspath(prepare_folder)) / f"dur_{dur_threshold:g}s"


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



def load_prepared_csv(csv_path) -> dict:
    """`{ID: row}` of a prepared CSV, as SpeechBrain's `load_data_csv` gives it (the `duration`
    column as a float) but with every value kept as written: SpeechBrain substitutes `$name` in
    every value (and fails with "requires replacements" on a `$` in a song id or a folder name,
    e.g. `data$v2/MIR`) and strips leading spaces; a prepared CSV holds paths and ids, never
    variables. PrepareError naming the file for a CSV without an ID column or with an ID twice."""
    data = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "ID" not in reader.fieldnames:
            raise PrepareError(f"{csv_path}: no ID column; prepare the data again")
        for line, row in enumerate(reader, start=2):
            item_id = row.pop("ID")
            if item_id in data:
                raise PrepareError(f"{csv_path}: line {line}: the ID {item_id!r} appears twice; "
                                   "prepare the data again")
            if "duration" in row:
                try:
                    row["duration"] = float(row["duration"])
                except (TypeError, ValueError):
                    raise PrepareError(f"{csv_path}: line {line}: duration {row['duration']!r} "
                                       "is not a number; prepare the data again") from None
            data[item_id] = row
    return data


def dataset_from_csv(csv_path):
    """A SpeechBrain `DynamicItemDataset` of a prepared CSV (`load_prepared_csv`: values as
    written, no `$` substitution)."""
    return sb.dataio.dataset.DynamicItemDataset(load_prepared_csv(csv_path))


def load_label_slice(path, utter_id, utter_num, frame_rate, dur_threshold) -> torch.Tensor:
    """Label frames of one utterance, read through a memory map (only the slice is touched)."""
    labels = np.load(path, mmap_mode="r")
    start, stop = utterance_slice(utter_id, utter_num, frame_rate, dur_threshold, len(labels))
    return torch.from_numpy(np.array(labels[start:stop], dtype=np.int64))


def load_audio_slice(path, utter_id, utter_num, dur_threshold,
                     sample_rate=SAMPLE_RATE) -> torch.Tensor:
    """Samples of one utterance; only that part of the file is read."""
    file_rate, total, _ = audio_info(path)
    if file_rate != sample_rate:
        raise ValueError(f"{path}: expected {sample_rate} Hz audio (run the recipe's prepare.py, "
                         f"which converts it), found {file_rate} Hz")
    start, stop = utterance_slice(utter_id, utter_num, sample_rate, dur_threshold, total)
    return torch.from_numpy(read_audio(path, sample_rate, start=start, stop=stop))


def audio_dataset(csv_path, dur_threshold, frame_rate, sorting=None, wav_for_song=None):
    """SpeechBrain dataset of utterances from a prepared CSV.

    Items: `id`, `song_key` ("<dataset>/<song>"), `utter_id`, `utter_num`, `sig` (float waveform),
    `labels` ((T, 4) int64), `song_anno` (path of the song's note JSON).
    `sorting`: None (CSV order, required for evaluation), "ascending"/"descending" by duration.
    `wav_for_song(dataset, song)`: another audio file to read instead of the CSV's (e.g. a noisy
    mixture of the same length); None keeps the CSV's.
    """
    require_songs(csv_path)
    dataset = dataset_from_csv(csv_path)

    @sb.utils.data_pipeline.takes("wav", "dataset", "song", "utter_id", "utter_num")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav, dataset_name, song, utter_id, utter_num):
        if wav_for_song is not None:
            wav = wav_for_song(dataset_name, song)
        return load_audio_slice(wav, int(utter_id), int(utter_num), dur_threshold)

    dataset.add_dynamic_item(audio_pipeline)
    return with_song_items(dataset, ["sig"], frame_rate, dur_threshold, sorting)


def with_song_items(dataset, input_keys, label_rate, dur_threshold, sorting=None):
    """Add what every utterance dataset shares to `dataset` (whose own dynamic items provide
    `input_keys`): `labels` (the utterance's label frames at `label_rate`), `song_key`
    ("<dataset>/<song>"), `utter_index`, `utter_count`; set the output keys and sort as asked
    (None: CSV order, required for evaluation; "ascending"/"descending" by duration)."""

    @sb.utils.data_pipeline.takes("frame_anno", "utter_id", "utter_num")
    @sb.utils.data_pipeline.provides("labels")
    def label_pipeline(frame_anno, utter_id, utter_num):
        return load_label_slice(frame_anno, int(utter_id), int(utter_num), label_rate,
                                dur_threshold)

    @sb.utils.data_pipeline.takes("dataset", "song", "utter_id", "utter_num")
    @sb.utils.data_pipeline.provides("song_key", "utter_index", "utter_count")
    def song_pipeline(dataset_name, song, utter_id, utter_num):
        yield f"{dataset_name}/{song}"
        yield int(utter_id)
        yield int(utter_num)

    dataset.add_dynamic_item(label_pipeline)
    dataset.add_dynamic_item(song_pipeline)
    dataset.set_output_keys(["id", "song_key", "utter_index", "utter_count", *input_keys,
                             "labels", "song_anno"])
    if sorting in ("ascending", "descending"):
        return dataset.filtered_sorted(sort_key="duration", reverse=sorting == "descending")
    if sorting not in (None, "random"):
        raise ValueError(f"sorting must be ascending, descending, random or None, got {sorting!r}")
    return dataset


@dataclass
class SongStitcher:
    """Collects per-utterance frame predictions and hands back whole songs once all their
    utterances have arrived, in utterance order — whatever the batch size and order (the
    original required batch size 1 and strictly ordered utterances)."""

    pending: dict = field(default_factory=dict)

    def add(self, song_key, utter_index, utter_count, frames):
        """`frames`: tuple of per-frame arrays (onset_p, offset_p, octave, pitch_class).

        Returns `(song_key, stitched_frames)` when the song is complete, else None.
        """
        parts = self.pending.setdefault(song_key, {})
        if utter_index in parts:
            raise ValueError(f"{song_key}: utterance {utter_index} seen twice; is the song listed "
                             "twice in the CSV?")
        parts[utter_index] = frames
        if len(parts) < utter_count:
            return None
        del self.pending[song_key]
        ordered = [parts[i] for i in range(1, utter_count + 1)]
        return song_key, tuple(np.concatenate(column) for column in zip(*ordered))

    def incomplete(self):
        return {key: sorted(parts) for key, parts in self.pending.items()}
