"""SSVD layout: `<id>.flac|.wav` beside `<id>.txt`, one preparation for real and generated songs.

The Sight-singing Vocal Dataset (SSVD v2.0) ships one note file per recording, `onset offset
fractional_midi` per line (tab separated, CRLF, no header). The shipped transcriber's synthetic
corpus (`svt.synthetic.recorded_singing`) is written in the same layout, so one preparation serves
both the real recordings (evaluation) and the generated training/validation songs. It is the
worked example of "Adding a dataset" in docs/architecture.md.
"""
from __future__ import annotations

from svt.data.utterances import PrepareError
from svt.datasets.layout import (
    Problems,
    check_dataset_folders,
    find_audio_files,
    pair_audio_with_notes,
)
from svt.datasets.songs import prepare_evaluation_set
from svt.notes.formats import read_onset_offset_midi


def prepare_ssvd(data_folder, prepare_folder, dataset: str = "ssvd", dur_threshold: float = 5,
                 label_frame_rate: float = 49.8, strict: bool = True, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Prepare a folder in the SSVD layout → `<dataset>.csv`.

    Every audio file `<id>.<ext>` (any rate/channels; converted to 16 kHz mono) needs `<id>.txt`
    beside it and every `.txt` its audio; songs are named by the id. Other files (README,
    corpus.json) are ignored."""
    data = check_dataset_folders(dataset, data_folder, prepare_folder, dur_threshold,
                                 label_frame_rate)
    problems = Problems(dataset, data)
    audio_files = find_audio_files(data)
    notes_files = sorted(p for p in data.rglob("*.txt") if p.is_file()
                         and not p.name.startswith(".") and p.stem.lower() != "readme")
    if not audio_files and not notes_files:
        raise PrepareError(f"{dataset}: no audio or .txt note files in {data}; expected the SSVD "
                           "layout, <id>.flac (or .wav) beside <id>.txt")
    sources = pair_audio_with_notes(dataset, data, audio_files, notes_files, lambda p: p.stem,
                                    read_onset_offset_midi, problems, ".txt", ".flac/.wav")
    return prepare_evaluation_set(dataset, data, prepare_folder, sources, problems, dur_threshold,
                                  label_frame_rate, strict, overwrite, progress)
