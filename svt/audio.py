"""Reading, writing and converting audio files.

`torchaudio.load/save` need TorchCodec in torchaudio >= 2.9, so files are read and written with
`soundfile` (WAV, FLAC, OGG, ...) and resampled with soxr (whose memory does not depend on the
ratio of the rates, unlike a polyphase filter's at rates like 16,001 Hz). Every model
in the toolkit takes 16 kHz mono float32 audio; `read_audio` delivers it from any file soundfile
reads. For recordings of any length, `open_audio` gives a source read slice by slice
(`read(start, stop)`, `num_samples`, `close()`): the file itself when it is 16 kHz mono
(`FileSource`), else a 16 kHz mono copy converted in blocks into an anonymous temporary file
(`ConvertedSource`), or the whole file decoded in memory where only librosa can read it
(`ArraySource`, also the source of a waveform already in memory).

Errors are `AudioError` (a `ValueError`) whose message names the file and says what to do.
Where audio enters (files, arrays) it is also checked for what would silently give wrong notes:
sample rates outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE are refused; float samples above full scale
are scaled down to it with an `AudioLevelWarning` (the pitch network clamps to [-1, 1]), and float
samples far above it (unscaled integer PCM in a float array or file) are refused; a WAV whose
header claims more frames than the file holds is read for the part that exists with a
`TruncatedAudioWarning` naming both lengths.
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
#: Above this no recording's rate lies (768 kHz is the highest rate audio interfaces offer):
#: the header or the argument is wrong.
MAX_SAMPLE_RATE = 768000
#: Float samples beyond full scale (1.0) up to this peak are scaled down to full scale with a
#: warning (float exports of hot mixes reach a few times full scale, +12 dBFS); above it (+24
#: dBFS) the numbers are taken for unscaled integer PCM (16-bit PCM of any audible singing peaks
#: in the hundreds or thousands), which is refused with the remedy.
PCM_LIKE_PEAK = 16.0


class AudioError(SvtUserError, ValueError):
    """An audio file that is missing or cannot be read; the message names the file."""


class SampleRateError(AudioError):
    """A file or array whose sample rate cannot be that of recorded singing."""


class NonFiniteAudioWarning(UserWarning):
    """Some samples were NaN or infinite and were set to zero; the message names the file and
    where they were."""


class AudioInputWarning(UserWarning):
    """Audio that was used, but not as it came: the message names the file and what was done."""


class AudioLevelWarning(AudioInputWarning):
    """Float samples above full scale were scaled down to it; the message names the file and the
    peak (dBFS)."""


class TruncatedAudioWarning(AudioInputWarning):
    """A file holds fewer samples than its header claims (a truncated copy or download); the part
    that exists was used and the message names the file and both lengths."""


def pcm_as_float(array: np.ndarray):
    """Integer PCM scaled to [-1, 1) (unsigned PCM, as in 8-bit WAV, is centred on half its
    range); float arrays as they are; None for any other dtype (not audio samples)."""
    if array.dtype.kind == "u":
        half = 2.0 ** (8 * array.dtype.itemsize - 1)
        return (array.astype(np.float64) - half) / half
    if array.dtype.kind == "i":
        return array / 2.0 ** (8 * array.dtype.itemsize - 1)
    return array if array.dtype.kind == "f" else None


def check_sample_rate(rate, where, what="sample_rate") -> None:
    """Refuse (SampleRateError) a whole-number rate outside MIN_SAMPLE_RATE..MAX_SAMPLE_RATE."""
    if rate < MIN_SAMPLE_RATE:
        raise SampleRateError(f"{where}: {what} {rate} is too low to hold singing (at least "
                              f"{MIN_SAMPLE_RATE} samples per second); pass the rate the samples "
                              "were recorded at")
    if rate > MAX_SAMPLE_RATE:
        raise SampleRateError(f"{where}: {what} {rate:g} is above any recording's rate (at most "
                              f"{MAX_SAMPLE_RATE} samples per second); pass the rate the samples "
                              "were recorded at, or fix the file's header")


def level_gain(peak: float, where) -> float:
    """The factor float samples peaking at `peak` are multiplied by: 1 up to full scale; above it,
    1 / peak with an AudioLevelWarning naming `where` and the peak in dBFS (the pitch network
    clamps samples to [-1, 1], hard-clipping louder ones: a float WAV peaking at 1.5 lost 40 % of
    its correct notes); an AudioError above PCM_LIKE_PEAK, where the numbers are integer PCM
    that was never scaled."""
    peak = float(peak)
    if not peak > 1.0:
        return 1.0
    if peak > PCM_LIKE_PEAK:
        raise AudioError(
            f"{where}: float samples reach {peak:.6g}, but float audio lies within [-1, 1]: this "
            "looks like unscaled integer PCM (16-bit values stored as floats); divide the "
            "samples by 32768 (24-bit: 8388608, 32-bit: 2147483648), or pass the integer array "
            "as it is")
    warnings.warn(f"{where}: float samples peak at {peak:.4g} ({20 * np.log10(peak):+.1f} dBFS), "
                  "above full scale; scaled down to full scale so that the model does not clip "
                  "them (re-export the file at a lower level to silence this warning)",
                  AudioLevelWarning, stacklevel=3)
    return 1.0 / peak


def _data_chunk_frames(path, block_align_fallback=None) -> int | None:
    """The frames a RIFF/RIFX WAV header's `data` chunk claims (None for other files, streamed
    files whose header leaves the length open, or headers that cannot be parsed)."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            endian = "<" if head[:4] == b"RIFF" else ">"
            block_align = None
            for _ in range(64):  # chunk headers before `data`
                header = f.read(8)
                if len(header) < 8:
                    return None
                chunk_id, size = header[:4], struct.unpack(endian + "I", header[4:])[0]
                if chunk_id == b"fmt ":
                    fmt = f.read(min(size, 16))
                    if len(fmt) < 14:
                        return None
                    block_align = struct.unpack(endian + "H", fmt[12:14])[0]
                    f.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                elif chunk_id == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except (OSError, ValueError):
        return None
    return None


