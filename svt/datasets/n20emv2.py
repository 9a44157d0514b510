"""N20EMv2 (singing with lip videos, the audio, video and audio-visual recipes' dataset): one
`annotations.json` with each entry's notes and split, and per entry `data/<entry>/vocals.wav` and
`data/<entry>/video_50fps.npy`.

`prepare_n20emv2_audio` prepares the vocals like every audio dataset (`svt.datasets.songs`) and
can write `mix_train.csv` (MIR-ST500 + N20EMv2 training rows); `prepare_n20emv2_video` checks the
lip videos against the vocals and writes labels at the video's frame rate, one per video frame,
kept apart from the audio preparation's so the two can run independently.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from svt.audio import (
    AudioError,
    audio_info,
    is_16k_mono,
)
from svt.data.utterances import (
    PrepareError,
    csv_folder,
    merge_csvs,
    split_utterances,
    utterance_slice,
    write_csv,
)
from svt.datasets.layout import (
    Problems,
    SongSource,
    annotation_mismatch,
    check_dataset_folders,
    keep_usable_songs,
    match_song_folders,
    natural_key,
    parse_note_list,
    read_annotation_json,
)
from svt.datasets.songs import (
    labels_outdated,
    prepare_songs,
    song_outputs,
    write_song_labels,
    write_utterance_csv,
)
from svt.fileio import write_json_atomic

logger = logging.getLogger(__name__)

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
            entries[key] = parse_note_list(value["midi"], f"{ann_path}: song {key!r}")
        except (ValueError, TypeError) as err:
            entries[key] = ValueError(str(err))
    if other:
        logger.warning("%s: %d entr%s of %s with a split other than %s left out: %s", dataset,
                       len(other), "y" if len(other) == 1 else "ies", ann_path,
                       "/".join(N20EMV2_SPLITS),
                       ", ".join(f"{k} (split={v!r})" for k, v in sorted(other.items())))
    return entries, splits, other


def _open_n20emv2(data_folder, prepare_folder, layout: str, dur_threshold=None,
                  label_frame_rate=None):
    """The parts of an N20EMv2 folder both preparations start from: `(data, ann_path, problems,
    entries, splits, other, folders)` with `folders` = the song folders under `data/` that have a
    usable annotation entry."""
    dataset = "n20emv2"
    data = check_dataset_folders(dataset, data_folder, prepare_folder, dur_threshold,
                                 label_frame_rate)
    ann_path = data / "annotations.json"
    raw = read_annotation_json(ann_path, dataset, layout)
    problems = Problems(dataset, data)
    entries, splits, other = _n20emv2_entries(dataset, raw, ann_path, problems)
    song_root = data / "data"
    if not song_root.is_dir():
        raise PrepareError(f"{dataset}: no folder {song_root}; expected the layout {layout}")
    folders = {p.name: p for p in sorted(song_root.iterdir())
               if p.is_dir() and p.name not in other and p.name not in problems.songs}
    return data, ann_path, problems, entries, splits, other, folders


def prepare_n20emv2_audio(data_folder, prepare_folder, dur_threshold: float = 5,
                          label_frame_rate: float = 49.8, mir_st500_train_csv=None,
                          strict: bool = True, overwrite: bool = False,
                          progress: bool = True) -> dict:
    """Prepare N20EMv2 audio → `n20em_train.csv`, `n20em_valid.csv`, `n20em_test.csv`.

    Layout: `annotations.json` (`{entry: {"midi": notes, "split": "train"|"valid"|"test"}}`) and
    `data/<entry>/vocals.wav`. The split comes from the `split` field only; entries with another
    (or no) split value are listed in a warning and left out. With `mir_st500_train_csv` (a path
    or a list of paths), `mix_train.csv` = the rows of those CSVs followed by the N20EMv2 training
    rows. Returns `{csv_name: path}`.
    """
    dataset = "n20emv2"
    data, ann_path, problems, entries, splits, other, folders = _open_n20emv2(
        data_folder, prepare_folder, N20EMV2_LAYOUT, dur_threshold, label_frame_rate)
    sources = match_song_folders(dataset, entries, folders, ann_path, problems,
                                 "data/<entry>/vocals.wav", splits=splits)
    sources = [s for s in sources if s.song not in problems.songs]
    sources = keep_usable_songs(sources, problems, strict, dataset, data)
    prepared = prepare_songs(sources, prepare_folder, dataset, label_frame_rate, overwrite,
                             progress)
    prepared.sort(key=lambda s: natural_key(s.song))
    folder = csv_folder(prepare_folder, dur_threshold)
    result = {f"n20em_{split}": write_utterance_csv(folder / f"n20em_{split}.csv",
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


def _video_song_wav(prepare_folder, song: str, vocals: Path) -> Path:
    """The vocals for the `wav` column: the file itself when it is 16 kHz mono, else the audio
    preparation's converted copy when it exists, else the original file."""
    if is_16k_mono(vocals):
        return Path(os.path.abspath(vocals))
    converted = song_outputs(prepare_folder, "n20emv2", song)["audio16k"]
    if converted.is_file():
        return converted
    logger.info("n20emv2 song %r: %s is not 16 kHz mono; the video CSV points to it as it is "
                "(prepare_n20emv2_audio converts it)", song, vocals)
    return Path(os.path.abspath(vocals))


