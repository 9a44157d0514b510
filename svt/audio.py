"""Reading, writing and converting audio files.

`torchaudio.load/save` need TorchCodec in torchaudio >= 2.9, so files are read and written with
`soundfile` (WAV, FLAC, OGG, ...) and resampled with `torchaudio.functional.resample`. Every model
in the toolkit takes 16 kHz mono float32 audio; `read_audio` delivers it from any file soundfile
reads.

Errors are `AudioError` (a `ValueError`) whose message names the file and says what to do.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from svt.fileio import atomic_path

logger = logging.getLogger(__name__)

#: Sample rate of every model input and of the prepared audio.
SAMPLE_RATE = 16000


class AudioError(ValueError):
    """An audio file that is missing or cannot be read; the message names the file."""


def _unreadable(path, err) -> AudioError:
    return AudioError(
        f"{path}: cannot read this audio file ({err}). Convert it to WAV or FLAC "
        "(for example `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`) and point to the converted file.")


def audio_info(path) -> tuple[int, int, int]:
    """`(sample_rate, num_frames, channels)` of an audio file, from its header only."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file; check the path (or the dataset layout).")
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as err:
        raise _unreadable(path, err) from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def resample(wav: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a 1-D (or `(channels, n)`) float array with torchaudio's windowed-sinc filter."""
    if int(orig_rate) == int(new_rate):
        return np.asarray(wav, dtype=np.float32)
    import torch
    import torchaudio.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    return F.resample(tensor, int(orig_rate), int(new_rate)).numpy()


def read_audio(path, sample_rate: int | None = SAMPLE_RATE, start: int | None = None,
               stop: int | None = None) -> np.ndarray:
    """Mono float32 waveform of `path` at `sample_rate` (None: the file's own rate).

    `start`/`stop` select samples `[start, stop)` at the output rate. When the file already has that
    rate they are the file's own sample indices and only that slice is read from disk. Otherwise the
    whole file is read, resampled, then sliced, so a slice always equals the same samples of the
    whole resampled file. Several channels are averaged to mono.
    """
    path = Path(path)
    file_rate, num_frames, _ = audio_info(path)
    out_rate = file_rate if sample_rate is None else int(sample_rate)
    partial = out_rate == file_rate
    try:
        if partial:
            wav, _ = sf.read(str(path), start=start or 0, stop=stop, dtype="float32",
                             always_2d=True)
        else:
            wav, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise _unreadable(path, err) from None
    wav = wav.mean(axis=1, dtype=np.float32) if wav.shape[1] > 1 else wav[:, 0]
    if not partial:
        wav = resample(wav, file_rate, out_rate)
        if start is not None or stop is not None:
            wav = wav[start:stop]
    return np.ascontiguousarray(wav, dtype=np.float32)


def write_audio(path, wav, sample_rate: int) -> None:
    """Write a mono (1-D) or `(n, channels)` waveform as 16-bit PCM WAV, atomically.

    Samples are rounded to the nearest 16-bit step and clipped to full scale (libsndfile's own
    float -> int16 conversion floors, a bias of half a step; resampling can overshoot 1.0).
    Samples already on the 16-bit grid are written bit-exactly."""
    grid = np.round(np.asarray(wav, dtype=np.float64) * 32768.0)
    pcm = np.clip(grid, -32768, 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), pcm, int(sample_rate), subtype="PCM_16", format="WAV")


def is_16k_mono(path) -> bool:
    rate, _, channels = audio_info(path)
    return rate == SAMPLE_RATE and channels == 1


def to_16k_mono(src, dst) -> Path:
    """Convert a readable audio file to 16 kHz mono 16-bit WAV at `dst` (atomic); returns dst."""
    rate, _, channels = audio_info(src)
    wav = read_audio(src, SAMPLE_RATE)
    write_audio(dst, wav, SAMPLE_RATE)
    logger.info("converted %s (%d Hz, %d channel%s) to 16 kHz mono: %s", src, rate, channels,
                "" if channels == 1 else "s", dst)
    return Path(dst)
