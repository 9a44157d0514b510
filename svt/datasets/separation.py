"""Source separation: the singing voice of a mixture, for datasets that ship mixtures only.

Preparation needs the vocals alone. A dataset whose song folders may hold a `Mixture.*` file
instead of `vocals.wav` (MIR-ST500 with `--separate`) gets them from demucs (`separate_vocals`,
written as 16 kHz mono under the preparation folder). demucs is optional: a preparation that would
need it checks for it before any work (`check_separation_available`), and the messages of songs
without vocals name the remedies that exist (`SEPARATION_HELP`, or `VOCALS_HELP` for a dataset
whose preparation does not separate).
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from svt.audio import SAMPLE_RATE, resample, write_audio
from svt.data.utterances import PrepareError

logger = logging.getLogger(__name__)

#: What to do about a song with a mixture but no vocals, for a dataset that can separate.
SEPARATION_HELP = (
    "vocals are required: preparation needs the singing voice alone. Either install demucs "
    "(`pip install demucs`) and pass --separate (separate=True) to extract the vocals from "
    "Mixture.*, or put the separated vocals at <song>/vocals.wav yourself (any sample rate and "
    "number of channels: it is converted to 16 kHz mono)")
#: The same for a dataset whose preparation does not separate (N20EMv2, converted layouts).
VOCALS_HELP = (
    "vocals are required: preparation needs the singing voice alone; put the separated vocals "
    "at <song>/vocals.wav (e.g. made with demucs; any sample rate and number of channels: it is "
    "converted to 16 kHz mono)")


def demucs_available() -> bool:
    """Whether demucs can be imported (without importing it: it loads torch and its models)."""
    return importlib.util.find_spec("demucs") is not None


def check_separation_available(sources, dataset: str) -> None:
    """Before any work: PrepareError (naming the songs and SEPARATION_HELP) when some of
    `sources` (`svt.datasets.layout.SongSource`) have only a mixture and demucs is not
    installed, instead of failing at the first such song mid-preparation."""
    needing = [s.song for s in sources if s.mixture is not None]
    if needing and not demucs_available():
        raise PrepareError(f"{dataset}: {len(needing)} song(s) have only a mixture "
                           f"({', '.join(needing[:10])}{' ...' if len(needing) > 10 else ''}) and "
                           f"demucs is not installed. {SEPARATION_HELP}")


def separate_vocals(mixture_path, out_path, model: str = "htdemucs", device: str | None = None) \
        -> Path:
    """Extract the vocals of a mixture with demucs and write them as 16 kHz mono WAV to `out_path`.

    Raises PrepareError explaining the alternatives when demucs is not installed. The mixture must
    be readable by soundfile (WAV, FLAC, OGG, MP3); convert other formats (m4a) with ffmpeg first.
    """
    if not demucs_available():
        raise PrepareError(f"{mixture_path}: cannot separate the vocals, demucs is not installed. "
                           f"{SEPARATION_HELP}")
    import soundfile as sf
    import torch
    from demucs.apply import apply_model
    from demucs.pretrained import get_model

    try:
        mix, rate = sf.read(str(mixture_path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise PrepareError(f"{mixture_path}: cannot read the mixture ({err}); convert it to WAV "
                           "(`ffmpeg -i IN OUT.wav`)") from None
    separator = get_model(model)
    separator.eval()
    mix = mix.T  # (channels, n)
    if mix.shape[0] == 1:
        mix = np.repeat(mix, separator.audio_channels, axis=0)
    mix = mix[: separator.audio_channels]
    mix = resample(mix, rate, separator.samplerate)
    wav = torch.from_numpy(np.ascontiguousarray(mix))
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    with torch.no_grad():
        stems = apply_model(separator, ((wav - mean) / std)[None], device=device, split=True,
                            overlap=0.25)[0]
    vocals = stems[separator.sources.index("vocals")] * std + mean
    vocals = resample(vocals.mean(0).cpu().numpy(), separator.samplerate, SAMPLE_RATE)
    write_audio(out_path, vocals, SAMPLE_RATE)
    logger.info("separated the vocals of %s with demucs %s: %s", mixture_path, model, out_path)
    return Path(out_path)
