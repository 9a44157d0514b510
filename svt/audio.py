"""Reading, writing and converting audio files.

`torchaudio.load/save` need TorchCodec in torchaudio >= 2.9, so files are read and written with
`soundfile` (WAV, FLAC, OGG, ...) and resampled with `torchaudio.functional.resample`. Every model
in the toolkit takes 16 kHz mono float32 audio; `read_audio` delivers it from any file soundfile
reads. For recordings of any length, `open_audio` gives a source read slice by slice
(`read(start, stop)`, `num_samples`, `close()`): the file itself when it is 16 kHz mono
(`FileSource`), else a 16 kHz mono copy converted in blocks into an anonymous temporary file
(`ConvertedSource`), or the whole file decoded in memory where only librosa can read it
(`ArraySource`, also the source of a waveform already in memory).

Errors are `AudioError` (a `ValueError`) whose message names the file and says what to do.
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from svt.errors import SvtUserError
from svt.fileio import atomic_path

logger = logging.getLogger(__name__)

#: Sample rate of every model input and of the prepared audio.
SAMPLE_RATE = 16000
#: File extensions taken for audio when a folder is searched (`svt.transcribe_files`).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aif", ".aiff",
                  ".aifc", ".au", ".w64", ".caf")
#: Block size for streaming conversion of non-16 kHz files.
_CONVERT_BLOCK = 1 << 18
#: Below this a "sample rate" cannot carry a singing voice (its fundamentals reach 1 kHz): the
#: header is wrong, or the numbers are not audio.
MIN_SAMPLE_RATE = 4000


class AudioError(SvtUserError, ValueError):
    """An audio file that is missing or cannot be read; the message names the file."""


class SampleRateError(AudioError):
    """A file or array whose sample rate cannot be that of recorded singing."""


class NonFiniteAudioWarning(UserWarning):
    """Some samples were NaN or infinite and were set to zero; the message names the file and
    where they were."""


def non_finite_spans(bad: np.ndarray, sample_rate: int, offset: int = 0) -> list:
    """`[(first, last), ...]` sample indices (plus `offset`) of the runs where `bad` is True."""
    index = np.flatnonzero(bad)
    if len(index) == 0:
        return []
    breaks = np.flatnonzero(np.diff(index) > 1)
    firsts = np.concatenate([index[:1], index[breaks + 1]]) + offset
    lasts = np.concatenate([index[breaks], index[-1:]]) + offset
    return list(zip(firsts.tolist(), lasts.tolist()))


def describe_non_finite(where, spans, sample_rate: int, total: int | None = None) -> str:
    """The warning text for non-finite samples at `spans` (sample runs at `sample_rate`)."""
    count = sum(last - first + 1 for first, last in spans)

    def span(first, last):
        a, b = f"{first / sample_rate:.3f}", f"{(last + 1) / sample_rate:.3f}"
        return f"{a} s" if a == b else f"{a}-{b} s"

    shown = ", ".join(span(*s) for s in spans[:5])
    more = f" and {len(spans) - 5} more span(s)" if len(spans) > 5 else ""
    of = f" of {total}" if total is not None else ""
    return (f"{where}: {count}{of} samples are NaN or infinite (at {shown}{more}); they were set "
            "to zero so the rest of the file can be used. Check how the file was made.")


def report_non_finite(where, spans, sample_rate: int, total: int | None = None,
                      stacklevel: int = 3) -> None:
    """Refuse (AudioError) a whole file of `total` samples whose non-finite `spans` cover it all:
    it is damaged, not silent; otherwise warn once (`NonFiniteAudioWarning`) where they are."""
    if not spans:
        return
    if total is not None and sum(last - first + 1 for first, last in spans) == total:
        raise AudioError(f"{where}: every sample is NaN or infinite: the file is damaged (not "
                         "silent); re-export or re-record it")
    warnings.warn(describe_non_finite(where, spans, sample_rate, total), NonFiniteAudioWarning,
                  stacklevel=stacklevel + 1)


def zero_non_finite(wav: np.ndarray, where, sample_rate: int, offset: int = 0,
                    whole_file: bool = False, warn: bool = True) -> np.ndarray:
    """`wav` with NaN/inf samples set to zero, warning (`NonFiniteAudioWarning`) where they were.

    Models spread one NaN over every frame that sees it (a 5-s chunk loses all its notes), so
    they are zeroed where the audio enters. A whole file (`whole_file`) with no finite sample at
    all is refused: it is damaged, not silent."""
    bad = ~np.isfinite(wav)
    if not bad.any():
        return wav
    if warn or (whole_file and bad.all()):
        spans = non_finite_spans(bad.any(axis=-1) if bad.ndim > 1 else bad, sample_rate, offset)
        report_non_finite(where, spans, sample_rate, len(wav) if whole_file else None)
    wav = np.array(wav, copy=True)
    wav[bad] = 0.0
    return wav


#: The most channels an audio array may have (the shorter axis of a 2-D array).
MAX_CHANNELS = 256


def mono_waveform(audio, sample_rate, where="the waveform") -> tuple[np.ndarray, int]:
    """`(mono float32 samples, sample rate)` from an array a caller passed, checked before any
    work: a positive whole sample rate; a 1-D array or 2-D with channels on either axis (the
    shorter one, at most MAX_CHANNELS, `(samples, channels)` as soundfile gives or `(channels,
    samples)` as librosa and torchaudio give); integer PCM scaled to [-1, 1) as soundfile does;
    NaN/inf zeroed (`zero_non_finite`)."""
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0 and rate == int(rate)):
        raise AudioError(f"{where}: sample_rate must be a positive whole number of samples per "
                         f"second, got {sample_rate!r}")
    rate = int(rate)
    if rate < MIN_SAMPLE_RATE:
        raise SampleRateError(f"{where}: sample_rate {rate} is too low to hold singing (at least "
                         f"{MIN_SAMPLE_RATE} samples per second); pass the rate the samples were "
                         "recorded at")
    array = np.asarray(audio)
    if array.dtype.kind == "u":  # unsigned PCM (8-bit WAV) is centred on half its range
        half = 2.0 ** (8 * array.dtype.itemsize - 1)
        array = (array.astype(np.float64) - half) / half
    elif array.dtype.kind == "i":
        array = array / 2.0 ** (8 * array.dtype.itemsize - 1)
    elif array.dtype.kind != "f":
        raise AudioError(f"{where}: expected audio samples (float or integer PCM), got an array "
                         f"of {array.dtype}")
    if array.ndim == 2:
        if array.size == 0:
            raise AudioError(f"{where}: the array of shape {array.shape} holds no samples")
        # (samples, channels) as soundfile returns, or (channels, samples) as librosa and
        # torchaudio do: the channels are the shorter axis.
        rows, cols = array.shape
        if rows == cols or min(rows, cols) > MAX_CHANNELS:
            raise AudioError(f"{where}: cannot tell channels from samples in shape {array.shape}; "
                             f"pass a 1-D mono array, or at most {MAX_CHANNELS} channels on the "
                             "shorter axis")
        axis = 1 if cols < rows else 0
        array = array.mean(axis=axis)
    elif array.ndim != 1:
        raise AudioError(f"{where}: expected a 1-D mono or 2-D multichannel array, got shape "
                         f"{array.shape}")
    wav = zero_non_finite(array.astype(np.float32), where, rate, whole_file=True)
    return wav, rate


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
    if info.samplerate < MIN_SAMPLE_RATE:
        raise SampleRateError(f"{path}: its header says {info.samplerate} samples per second, too few "
                         f"to hold singing (at least {MIN_SAMPLE_RATE}); the header is wrong or "
                         "the file is not audio: re-export it")
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
               stop: int | None = None, warn_non_finite: bool = True) -> np.ndarray:
    """Mono float32 waveform of `path` at `sample_rate` (None: the file's own rate).

    `start`/`stop` select samples `[start, stop)` at the output rate. When the file already has that
    rate they are the file's own sample indices and only that slice is read from disk. Otherwise the
    whole file is read, resampled, then sliced, so a slice always equals the same samples of the
    whole resampled file. Several channels are averaged to mono. NaN/inf samples are set to zero
    (`zero_non_finite`: a warning naming the file and the time span unless `warn_non_finite` is
    False; an AudioError when a whole file has no finite sample).
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
    # Before mixing and resampling, which would spread a NaN over its neighbours.
    wav = zero_non_finite(wav, path, file_rate, offset=(start or 0) if partial else 0,
                          whole_file=not partial or (not start and stop is None),
                          warn=warn_non_finite)
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


# ------------------------------------------------------------------------------ audio sources

class ArraySource:
    """A 16 kHz mono waveform in memory."""

    def __init__(self, wav):
        self.wav = np.asarray(wav, dtype=np.float32)
        if self.wav.ndim != 1:
            raise ValueError(f"expected a mono 1-D waveform, got shape {self.wav.shape}")
        self.num_samples = len(self.wav)

    def read(self, start, stop):
        return self.wav[start:stop]

    def close(self):
        pass


class FileSource:
    """A 16 kHz mono audio file read slice by slice (only the requested samples are read).

    NaN/inf samples read as zeros; `open_audio` has warned about them once for the whole file."""

    def __init__(self, path):
        self.path = str(path)
        self.num_samples = sf.info(self.path).frames

    def read(self, start, stop):
        return read_audio(self.path, SAMPLE_RATE, start=start, stop=stop, warn_non_finite=False)

    def close(self):
        pass


class ConvertedSource:
    """A 16 kHz mono copy of another file, held in an anonymous temporary file (`open_audio`).

    The copy has no name in the file system (POSIX), so nothing is left behind however the process
    ends, SIGKILL included; where the OS cannot do that, it is deleted on close."""

    def __init__(self, handle):
        self.handle = handle
        # Through the descriptor, not the file object: libsndfile then reads in C, without the
        # Python callbacks in which a Ctrl-C would be swallowed.
        os.lseek(handle.fileno(), 0, os.SEEK_SET)
        self.reader = sf.SoundFile(handle.fileno(), closefd=False)
        self.num_samples = self.reader.frames

    def read(self, start, stop):
        self.reader.seek(start)
        return self.reader.read(max(stop - start, 0), dtype="float32")

    def close(self):
        self.reader.close()
        self.handle.close()


def _blocks(path):
    """`(first_sample, block)` over an audio file, float32 `(n, channels)` blocks."""
    first = 0
    for block in sf.blocks(str(path), blocksize=_CONVERT_BLOCK, dtype="float32", always_2d=True):
        yield first, block
        first += len(block)


def _merge_spans(spans):
    """Join runs that continue across block borders."""
    merged = []
    for first, last in spans:
        if merged and first == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _scan_non_finite(path, rate, total):
    """Check a 16 kHz mono file for NaN/inf samples before transcribing it (float files only:
    integer PCM cannot hold them)."""
    if not sf.info(str(path)).subtype.startswith(("FLOAT", "DOUBLE")):
        return
    spans = []
    for first, block in _blocks(path):
        spans += non_finite_spans(~np.isfinite(block).all(axis=1), rate, first)
    report_non_finite(path, _merge_spans(spans), rate, total)


def _convert_to_temporary_16k(path, rate, channels):
    """Stream-convert `path` to 16 kHz mono float samples in an anonymous temporary file (bounded
    memory); returns the open file. NaN/inf samples are zeroed before resampling, which would
    spread them."""
    import soxr

    handle = tempfile.TemporaryFile(prefix="svt-16k-", suffix=".wav")
    spans, total = [], 0
    try:
        resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
        with sf.SoundFile(handle.fileno(), "w", SAMPLE_RATE, 1, subtype="FLOAT", format="WAV",
                          closefd=False) as out:
            for first, block in _blocks(path):
                bad = ~np.isfinite(block)
                if bad.any():
                    spans += non_finite_spans(bad.any(axis=1), rate, first)
                    block = np.where(bad, np.float32(0), block)
                total = first + len(block)
                out.write(resampler.resample_chunk(block.mean(axis=1)))
            out.write(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        report_non_finite(path, _merge_spans(spans), rate, total)
    except BaseException:
        handle.close()
        raise
    return handle


def open_audio(path):
    """A chunk-readable 16 kHz mono source for any audio file soundfile (or librosa) decodes."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: a folder, not an audio file; pass its files one by one "
                         "(svt-transcribe takes folders)" if path.is_dir()
                         else f"{path}: no such audio file")
    try:
        rate, _, channels = audio_info(path)
    except SampleRateError:
        raise  # read fine, but its rate is no audio rate: no other decoder will do better
    except AudioError:
        # Formats libsndfile cannot read (e.g. mp3/m4a without its MPEG support) go through
        # librosa's decoders, whole file in memory.
        try:
            import librosa

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                wav, _ = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
        except Exception as err:
            detail = f" ({type(err).__name__}: {err})" if str(err) else ""
            raise AudioError(f"{path}: not a readable audio file{detail}: neither libsndfile "
                             "nor librosa's decoders can open it; convert it to WAV or FLAC, or "
                             "install ffmpeg for other formats") from None
        return ArraySource(zero_non_finite(wav, path, SAMPLE_RATE, whole_file=True))
    if rate == SAMPLE_RATE and channels == 1:
        _scan_non_finite(path, rate, sf.info(str(path)).frames)
        return FileSource(path)
    return ConvertedSource(_convert_to_temporary_16k(path, rate, channels))
