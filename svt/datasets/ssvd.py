"""datasets.ssvd: folders in the SSVD layout, `<id>.flac|.wav` beside `<id>.txt`.

The Sight-singing Vocal Dataset (SSVD v2.0) ships one note file per recording, `onset offset
fractional_midi` per line (tab separated, CRLF, no header). The shipped transcriber's synthetic
corpus (`svt.synthetic.recorded_singing`) is written in the same layout, so one preparation serves
both the real recordings (evaluation) and the generated training/validation songs.
"""
from __future__ import annotations

from svt.data.utterances import PrepareError
from svt.datasets.common import (
    Problems,
    _audio_files,
    _check_layout_paths,
    _prepare_evaluation_set,
    _sources_beside,
)
from svt.notes.formats import read_onset_offset_midi


def prepare_ssvd(data_folder, save_folder, dataset: str = "ssvd", dur_threshold: float = 5,
                 frame_rate: float = 49.8, strict: bool = True, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Prepare a folder in the SSVD layout → `<dataset>.csv`.

    Every audio file `<id>.<ext>` (any rate/channels; converted to 16 kHz mono) needs `<id>.txt`
    beside it and every `.txt` its audio; songs are named by the id. Other files (README,
    corpus.json) are ignored."""
    data = _check_layout_paths(dataset, data_folder, save_folder, dur_threshold, frame_rate)
    problems = Problems(dataset, data)
    wavs = _audio_files(data)
    notes_files = sorted(p for p in data.rglob("*.txt") if p.is_file()
                         and not p.name.startswith(".") and p.stem.lower() != "readme")
    if not wavs and not notes_files:
        raise PrepareError(f"{dataset}: no audio or .txt note files in {data}; expected the SSVD "
                           "layout, <id>.flac (or .wav) beside <id>.txt")
    sources = _sources_beside(dataset, data, wavs, notes_files, lambda p: p.stem,
                              read_onset_offset_midi, problems, ".txt", ".flac/.wav")
    return _prepare_evaluation_set(dataset, data, save_folder, sources, problems, dur_threshold,
                                   frame_rate, strict, overwrite, progress)
