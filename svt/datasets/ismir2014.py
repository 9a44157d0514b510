"""ISMIR2014 (sung melodies with ground-truth notes, evaluation only): audio files and note files
matched by song name, or the original recipes' converted layout.

The ground truth comes as `onset duration midi` rows in files named after the recording
(`<song>.GroundTruth.txt`, `<song>.notes`, or a plain `<song>.txt`/`.lab`, read with format
detection), beside the audio or anywhere below the folder. A folder holding `Annotations.json` is
read in the converted layout (`svt.datasets.layout.read_converted_layout`). Writes
`ismir2014.csv`.
"""
from __future__ import annotations

from pathlib import Path

from svt.data.utterances import PrepareError
from svt.datasets.layout import (
    Problems,
    SongSource,
    check_dataset_folders,
    find_audio_files,
    read_converted_layout,
    read_song_notes,
    unique_song_names,
)
from svt.datasets.songs import prepare_evaluation_set
from svt.notes.formats import (
    read_notes,
    song_id,
)

#: ISMIR2014 note-file names by preference; the first three are unambiguous ground-truth names,
#: plain `.txt`/`.lab` files count only when their name matches an audio file.
ISMIR2014_NOTE_SUFFIXES = (".groundtruth.txt", ".notes.txt", ".notes", ".txt", ".lab")
_ISMIR2014_EXPLICIT = ISMIR2014_NOTE_SUFFIXES[:3]


def _ismir_reader(path: Path):
    fmt = "ismir2014" if path.name.lower().endswith(_ISMIR2014_EXPLICIT) else None
    return read_notes(path, fmt)


def prepare_ismir2014(data_folder, prepare_folder, dur_threshold: float = 5,
                      label_frame_rate: float = 49.8, strict: bool = True,
                      overwrite: bool = False, progress: bool = True) -> dict:
    """Prepare ISMIR2014 → `ismir2014.csv` (evaluation only).

    Native layout: audio files and ground-truth note files (`onset duration midi` per row, e.g.
    `<song>.GroundTruth.txt`, `<song>.notes`, `<song>.txt`) matched by `song_id`: a note file in the
    audio file's folder is preferred, otherwise a unique one anywhere below `data_folder`. Plain
    `.txt`/`.lab` files are read with format detection (mir_eval Hz files are recognised). When
    `data_folder/Annotations.json` exists, the original's converted layout is read instead.
    """
    dataset = "ismir2014"
    data = check_dataset_folders(dataset, data_folder, prepare_folder, dur_threshold,
                                 label_frame_rate)
    problems = Problems(dataset, data)
    if (data / "Annotations.json").is_file():
        sources = read_converted_layout(dataset, data, problems)
    else:
        wavs = find_audio_files(data)
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
        named = unique_song_names(wavs, data, lambda p: p.stem, problems)
        collided = {w.stem for w in wavs} - {w.stem for w in named.values()}
        for song, wav in named.items():
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
            notes = read_song_notes(note_file, _ismir_reader, song, problems)
            if notes is not None:
                sources.append(SongSource(dataset, song, notes, note_file, audio=wav))
        for p in note_files:
            if p not in matched and p.name.lower().endswith(_ISMIR2014_EXPLICIT) \
                    and song_id(p) not in collided:  # its recordings are a problem already
                problems.add(song_id(p), f"annotation {p} has no audio file {song_id(p)}.wav; "
                                         "add the audio or remove the annotation")
    return prepare_evaluation_set(dataset, data, prepare_folder, sources, problems, dur_threshold,
                                  label_frame_rate, strict, overwrite, progress)