def check_truncated(path, frames_read: int, header_frames: int | None = None,
                    rate: int | None = None) -> None:
    """Warn (TruncatedAudioWarning) when `path` holds fewer frames than its header claims: the
    `data` chunk of a WAV (libsndfile quietly shortens it to what is there) or `header_frames`
    (what the header reported before reading)."""
    claimed = _data_chunk_frames(path)
    if header_frames is not None and header_frames > (claimed or 0):
        claimed = header_frames
    if claimed is None or claimed <= frames_read:
        return
    seconds = "" if not rate else (f" ({frames_read / rate:.3f} s of the {claimed / rate:.3f} s "
                                   "claimed)")
    warnings.warn(f"{path}: the header claims {claimed} frames but the file holds {frames_read}"
                  f"{seconds}: it is truncated (an interrupted copy, download or recording); the "
                  "part that exists is transcribed. Get a complete copy of the file",
                  TruncatedAudioWarning, stacklevel=3)


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
    if rate > MAX_SAMPLE_RATE:
        check_sample_rate(rate, where)
    rate = int(rate)
    check_sample_rate(rate, where)
    array = np.asarray(audio)
    is_float = array.dtype.kind == "f"
    array = pcm_as_float(array)
    if array is None:
        raise AudioError(f"{where}: expected audio samples (float or integer PCM), got an array "
                         f"of {np.asarray(audio).dtype}")
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
    if is_float and len(wav):
        gain = level_gain(np.max(np.abs(wav)), where)
        if gain != 1.0:
            wav = wav * np.float32(gain)
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
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise SampleRateError(f"{path}: its header says {info.samplerate} samples per second, "
                              f"outside the rates of recorded singing ({MIN_SAMPLE_RATE} to "
                              f"{MAX_SAMPLE_RATE}); the header is wrong or the file is not audio: "
                              "re-export it")
    return int(info.samplerate), int(info.frames), int(info.channels)


