"""datasets.tonas."""
from __future__ import annotations

from svt.data.utterances import PrepareError
from svt.datasets.common import (
    Problems,
    SongSource,
    _audio_files,
    _check_layout_paths,
    _converted_layout_sources,
    _prepare_evaluation_set,
    _read_song_notes,
    _unique_song_names,
)
from svt.notes.formats import (
    read_tonas,
    song_id,
)


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
