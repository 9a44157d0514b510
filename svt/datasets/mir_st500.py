"""MIR-ST500 (pop songs with note annotations, the audio recipes' training set): one shared
`Annotations.json` + `wav16kHz/{train,test}/<id>/vocals.wav`, and a seeded validation hold-out.

The original recipes expected a `mir_st500_valid.csv` they never made; here a reproducible share
of the training songs (`holdout_split`) is held out for validation. Song folders holding only a
`Mixture.*` file get their vocals extracted by demucs with `separate=True`
(`svt.datasets.separation`). Writes `mir_st500_{train,valid,test}.csv`.
"""
from __future__ import annotations

import logging
import random

from svt.data.utterances import PrepareError, csv_folder
from svt.datasets.layout import (
    Problems,
    check_dataset_folders,
    keep_usable_songs,
    match_song_folders,
    natural_key,
    parse_annotations,
    read_annotation_json,
)
from svt.datasets.separation import check_separation_available
from svt.datasets.songs import prepare_songs, write_utterance_csv

logger = logging.getLogger(__name__)
#: Default share of MIR-ST500 training songs held out for validation.
VALID_SHARE = 0.05
MIR_ST500_LAYOUT = ("<data_folder>/Annotations.json + "
                    "<data_folder>/wav16kHz/{train,test}/<id>/vocals.wav")


def _default_num_valid(num_train: int) -> int:
    return max(1, round(VALID_SHARE * num_train))


def holdout_split(songs, num_valid: int, seed: int) -> tuple[list, list]:
    """`(train, valid)`: `random.Random(seed).sample` of `num_valid` songs taken from the songs in
    natural order, so the hold-out depends only on the song names and the seed; both lists are in
    natural order."""
    ordered = sorted(songs, key=natural_key)
    valid = set(random.Random(seed).sample(ordered, num_valid))
    return [s for s in ordered if s not in valid], [s for s in ordered if s in valid]


def prepare_mir_st500(data_folder, prepare_folder, dur_threshold: float = 5,
                      label_frame_rate: float = 49.8, num_valid: int | None = None,
                      valid_seed: int = 1986, separate: bool = False, strict: bool = True,
                      overwrite: bool = False, progress: bool = True) -> dict:
    """Prepare MIR-ST500 → `mir_st500_train.csv`, `mir_st500_valid.csv`, `mir_st500_test.csv`.

    Layout: `Annotations.json` (`{id: notes}`) and `wav16kHz/{train,test}/<id>/vocals.wav` (any rate
    or channels; non-16 kHz-mono vocals are converted). With `separate=True`, a song folder without
    vocals.wav but with a `Mixture.*` file gets its vocals extracted by demucs.

    Validation split (the original expected a `mir_st500_valid.csv` it never made): `num_valid`
    training songs (default 5 % of them, at least 1) chosen by `holdout_split(train_songs,
    num_valid, valid_seed)`; they leave the training CSV. Returns `{csv_name: path}`.
    """
    dataset = "mir_st500"
    data = check_dataset_folders(dataset, data_folder, prepare_folder, dur_threshold,
                                 label_frame_rate)
    ann_path = data / "Annotations.json"
    raw = read_annotation_json(ann_path, dataset, MIR_ST500_LAYOUT)
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
    sources = match_song_folders(dataset, parse_annotations(raw, ann_path), folders, ann_path,
                                 problems, "wav16kHz/{train,test}/<id>/vocals.wav", separate,
                                 splits)
    sources = [s for s in sources if s.song not in problems.songs]
    sources = keep_usable_songs(sources, problems, strict, dataset, data)
    check_separation_available(sources, dataset)

    train_songs = [s.song for s in sources if s.split == "train"]
    if num_valid is None:
        num_valid = _default_num_valid(len(train_songs))
    num_valid = int(num_valid)
    if len(train_songs) < 2:
        # Training needs a song to train on and (the recipes) at least one held out to validate.
        raise PrepareError(f"{dataset}: {len(train_songs)} usable training song(s) in "
                           f"{audio_root / 'train'}: at least 2 training songs are needed (one "
                           "to train on, at least one held out for validation); add training "
                           "songs")
    if num_valid < 0 or num_valid >= len(train_songs):
        raise PrepareError(f"{dataset}: cannot hold out {num_valid} of {len(train_songs)} training "
                           "songs for validation; choose num_valid between 1 and "
                           f"{len(train_songs) - 1} (0 leaves the validation CSV empty, which "
                           "only prepare.py accepts)")
    _, valid_songs = holdout_split(train_songs, num_valid, valid_seed)
    if num_valid == 0:
        logger.warning("%s: num_valid=0, mir_st500_valid.csv will be empty", dataset)
    valid_set = set(valid_songs)
    logger.info("%s: holding out %d training songs for validation (seed %d): %s", dataset,
                num_valid, valid_seed, ", ".join(valid_songs))

    prepared = prepare_songs(sources, prepare_folder, dataset, label_frame_rate, overwrite,
                             progress)
    by_split = {"train": [], "valid": [], "test": []}
    for song in sorted(prepared, key=lambda s: natural_key(s.song)):
        split = "valid" if song.song in valid_set else song.split
        by_split[split].append(song)
    folder = csv_folder(prepare_folder, dur_threshold)
    return {f"{dataset}_{split}": write_utterance_csv(folder / f"{dataset}_{split}.csv", songs,
                                                      dur_threshold)
            for split, songs in by_split.items()}