def resample(wav: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Resample a 1-D (or `(channels, n)`) float array with soxr (high quality), in memory that
    does not grow with the ratio of the rates (a polyphase or sinc-table resampler needs tables of
    size ~ the reduced rates: 4.9 GiB for 16,001 -> 16,000 Hz). Both rates must lie within
    MIN_SAMPLE_RATE..MAX_SAMPLE_RATE."""
    orig_rate, new_rate = int(orig_rate), int(new_rate)
    if orig_rate == new_rate:
        return np.asarray(wav, dtype=np.float32)
    for rate in (orig_rate, new_rate):
        check_sample_rate(rate, "resample")
    import soxr

    array = np.ascontiguousarray(wav, dtype=np.float32)
    if array.ndim == 2:  # (channels, n) -> soxr's (n, channels) and back
        return np.ascontiguousarray(soxr.resample(array.T, orig_rate, new_rate).T)
    return soxr.resample(array, orig_rate, new_rate)


def read_audio(path, sample_rate: int | None = SAMPLE_RATE, start: int | None = None,
               stop: int | None = None, warn_non_finite: bool = True,
               check_level: bool = True) -> np.ndarray:
    """Mono float32 waveform of `path` at `sample_rate` (None: the file's own rate).

    `start`/`stop` select samples `[start, stop)` at the output rate. When the file already has that
    rate they are the file's own sample indices and only that slice is read from disk. Otherwise the
    whole file is read, resampled, then sliced, so a slice always equals the same samples of the
    whole resampled file. Several channels are averaged to mono. NaN/inf samples are set to zero
    (`zero_non_finite`: a warning naming the file and the time span unless `warn_non_finite` is
    False; an AudioError when a whole file has no finite sample). Float samples above full scale
    are scaled down to it by the whole file's peak, a slice too (`level_gain`, unless
    `check_level` is False), and a WAV shorter than its header says is read
    with a TruncatedAudioWarning.
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
    whole = not partial or (not start and stop is None)
    if whole and warn_non_finite:
        check_truncated(path, len(wav), rate=file_rate)
    if check_level and len(wav) and _is_float_file(path):
        # A slice is scaled by the whole file's gain, so that every utterance of a training song
        # hears the level `svt.transcribe` hears (the peak of the mono mix, non-finite samples
        # zeroed, as above).
        gain = level_gain(np.max(np.abs(wav)) if whole else _float_file_peak(path), path)
        if gain != 1.0:
            wav = wav * np.float32(gain)
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

#: Peaks of float files read in slices, by (path, size, mtime): scanned once per process.
_FLOAT_PEAKS: dict = {}
def _float_file_peak(path) -> float:
    """The peak of a float file's mono mix (non-finite samples as zero), read block by block
    (bounded memory for any length)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FLOAT_PEAKS:
        peak = 0.0
        for _, block in _blocks(path):
            block = np.where(np.isfinite(block), block, np.float32(0.0))
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if len(mono):
                peak = max(peak, float(np.max(np.abs(mono))))
        if len(_FLOAT_PEAKS) > 4096:  # a bound on the cache, not a policy
            _FLOAT_PEAKS.clear()
        _FLOAT_PEAKS[key] = peak
    return _FLOAT_PEAKS[key]


def _is_float_file(path) -> bool:
    """Whether a file holds float samples (which, unlike integer PCM, can exceed full scale)."""
    try:
        return sf.info(str(path)).subtype.startswith(("FLOAT", "DOUBLE"))
    except (RuntimeError, sf.LibsndfileError):
        return False


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

    NaN/inf samples read as zeros; `open_audio` has warned about them once for the whole file.
    `gain` scales every sample (float files above full scale, `level_gain`)."""

    def __init__(self, path, gain: float = 1.0):
        self.path = str(path)
        self.num_samples = sf.info(self.path).frames
        self.gain = np.float32(gain)

    def read(self, start, stop):
        wav = read_audio(self.path, SAMPLE_RATE, start=start, stop=stop, warn_non_finite=False,
                         check_level=False)
        return wav if self.gain == 1 else wav * self.gain

    def close(self):
        pass


class ConvertedSource:
    """A 16 kHz mono copy of another file, held in an anonymous temporary file (`open_audio`).

    The copy has no name in the file system (POSIX), so nothing is left behind however the process
    ends, SIGKILL included; where the OS cannot do that, it is deleted on close."""

    def __init__(self, handle, gain: float = 1.0):
        self.handle = handle
        self.gain = np.float32(gain)
        # Through the descriptor, not the file object: libsndfile then reads in C, without the
        # Python callbacks in which a Ctrl-C would be swallowed.
        os.lseek(handle.fileno(), 0, os.SEEK_SET)
        self.reader = sf.SoundFile(handle.fileno(), closefd=False)
        self.num_samples = self.reader.frames

    def read(self, start, stop):
        self.reader.seek(start)
        wav = self.reader.read(max(stop - start, 0), dtype="float32")
        return wav if self.gain == 1 else wav * self.gain

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


def _scan_non_finite(path, rate, total) -> float:
    """Check a 16 kHz mono file for NaN/inf samples before transcribing it, and its level (float
    files only: integer PCM cannot hold them nor exceed full scale); the gain to read it with
    (`level_gain`)."""
    if not _is_float_file(path):
        return 1.0
    spans, peak = [], 0.0
    for first, block in _blocks(path):
        finite = np.isfinite(block)
        spans += non_finite_spans(~finite.all(axis=1), rate, first)
        if finite.any():
            peak = max(peak, float(np.max(np.abs(block[finite]))))
    report_non_finite(path, _merge_spans(spans), rate, total)
    return level_gain(peak, path)


def _convert_to_temporary_16k(path, rate, channels, frames=None):
    """Stream-convert `path` to 16 kHz mono float samples in an anonymous temporary file (bounded
    memory); returns `(the open file, the gain to read it with)` (`level_gain` of a float file's
    peak). NaN/inf samples are zeroed before resampling, which would spread them. A file holding
    fewer than the `frames` its header claims is a TruncatedAudioWarning."""
    import soxr

    handle = tempfile.TemporaryFile(prefix="svt-16k-", suffix=".wav")
    spans, total, peak = [], 0, 0.0
    is_float = _is_float_file(path)
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
                mono = block.mean(axis=1)
                if is_float and len(mono):
                    peak = max(peak, float(np.max(np.abs(mono))))
                out.write(resampler.resample_chunk(mono))
            out.write(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        report_non_finite(path, _merge_spans(spans), rate, total)
        check_truncated(path, total, header_frames=frames, rate=rate)
        gain = level_gain(peak, path)
    except BaseException:
        handle.close()
        raise
    return handle, gain


def open_audio(path):
    """A chunk-readable 16 kHz mono source for any audio file soundfile (or librosa) decodes."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: a folder, not an audio file; pass its files one by one "
                         "(svt-transcribe takes folders)" if path.is_dir()
                         else f"{path}: no such audio file")
    try:
        rate, frames, channels = audio_info(path)
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
        wav = zero_non_finite(wav, path, SAMPLE_RATE, whole_file=True)
        if len(wav):  # decoders of lossy formats give floats that may exceed full scale
            wav = wav * np.float32(level_gain(np.max(np.abs(wav)), path))
        return ArraySource(wav)
    if rate == SAMPLE_RATE and channels == 1:
        check_truncated(path, frames, rate=rate)
        gain = _scan_non_finite(path, rate, sf.info(str(path)).frames)
        return FileSource(path, gain)
    return ConvertedSource(*_convert_to_temporary_16k(path, rate, channels, frames))
