"""Per-song feature files and the feature datasets of the audio-visual stage.

The audio and video recipes (`--extract_features True`) save each song's encoder features as
`<features_folder>/<dataset>/<song>/<name>.npy` (`feature_path`, `save_features`; float16). The
fusion recipe lists them per utterance (`prepare_av_csvs`: one CSV per split, AV_CSV_COLUMNS,
checking that every song has both streams and that their lengths agree) and reads them back
(`av_dataset`: audio features at 49.8 frames/s, video features aligned to them, and the labels),
reading only each utterance's frames through a memory map (`load_features`).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch

from svt.data.utterances import (
    csv_folder,
    dataset_from_csv,
    read_csv,
    split_utterances,
    utterance_slice,
    with_song_items,
)
from svt.errors import SvtUserError
from svt.fileio import atomic_path, write_text_atomic

AUDIO_FEATURE_RATE = 49.8
VIDEO_FEATURE_RATE = 50.0
AV_CSV_COLUMNS = ["ID", "song", "dataset", "duration", "features", "utter_id", "utter_num",
                  "frame_anno", "song_anno"]
#: Audio and video features of a song may differ by this many frames (else: not the same song).
ALIGNMENT_TOLERANCE_FRAMES = 15


class FeatureError(SvtUserError, FileNotFoundError):
    """Missing or inconsistent features for the audio-visual stage."""


def prepare_av_csvs(audio_csvs: dict, features_folder, out_folder, dur_threshold=5,
                    audio_name="clean_feats", video_name="video_feats") -> dict:
    """`{split: csv}` of feature utterances for the songs of the audio preparation's CSVs
    (`{split: n20em_<split>.csv}`, for their label and note files), written as
    `<out_folder>/dur_<D>s/n20em_av_<split>.csv`. Every song needs both feature
    files (made by the recipes' `--extract_features True`); a missing one is an error naming it."""
    out = {}
    for split, audio_csv in audio_csvs.items():
        header, rows = read_csv(audio_csv)
        columns = {name: header.index(name) for name in header}
        songs = {}
        for row in rows:
            key = (row[columns["dataset"]], row[columns["song"]])
            songs.setdefault(key, (row[columns["frame_anno"]], row[columns["song_anno"]]))
        lines = []
        for (dataset, song), (frame_anno, song_anno) in songs.items():
            song_key = f"{dataset}/{song}"
            audio = feature_path(features_folder, song_key, audio_name)
            video = feature_path(features_folder, song_key, video_name)
            for path in (audio, video):
                if not path.is_file():
                    raise FeatureError(f"{path}: features missing for {song_key}; extract them "
                                       "with the audio and video recipes (--extract_features "
                                       "True) first")
            num_audio = np.load(audio, mmap_mode="r").shape[0]
            num_video = np.load(video, mmap_mode="r").shape[0]
            expected_video = num_audio / AUDIO_FEATURE_RATE * VIDEO_FEATURE_RATE
            if abs(num_video - expected_video) > ALIGNMENT_TOLERANCE_FRAMES:
                raise FeatureError(f"{song_key}: {num_audio} audio feature frames but {num_video} "
                                   "video frames: the two streams do not belong together")
            duration = num_audio / AUDIO_FEATURE_RATE
            for utter_id, utter_num, _, utter_dur in split_utterances(duration, dur_threshold):
                lines.append([f"{dataset}_{song}_{utter_id}", song, dataset, f"{utter_dur:.4f}",
                              str(Path(features_folder).resolve()), utter_id, utter_num,
                              frame_anno, song_anno])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(AV_CSV_COLUMNS)
        writer.writerows(lines)
        path = csv_folder(out_folder, dur_threshold) / f"n20em_av_{split}.csv"
        write_text_atomic(path, buffer.getvalue())
        out[split] = path
    return out


def av_dataset(csv_path, dur_threshold, audio_name="clean_feats", video_name="video_feats",
               zero_video=False, sorting=None):
    """Utterances of feature rows: items `audio_feats` (T, D), `video_feats` (T, D) aligned to
    the audio rows, `labels` (49.8 fps), and the song keys the Brain stitches with."""
    dataset = dataset_from_csv(csv_path)

    @sb.utils.data_pipeline.takes("features", "dataset", "song", "utter_id", "utter_num")
    @sb.utils.data_pipeline.provides("audio_feats", "video_feats")
    def feature_pipeline(features, dataset_name, song, utter_id, utter_num):
        key, k, n = f"{dataset_name}/{song}", int(utter_id), int(utter_num)
        audio_all = load_features(feature_path(features, key, audio_name))
        a0, a1 = utterance_slice(k, n, AUDIO_FEATURE_RATE, dur_threshold, len(audio_all))
        audio = torch.from_numpy(np.asarray(audio_all[a0:a1], dtype=np.float32))
        yield audio
        if zero_video:  # the audio-only control reads no video at all
            yield torch.zeros_like(audio)
            return
        video_all = load_features(feature_path(features, key, video_name))
        v0, v1 = utterance_slice(k, n, VIDEO_FEATURE_RATE, dur_threshold, len(video_all))
        video = np.asarray(video_all[v0:v1], dtype=np.float32)[: len(audio)]
        if len(video) < len(audio):
            video = np.pad(video, ((0, len(audio) - len(video)), (0, 0)))
        yield torch.from_numpy(video)

    dataset.add_dynamic_item(feature_pipeline)
    return with_song_items(dataset, ["audio_feats", "video_feats"], AUDIO_FEATURE_RATE,
                           dur_threshold, sorting)


def feature_path(features_folder, song_key: str, name: str) -> Path:
    """`<features_folder>/<dataset>/<song>/<name>.npy` (a song id too long for a file name is
    shortened as the preparation shortens it, `svt.datasets.songs.file_stem`)."""
    from svt.datasets.songs import file_stem

    dataset, song = song_key.split("/", 1)
    return Path(features_folder) / dataset / file_stem(song) / f"{name}.npy"


def save_features(path, features: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(features, dtype=np.float16))


def load_features(path, start=None, stop=None) -> np.ndarray:
    """Features of a song (or frames `start:stop` of it, read through a memory map)."""
    return np.load(path, mmap_mode="r")[start:stop]
