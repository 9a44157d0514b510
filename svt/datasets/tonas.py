"""TONAS (flamenco a cappella singing, evaluation only): `<stem>.wav` beside
`<stem>.notes.Corrected`, or the original recipes' converted layout.

TONAS as distributed keeps each recording (44.1 kHz, converted to 16 kHz mono) beside its corrected
note transcription (`svt.notes.formats.read_tonas`) in the subfolders Deblas/, Martinetes1/ and
Martinetes2/; songs are named by the file stem, with the subfolder prefixed where two stems clash.
A folder holding `Annotations.json` is read in the converted layout
(`svt.datasets.layout.read_converted_layout`) instead. Writes `tonas.csv`.
"""
from __future__ import annotations

from svt.data.utterances import PrepareError
from svt.datasets.layout import (
    Problems,
    check_dataset_folders,
    find_audio_files,
    pair_audio_with_notes,
    read_converted_layout,
)
from svt.datasets.songs import prepare_evaluation_set
from svt.notes.formats import (
    read_tonas,
    song_id,
)


def prepare_tonas(data_folder, prepare_folder, dur_threshold: float = 5,
                  label_frame_rate: float = 49.8, strict: bool = True, overwrite: bool = False,
                  progress: bool = True) -> dict:
    """Prepare TONAS → `tonas.csv` (evaluation only).

    Native layout (the TONAS distribution): `<stem>.wav` (44.1 kHz, converted) beside
    `<stem>.notes.Corrected` (read with `read_tonas`), in `data_folder` or any subfolder (Deblas/,
    Martinetes1/, Martinetes2/). Songs are named by the stem. When `data_folder/Annotations.json`
    exists, the original's converted layout `wav16kHz/<song>/vocals.wav` is read instead.
    """
    dataset = "tonas"
    data = check_dataset_folders(dataset, data_folder, prepare_folder, dur_threshold,
                                 label_frame_rate)
    problems = Problems(dataset, data)
    if (data / "Annotations.json").is_file():
        sources = read_converted_layout(dataset, data, problems)
    else:
        notes_files = sorted(p for p in data.rglob("*") if p.is_file()
                             and p.name.lower().endswith(".notes.corrected"))
        audio_files = find_audio_files(data)
        if not audio_files and not notes_files:
            raise PrepareError(f"{dataset}: no audio or .notes.Corrected files in {data}; expected "
                               "TONAS as distributed (<stem>.wav beside <stem>.notes.Corrected) or "
                               "Annotations.json + wav16kHz/<song>/vocals.wav")
        sources = pair_audio_with_notes(dataset, data, audio_files, notes_files, song_id,
                                        read_tonas, problems, ".notes.Corrected", ".wav")
    return prepare_evaluation_set(dataset, data, prepare_folder, sources, problems, dur_threshold,
                                  label_frame_rate, strict, overwrite, progress)
