"""datasets.tonas."""
from __future__ import annotations

from svt.data.utterances import PrepareError
from svt.datasets.common import (
    Problems,
    _audio_files,
    _check_layout_paths,
    _converted_layout_sources,
    _prepare_evaluation_set,
    _sources_beside,
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
    data = _check_layout_paths(dataset, data_folder, save_folder, dur_threshold, frame_rate)
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
        sources = _sources_beside(dataset, data, wavs, notes_files, song_id, read_tonas,
                                  problems, ".notes.Corrected", ".wav")
    return _prepare_evaluation_set(dataset, data, save_folder, sources, problems, dur_threshold,
                                   frame_rate, strict, overwrite, progress)
