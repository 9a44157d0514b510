"""Data pipelines from prepared CSVs, and the stitching of utterance predictions into songs.

Training runs on utterances of `dur_threshold` seconds (spec 2.8); evaluation decodes whole songs.
Unlike the original, which loaded the whole wav / label file for every utterance and sliced it,
each utterance reads only its own samples (soundfile partial reads) and label frames (memory-mapped
`.npy`), so an epoch reads every file once instead of once per utterance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import speechbrain as sb
import torch

from svt.audio import audio_info, read_audio
from svt.prepare import utterance_slice

SAMPLE_RATE = 16000


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
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path)

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