def prepare_n20emv2_video(data_folder, prepare_folder, dur_threshold: float = 5,
                          label_frame_rate: float = 50, strict: bool = True,
                          overwrite: bool = False, progress: bool = True,
                          tolerance_s: float = 0.1) -> dict:
    """Prepare N20EMv2 lip videos → `n20em_video_train.csv`, `n20em_video_valid.csv`,
    `n20em_video_test.csv` in `<prepare_folder>/dur_<D>s/` (columns VIDEO_CSV_COLUMNS).

    Layout: `annotations.json` (splits as in `prepare_n20emv2_audio`) and
    `data/<entry>/video_50fps.npy` (uint8 `(T, H, W)`, H, W >= 88, `label_frame_rate` frames
    per second: the labels have one frame per video frame); `data/<entry>/vocals.wav` is
    optional. Each video is checked with `svt.data.video.validate_video`; when the song has
    vocals, the video must last as long as them within `tolerance_s` (default 0.1 s = 5 frames at
    50 fps).

    Writes, per song, `<prepare_folder>/labels/n20emv2_video/<song>.npy` (labels `(T, 4)` at
    `label_frame_rate`, one per video frame: `L = T` as in the original) and
    `<prepare_folder>/notes/n20emv2_video/<song>.json` (kept apart from the audio preparation's
    files so the two can run independently). Resumable like the audio preparation: a song whose
    outputs were made from the same notes, video content and frame rate (its
    `svt.datasets.songs.SongRecord`) is skipped; `overwrite=True` or a new frame rate redoes every song. Problems (missing or invalid videos,
    unreadable vocals, length mismatches, invalid notes) are reported together with the song and
    file (`strict=True`) or skipped with a warning (`strict=False`).

    Utterances use the audio's count-based rule (`split_utterances` of `T / label_frame_rate` s,
    sliced with `utterance_slice`: 250 frames per 5-s utterance at 50 fps), so the audio and video
    utterances of a song match. The original video preparer used a loop-based rule instead
    (D-second utterances while more than 1.5 D remains, then the rest), which differs at exact
    boundaries by one utterance (docs/original-recipes.md §2.8). Returns `{csv_name: path}`.
    """
    from svt.data.video import VideoError, validate_video

    dataset = "n20emv2"
    data, ann_path, problems, entries, splits, other, folders = _open_n20emv2(
        data_folder, prepare_folder, N20EMV2_VIDEO_LAYOUT, dur_threshold, label_frame_rate)
    expected_layout = f"data/<entry>/{N20EMV2_VIDEO_FILE}"
    for song in sorted(set(entries) - set(folders), key=natural_key):
        problems.add(song, f"annotated in {ann_path} but has no folder {data / 'data' / song} "
                           f"(expected {expected_layout}); add the video or remove the entry")
    for song in sorted(set(folders) - set(entries), key=natural_key):
        problems.add(song, f"folder {folders[song]} has no entry in {ann_path}; add its notes or "
                           "remove the folder")
    tolerance_frames = int(round(tolerance_s * label_frame_rate))
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
                wav = str(_video_song_wav(prepare_folder, song, vocals))
            except AudioError as err:
                problems.add(song, str(err))
                continue
            expected = int(round(samples / rate * label_frame_rate))
        try:
            num_frames = validate_video(video, expected, tolerance_frames)[0]
        except VideoError as err:
            problems.add(song, str(err))
            continue
        message = annotation_mismatch(src, num_frames / label_frame_rate, video)
        if message:
            problems.add(song, message)
            continue
        found.append((src, Path(os.path.abspath(video)), num_frames, wav))
    problems.resolve(strict)
    if not found:
        raise PrepareError(f"{dataset}: no usable songs with videos found in {data}")

    root = Path(os.path.abspath(prepare_folder))
    settings_path = root / "labels" / N20EMV2_VIDEO_LABELS / "_settings.json"
    settings = {"frame_rate": float(label_frame_rate), "source": "video"}  # key as on disk
    relabel = labels_outdated(settings_path, settings, dataset) or overwrite

    prepared, counts = [], {"prepared": 0, "up to date": 0}
    for src, video, num_frames, wav in tqdm(found, desc=f"preparing {dataset} videos",
                                            unit="song", disable=not progress):
        out = song_outputs(prepare_folder, N20EMV2_VIDEO_LABELS, src.song)
        write_song_labels(out, src.notes, num_frames, label_frame_rate, [video],
                          relabel, counts, source=f"{dataset} song {src.song!r} ({ann_path})")
        prepared.append(PreparedVideo(src.song, src.split, video, num_frames, wav,
                                      out["labels"], out["notes"]))
    if not settings_path.is_file():  # new, or removed above as outdated
        write_json_atomic(settings_path, settings)
    logger.info("%s: %d videos (%s) in %s", dataset, len(prepared),
                ", ".join(f"{v} {k}" for k, v in counts.items() if v), prepare_folder)

    folder = csv_folder(prepare_folder, dur_threshold)
    result = {}
    for split in N20EMV2_SPLITS:
        rows = []
        for song in (s for s in prepared if s.split == split):
            for k, n, _, _ in split_utterances(song.num_frames / label_frame_rate,
                                               dur_threshold):
                start, stop = utterance_slice(k, n, label_frame_rate, dur_threshold,
                                              song.num_frames)
                rows.append({"ID": f"{dataset}_{song.song}_{k}", "song": song.song,
                             "dataset": dataset,
                             "duration": repr((stop - start) / label_frame_rate),
                             "video": str(song.video), "wav": song.wav, "utter_id": k,
                             "utter_num": n, "frame_anno": str(song.frame_anno),
                             "song_anno": str(song.song_anno)})
        path = folder / f"n20em_video_{split}.csv"
        if not rows:
            logger.warning("%s: no songs, writing a CSV with only the header", path)
        result[f"n20em_video_{split}"] = write_csv(path, rows, VIDEO_CSV_COLUMNS)
        logger.info("wrote %s (%d utterances)", path, len(rows))
    return result
