"""Singing transcription of recordings of any length with a trained model bundle.

    import svt
    notes = svt.transcribe("song.wav", model="results/demo/model")      # (N, 3) [onset, offset, midi]
    notes = svt.transcribe(waveform, sample_rate=44100, model=model)
    notes = svt.transcribe("song.wav", model="av_run/model", video="lips.npy")   # audio-visual

Long recordings are cut into chunks of `chunk_seconds` whose frames are kept, each read with
`context_seconds` of extra audio on both sides so the encoder sees the surroundings of every kept
frame. Chunk starts are multiples of the encoder's hop (320 samples for wav2vec2-style encoders),
so chunk frame k is exactly global frame `start / hop + k`: the kept frames of all chunks tile the
file without gaps or overlaps, and the notes are decoded once from the stitched frame sequence, so
notes crossing a chunk border are neither doubled nor cut. Memory is bounded by the chunk size:
16 kHz mono files are read chunk by chunk; other files are first converted to a temporary 16 kHz
mono file in blocks (the audio sources of `svt.audio.open_audio`). Folders of files, with every
output written to disk, are `svt.transcribe_files` (`svt.inference.files`).

An audio-visual bundle (`svt.models.audio_visual.AudioVisualModel`) also takes the lip video (uint8 `(T, H, W)` at
50 fps, the audio encoder's frame rate): each chunk's frames, context included, are read from it
(memory-mapped), preprocessed as the video model was trained, encoded and fused with the chunk's
audio features.

Whole songs (`separate=True`): the vocals are first separated from the mix with Demucs
(`svt.inference.separation`, window by window so memory does not grow with the song beyond the
16 kHz vocals themselves), then transcribed as a 16 kHz array. The separator's weights are fetched
by demucs on first use and cached; offline with nothing cached the call stops, before the
transcriber loads, with a message naming what to download and where to put it. With an
audio-visual model the audio is separated and the lip video is used as it is.

Frame times use the encoder's true frame rate (50 frames/s for wav2vec2-style encoders: one frame
every 320 samples). The recipes' 49.8 frames/s is a property of their 5-s utterances (249 frames
each) and only applies to that evaluation protocol.
"""
from __future__ import annotations

import logging
import math
import os
import warnings

import numpy as np
import torch

from svt.audio import (
    SAMPLE_RATE,
    ArraySource,
    mono_waveform,
    open_audio,
    resample,
)
from svt.inference.bundle import (
    DEFAULT_MODEL,
    DEFAULT_PITCH_PRECISION,
    BundleError,
    TranscriptionModel,
    check_pitch_precision,
    is_finite_number,
    load_bundle,
    modality_mismatch,
)
from svt.models.head import frame_predictions
from svt.notes.decoding import decode_frames

logger = logging.getLogger(__name__)

#: Chunks default to the bundle's training utterance length (5 s in the paper's recipes): models
#: trained on 5-s utterances transcribe best when they see windows of about that size.
DEFAULT_CHUNK_SECONDS = 5.0
DEFAULT_CONTEXT_SECONDS = 0.5
#: Accepted kept audio per chunk (seconds): below 1 s the encoder runs once per few frames
#: (`--chunk-seconds 0.001` would take hours), above 60 s a chunk's memory grows with the
#: recording instead of staying bounded (the models were trained on 5-s utterances).
CHUNK_SECONDS_RANGE = (1.0, 60.0)
#: Accepted extra audio read on each side of a chunk (seconds): a frame's useful context is well
#: under a second; 1e6 s made every chunk read and encode the whole file.
CONTEXT_SECONDS_RANGE = (0.0, 5.0)


class SilentInputWarning(UserWarning):
    """The input produced no notes (empty, silent, or no singing found)."""


# ------------------------------------------------------------------------------ frame prediction

def _encoder_geometry(model: TranscriptionModel):
    encoder = model.encoder
    hop = int(round(encoder.sample_rate / encoder.frame_rate))
    return encoder, hop


