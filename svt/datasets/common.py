"""Data preparation: frame labels, note files, 16 kHz mono audio and utterance CSVs.

Every dataset goes through the same steps (docs/original-recipes.md §2): find each song's vocals and notes,
check that they belong together, convert the audio to 16 kHz mono when it is not, save the frame
labels (`svt.notes.labels.notes_to_frames`) and the note list, then write one CSV row per utterance of
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

Differences from the original preparers (docs/original-recipes.md §9):

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

import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from svt.audio import (
    SAMPLE_RATE,
    AudioError,
    audio_info,
    is_16k_mono,
    resample,
    to_16k_mono,
    write_audio,
)
from svt.data.utterances import (
    PrepareError,
    check_preparation_settings,
    csv_folder,
    split_utterances,
    utterance_slice,
    write_csv,
)
from svt.fileio import atomic_path, no_duplicate_keys, unsafe_name_reason, write_json_atomic
from svt.notes.formats import (
    NoteFileError,
    write_notes_json,
)
from svt.notes.labels import notes_to_frames, num_label_frames, validate_notes

logger = logging.getLogger(__name__)
#: Notes may end at most this many seconds after the end of the audio.
END_TOLERANCE_S = 1.0
#: Default share of MIR-ST500 training songs held out for validation.
VALID_SHARE = 0.05
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3")
#: Problems listed in one error message before "... and N more".
MAX_LISTED = 40


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
    reason = unsafe_name_reason(song)
    if reason:
        raise PrepareError(f"{dataset}: song id {song!r} {reason}; it would name files outside "
                           f"{save_folder}")
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
                "with --skip_invalid (on the command line of prepare.py or experiment.py; "
                "strict=False in Python).")
        for line in lines:
            logger.warning("skipping %s", line.strip()[2:])


def check_save_folder(save_folder, what: str = "save_folder") -> Path:
    """`save_folder` is a folder or can be made one (nothing is created here, so a preparation
    that fails leaves nothing behind): a file on the way, or a nearest existing folder that
    cannot be written, is a PrepareError now rather than a traceback mid-preparation."""
    path = Path(os.path.abspath(save_folder))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise PrepareError(f"--{what} {save_folder}: {existing} is a file, not a folder; give a "
                           "folder (it is created when missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        state = "is not writable" if existing == path else f"cannot be created in {existing}"
        raise PrepareError(f"--{what} {save_folder}: the folder {state} (no permission); give a "
                           "folder you can write to")
    return path


def _check_layout_paths(dataset: str, data_folder, save_folder, dur_threshold=None,
                        frame_rate=None) -> Path:
    """The data folder exists, the save folder is outside it and can be written, and (when
    given) the utterance length and label frame rate make sense; checked before any work."""
    if dur_threshold is not None or frame_rate is not None:
        check_preparation_settings(5 if dur_threshold is None else dur_threshold,
                                   49.8 if frame_rate is None else frame_rate)
    data = Path(data_folder)
    if not data.is_dir():
        raise PrepareError(f"{dataset}: data folder {data} does not exist; pass the dataset's root "
                           "folder")
    data_abs, save_abs = Path(os.path.abspath(data)), Path(os.path.abspath(save_folder))
    if save_abs == data_abs or data_abs in save_abs.parents:
        raise PrepareError(f"{dataset}: save_folder {save_abs} is inside the data folder "
                           f"{data_abs}; svt never writes into a dataset, choose a save_folder "
                           "outside it")
    check_save_folder(save_folder)
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
    check_midi_pitches(notes, source)
    return notes[np.argsort(notes[:, 0], kind="stable")]


#: Highest MIDI note number; a median pitch above HZ_LIKE_MEDIAN suggests pitches in Hz (sung
#: notes lie around MIDI 40-80, while 100 Hz and more is every voice's range in Hz).
MAX_MIDI = 127
HZ_LIKE_MEDIAN = 100


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


def _load_json_object(path: Path, dataset: str, layout: str) -> dict:
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


def _audio_files(folder: Path):
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in AUDIO_SUFFIXES)


def _unique_song_names(paths, root: Path, stem, problems=None) -> dict:
    """`{song_name: path}`: names are `stem(path)`; where several files share one, each gets its
    relative folder prefixed (`Martinetes1_01-...`) so every song keeps a distinct name. Where
    that still leaves two files one name (`a.wav` and `a.flac` in one folder, or `x/c.wav` beside
    a root `x_c.wav`), neither is kept: a problem each in `problems` (PrepareError without)."""
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


def _mixture_in(folder: Path):
    found = sorted(p for p in folder.iterdir() if p.is_file()
                   and p.name.lower().startswith("mixture") and not p.name.startswith("."))
    return found[0] if found else None


_SEPARATION_HELP = (
    "vocals are required: preparation needs the singing voice alone. Either install demucs "
    "(`pip install demucs`) and pass --separate (separate=True) to extract the vocals from "
    "Mixture.*, or put the separated vocals at <song>/vocals.wav yourself (any sample rate and "
    "number of channels: it is converted to 16 kHz mono)")
#: The same for a dataset whose preparation does not separate (N20EMv2, converted layouts).
_VOCALS_HELP = (
    "vocals are required: preparation needs the singing voice alone; put the separated vocals "
    "at <song>/vocals.wav (e.g. made with demucs; any sample rate and number of channels: it is "
    "converted to 16 kHz mono)")


def _demucs_available() -> bool:
    return importlib.util.find_spec("demucs") is not None


def _folder_sources(dataset, annotations, folders, ann_path, problems, layout, separate=None,
                    splits=None) -> list[SongSource]:
    """Match `{song: notes or error}` with `{song: song_folder}`; `vocals.wav` in each folder.
    `separate`: whether to separate mixtures, None for a dataset whose preparation cannot (its
    messages then name only the remedies that exist for it)."""
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
                help_text = _VOCALS_HELP if separate is None else _SEPARATION_HELP
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


def _annotation_entries(raw: dict, ann_path: Path) -> dict:
    """`{song: notes array or ValueError}` from a `{song: note_list}` object."""
    entries = {}
    for key, value in raw.items():
        reason = unsafe_name_reason(key)
        if reason:
            entries[str(key)] = ValueError(f"{ann_path}: song id {key!r} {reason}; song ids "
                                           "become file names, so it is refused")
            continue
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


MIR_ST500_LAYOUT = ("<data_folder>/Annotations.json + "
                    "<data_folder>/wav16kHz/{train,test}/<id>/vocals.wav")


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


def _sources_beside(dataset, data, wavs, notes_files, notes_stem, reader, problems,
                    notes_suffix: str, audio_suffix: str) -> list[SongSource]:
    """Songs whose audio `<stem>.<ext>` lies beside its annotation (`notes_stem(path)` = `<stem>`);
    an audio file without annotation, or the reverse, is a problem naming the missing file."""
    beside = {(p.parent, notes_stem(p)): p for p in notes_files}
    matched, sources = set(), []
    named = _unique_song_names(wavs, data, lambda p: p.stem, problems)
    claimed = {(p.parent, p.stem) for p in wavs}  # an annotation beside a colliding recording
    for song, wav in named.items():
        note_file = beside.get((wav.parent, wav.stem))
        if note_file is None:
            problems.add(song, f"audio {wav} has no {wav.stem}{notes_suffix} beside it; add the "
                               "annotation or remove the file")
            continue
        matched.add(note_file)
        notes = _read_song_notes(note_file, reader, song, problems)
        if notes is not None:
            sources.append(SongSource(dataset, song, notes, note_file, audio=wav))
    for note_file in notes_files:
        if note_file not in matched and (note_file.parent, notes_stem(note_file)) not in claimed:
            stem = notes_stem(note_file)
            problems.add(stem, f"annotation {note_file} has no audio file {stem}{audio_suffix} "
                               "beside it; add the audio or remove the annotation")
    return sources


def _read_song_notes(path, reader, song, problems):
    try:
        return reader(path)
    except (NoteFileError, ValueError) as err:
        problems.add(song, f"invalid notes: {err}")
        return None