@torch.no_grad()
def predict_frames(model: TranscriptionModel, source, chunk_seconds=None,
                   context_seconds=DEFAULT_CONTEXT_SECONDS, batch_size=None, progress=None,
                   video=None):
    """Decoder inputs `(onset_prob, offset_prob, octave, pitch_class)` for a whole source, computed
    chunk by chunk; frame i is at time i / encoder.frame_rate.

    `video` (audio-visual models): the lip video, uint8 `(T, H, W)` at the audio encoder's frame
    rate (an array or a memory map; only each chunk's frames are read). Chunk frames
    `[start - context, stop + context)` of the video go with the same frames of the audio."""
    encoder, hop = _encoder_geometry(model)
    if batch_size is None:
        batch_size = int(getattr(encoder, "inference_batch_size", 4))
    transform = model.video_transform() if video is not None else None
    if chunk_seconds is None:
        # A bundle's training utterance length, kept within the accepted chunk sizes.
        chunk_seconds = float(np.clip(model.settings.get("dur_threshold", DEFAULT_CHUNK_SECONDS),
                                      *CHUNK_SECONDS_RANGE))
    total_frames = max(int(encoder.num_frames(source.num_samples)), 0)
    empty = (np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
             np.zeros(0, np.int64))
    if encoder.sung_pitch is not None:
        empty += (np.zeros(0, np.float32),)
    if total_frames == 0 or source.num_samples == 0:
        return empty
    chunk_frames = max(1, int(round(chunk_seconds * encoder.frame_rate)))
    context_frames = max(0, int(math.ceil(context_seconds * encoder.frame_rate)))
    receptive = _receptive_field(encoder)
    starts = list(range(0, total_frames, chunk_frames))
    device = next(model.parameters()).device
    outputs = [np.zeros(total_frames, e.dtype) for e in empty]
    bar = progress(total=len(starts), unit="chunk", leave=False) if progress else None
    for first in range(0, len(starts), batch_size):
        batch = []
        for start in starts[first:first + batch_size]:
            stop = min(start + chunk_frames, total_frames)
            read_from = max(0, start - context_frames)
            last_frame = min(stop + context_frames, total_frames)
            sample_start = read_from * hop
            sample_stop = min((last_frame - 1) * hop + receptive, source.num_samples)
            clip = None
            if video is not None and read_from < len(video):  # no frames past the video's end
                clip = transform(np.asarray(video[read_from:min(last_frame, len(video))]))
            batch.append((start, stop, read_from, source.read(sample_start, sample_stop), clip))
        wavs, wav_lens = _pad_batch([item[3] for item in batch])
        if video is None:
            predictions = model.frame_outputs(wavs.to(device), wav_lens.to(device))
        else:
            # A chunk starting past the video's end gets one zero frame (the encoder needs one);
            # the fusion zero-pads the rest, as the training pipeline did for a short video.
            blank = np.zeros((1, transform.crop, transform.crop), np.float32)
            videos, video_lens = _pad_batch([blank if item[4] is None else item[4]
                                             for item in batch])
            predictions = frame_predictions(model(wavs.to(device), wav_lens.to(device),
                                                  videos.to(device), video_lens.to(device)))
        predictions = [t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
                       for t in predictions]
        for b, (start, stop, read_from, _, _) in enumerate(batch):
            offset = start - read_from
            for out, pred in zip(outputs, predictions):
                out[start:stop] = pred[b, offset:offset + stop - start]
        if bar:
            bar.update(len(batch))
    if bar:
        bar.close()
    return tuple(outputs)


def _pad_batch(arrays):
    """Float arrays `(t, ...)` -> a zero-padded batch `(B, T, ...)` and relative lengths `(B,)`."""
    longest = max(len(a) for a in arrays)
    batch = torch.zeros(len(arrays), longest, *arrays[0].shape[1:])
    for b, array in enumerate(arrays):
        batch[b, :len(array)] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return batch, torch.tensor([len(a) / longest for a in arrays])


def _receptive_field(encoder) -> int:
    """Samples seen by one output frame of the conv front-end (400 for wav2vec2), or the
    encoder's own `receptive_field`."""
    if getattr(encoder, "receptive_field", None):
        return int(encoder.receptive_field)
    field = 1
    for kernel, stride in reversed(list(zip(encoder.config.conv_kernel,
                                            encoder.config.conv_stride))):
        field = (field - 1) * stride + kernel
    return field


# ------------------------------------------------------------------------------ the API

def resolve_model(model, device="cpu", modality="audio", pitch_precision=None):
    """A loaded model from a model object or a bundle / recipe output folder path. `modality`:
    "audio" (a `TranscriptionModel`) or "audio_visual" (an `svt.models.audio_visual.AudioVisualModel`).
    `pitch_precision` (None: `DEFAULT_PITCH_PRECISION`) is how a model loaded here computes its
    pitch network (`load_bundle`); a loaded model is used as it was loaded, and a
    `pitch_precision` that contradicts it is a ValueError (it would silently not apply)."""
    from svt.models.audio_visual import AudioVisualModel

    if isinstance(model, (TranscriptionModel, AudioVisualModel)):
        found = "audio_visual" if isinstance(model, AudioVisualModel) else \
            model.settings.get("modality", "audio")
        if found != modality:
            raise BundleError(f"the model is {modality_mismatch(found, modality)}")
        current = getattr(model.encoder, "pitch_precision", None)
        if pitch_precision is not None and current is not None and pitch_precision != current:
            raise ValueError(f"pitch_precision={pitch_precision!r} applies to a model loaded from "
                             f"a path; this model was loaded with {current!r}: load it with "
                             f"load_bundle(path, pitch_precision={pitch_precision!r}) or call "
                             f"model.encoder.set_pitch_precision({pitch_precision!r})")
        return model
    return load_bundle(model, device=resolve_device(device), modality=modality,
                       pitch_precision=pitch_precision or DEFAULT_PITCH_PRECISION)


def resolve_device(device="auto") -> str:
    """The torch device to run on: `auto` (a GPU when there is one), `cpu`, `cuda`, `cuda:N`,
    `mps`; a ValueError saying what is available for anything else."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a device; use auto, cpu, cuda, cuda:N or "
                         "mps") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}: no CUDA GPU is available here; use "
                             "--device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"--device {device}: this machine has {count} CUDA GPU(s) "
                             f"(cuda:0 .. cuda:{count - 1})")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: MPS is not available here; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {device}: svt runs on cpu, cuda or mps")
    return device


def check_arguments(onset_threshold, offset_threshold, chunk_seconds, context_seconds,
                    batch_size) -> None:
    """Refuse (ValueError) `transcribe`'s numbers before the model loads (the CLI's argparse types
    check the same)."""
    for name, value in (("onset_threshold", onset_threshold),
                        ("offset_threshold", offset_threshold)):
        if value is not None and not (is_finite_number(value) and 0 < value < 1):
            raise ValueError(f"transcribe: {name} must be a number between 0 and 1, got {value!r}")
    low, high = CHUNK_SECONDS_RANGE
    if chunk_seconds is not None and not (is_finite_number(chunk_seconds) and chunk_seconds > 0):
        raise ValueError(f"transcribe: chunk_seconds must be a number of seconds above 0 ({low:g} "
                         f"to {high:g}), got {chunk_seconds!r}")
    if chunk_seconds is not None and not low <= chunk_seconds <= high:
        raise ValueError(f"transcribe: chunk_seconds must be between {low:g} and {high:g} seconds "
                         f"(memory and time per chunk stay bounded), got {chunk_seconds!r}")
    low, high = CONTEXT_SECONDS_RANGE
    if not (is_finite_number(context_seconds) and context_seconds >= 0):
        raise ValueError(f"transcribe: context_seconds must be a number of seconds, 0 or more "
                         f"({low:g} to {high:g}), got {context_seconds!r}")
    if context_seconds > high:
        raise ValueError(f"transcribe: context_seconds must be between {low:g} and {high:g} "
                         f"seconds (the context read on each side of every chunk), got "
                         f"{context_seconds!r}")
    if batch_size is not None and not (isinstance(batch_size, (int, np.integer))
                                       and not isinstance(batch_size, bool) and batch_size >= 1):
        raise ValueError(f"transcribe: batch_size must be a whole number, 1 or more, got "
                         f"{batch_size!r}")


def check_separation_arguments(separate, separation_model) -> None:
    """Refuse (ValueError) a separation model given without `separate`."""
    if separation_model is not None and not separate:
        raise ValueError("transcribe: separation_model is only used with separate=True (vocal "
                         "separation); pass separate=True or leave separation_model out")


def separation_model_for(separation_model, device, check=True):
    """A loaded Demucs separator (`svt.inference.separation.load_separation_model`) from a name, a
    path or an already loaded model (used as it is, on its own device). `check`: first make sure,
    without downloading anything, that its weights can be had
    (`svt.inference.separation.check_separation_available`)."""
    from svt.inference.separation import check_separation_available, load_separation_model

    if separation_model is None or isinstance(separation_model, (str, os.PathLike)):
        if check:
            check_separation_available(separation_model)
        return load_separation_model(separation_model, device=resolve_device(device))
    try:  # already loaded: kept where it is
        device = next(separation_model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        device = resolve_device(device)
    return load_separation_model(separation_model, device=device)


def transcribe(audio, sample_rate=None, model=None, *, video=None, chunk_seconds=None,
               context_seconds=DEFAULT_CONTEXT_SECONDS, batch_size=None, device="cpu",
               progress=None, return_frames=False, onset_threshold=None,
               offset_threshold=None, separate=False, separation_model=None,
               pitch_precision=None):
    """Transcribe singing into notes `(N, 3)` float64 `[onset_s, offset_s, midi]`.

    Args:
        audio: a path to an audio file, or a waveform array (mono `(n,)` or `(n, channels)`).
        sample_rate: the waveform's rate (required for arrays; ignored for files).
        model: a loaded model or the path of a bundle / recipe output folder (None: the model
            shipped in the package, `DEFAULT_MODEL`).
        video: with an audio-visual model, the singer's lip video aligned with the audio: a
            `.npy` path or an array, uint8 `(T, H, W)` grayscale lip regions (96x96 in N20EMv2)
            at 50 frames per second, frame 0 at time 0.
        chunk_seconds, context_seconds: kept audio per chunk (default: the bundle's training
            utterance length) and extra audio read on each side of it.
        batch_size: chunks per forward pass (None: the encoder's `inference_batch_size`, 16
            for the shipped model's pitch-network encoder, 4 for the others).
        progress: a tqdm-like class for the progress bars (None: no bar).
        return_frames: also return the frame predictions `(onset, offset, octave, pitch_class)`
            (onset/offset probabilities, octave/pitch-class indices; plus the sung pitch in
            fractional MIDI, NaN where unvoiced, for models with a pitch network) on the encoder
            frame grid (`model.frame_rate` frames per second).
        onset_threshold, offset_threshold: decoding thresholds (None: the bundle's own).
        separate: a whole song (a mix): separate the vocals with Demucs first
            (`svt.inference.separation`; needs demucs) and transcribe them. With `video`, the
            audio is separated and the video used as it is.
        separation_model: with `separate`, the Demucs model: None (`htdemucs`, downloaded by
            demucs on first use and cached), a pretrained name, a local model file or folder, or
            a model loaded once with `load_separation_model` (reused over many calls).
        pitch_precision: for a model loaded from a path, how its frozen pitch network (the
            shipped model's FCPE) computes: "bfloat16" (None's choice: bfloat16 products,
            1.2-1.4x faster on a CPU with AVX-512 for the same scores) or "float32" (FCPE
            exactly as in training); see `svt.inference.bundle.load_bundle`. For a loaded
            model it must be None or what the model was loaded with.

    Raises ValueError for bad arguments (before anything loads); with `separate`,
    `svt.inference.separation.SeparationError`s (demucs missing, weights not on this machine and
    not downloadable: the message says what to download and where; an unusable model file),
    raised before the transcriber loads.
    """
    check_arguments(onset_threshold=onset_threshold, offset_threshold=offset_threshold,
                     chunk_seconds=chunk_seconds, context_seconds=context_seconds,
                     batch_size=batch_size)
    check_separation_arguments(separate, separation_model)
    if pitch_precision is not None:
        check_pitch_precision(pitch_precision)
    is_path = isinstance(audio, (str, os.PathLike))
    if not is_path and sample_rate is None:
        raise ValueError("transcribe: sample_rate is required for a waveform array")
    if model is None:
        if video is not None:
            raise ValueError("transcribe: the default model is audio-only; pass model= (an "
                             "audio-visual bundle) to use the video")
        model = DEFAULT_MODEL
    separator = separation_model_for(separation_model, device) if separate else None
    model = resolve_model(model, device, "audio" if video is None else "audio_visual",
                          pitch_precision)
    name = audio if is_path else "the waveform"
    if separator is not None:
        from svt.inference.separation import separate_file, separate_vocals

        if is_path:
            vocals = separate_file(audio, separator, progress=progress)
        else:
            vocals = separate_vocals(audio, sample_rate, separator, progress=progress)
        source = ArraySource(vocals)
        name = f"the vocals separated from {name}"
    elif is_path:
        source = open_audio(audio)
    else:
        wav, rate = mono_waveform(audio, sample_rate)
        source = ArraySource(resample(wav, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else wav)
    notes, frames = transcribe_source(
        source, model, name=name, video=video, chunk_seconds=chunk_seconds,
        context_seconds=context_seconds, batch_size=batch_size, progress=progress,
        onset_threshold=onset_threshold, offset_threshold=offset_threshold)
    return (notes, frames) if return_frames else notes


def transcribe_source(source, model, *, name="the waveform", video=None, chunk_seconds=None,
                      context_seconds=DEFAULT_CONTEXT_SECONDS, batch_size=None, progress=None,
                      onset_threshold=None, offset_threshold=None):
    """`(notes, frames)` of an opened 16 kHz mono source (`svt.audio.ArraySource`,
    `svt.audio.open_audio`) with a loaded model: what `transcribe` runs once its arguments are
    checked, its model loaded and its audio opened (or separated). The source is closed; `name`
    is how the SilentInputWarning calls the input. Arguments as `transcribe`'s."""
    try:
        if video is not None:
            from svt.data.video import VIDEO_FPS, open_video

            if abs(model.encoder.frame_rate - VIDEO_FPS) > 1e-6:
                raise ValueError(f"the audio encoder makes {model.encoder.frame_rate:g} frames/s "
                                 f"but lip videos come at {VIDEO_FPS}; they cannot be aligned")
            video = open_video(video, expected_frames=model.encoder.num_frames(source.num_samples))
        frames = predict_frames(model, source, chunk_seconds, context_seconds, batch_size,
                                progress, video=video)
    finally:
        source.close()
    if onset_threshold is None:
        onset_threshold = model.settings["onset_threshold"]
    if offset_threshold is None:
        offset_threshold = model.settings["offset_threshold"]
    notes = decode_frames(frames, model.settings.get("decoder", "paper"),
                          onset_threshold=onset_threshold, offset_threshold=offset_threshold,
                          frame_rate=model.encoder.frame_rate,
                          onset_delay=model.settings.get("onset_delay", 0.0),
                          whole_recording=True)
    # The last frame's span can reach past the audio: no note may outlast the recording.
    duration = source.num_samples / SAMPLE_RATE
    notes = notes[notes[:, 0] < duration]
    notes[:, 1] = np.minimum(notes[:, 1], duration)
    if len(notes) == 0:
        warnings.warn(f"no notes found in {name} (empty, silent, or no singing?)",
                      SilentInputWarning, stacklevel=3)
    return notes, frames
