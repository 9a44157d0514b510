"""Source separation: the singing voice of a mixture, for datasets that ship mixtures only.

Preparation needs the vocals alone. A dataset whose song folders may hold a `Mixture.*` file
instead of `vocals.wav` (MIR-ST500 with `--separate`) gets them from Demucs (`separate_vocals`,
written as 16 kHz mono under the preparation folder) through `svt.inference.separation`, the
separation `svt-transcribe --separate` runs: window by window in bounded memory, deterministic
(demucs' `apply_model` with `shifts=0`, no random shift: the same mixture always gives the same
vocals), the model loaded once for all songs (`preparation_separator`). demucs is optional: a
preparation that would need it checks before any work (`check_separation_available`) that it is
installed and that its weights are cached or can be downloaded now (offline with nothing cached:
what to download and where to put it), and the messages of songs without vocals name the remedies
that exist (`SEPARATION_HELP`, or `VOCALS_HELP` for a dataset whose preparation does not
separate).
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from svt.audio import SAMPLE_RATE, write_audio
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


#: The Demucs model preparation separates with (demucs' pretrained Hybrid Transformer Demucs).
DEFAULT_MODEL = "htdemucs"

#: The separator loaded for preparation: `(model name or path, device, model)`, one at a time.
_LOADED = None


def demucs_available() -> bool:
    """Whether demucs can be imported (without importing it: it loads torch and its models)."""
    return importlib.util.find_spec("demucs") is not None


def check_separation_available(sources, dataset: str, model: str = DEFAULT_MODEL) -> None:
    """Before any work: PrepareError (naming the songs and what to do) when some of `sources`
    (`svt.datasets.layout.SongSource`) have only a mixture and demucs is not installed
    (SEPARATION_HELP), or the Demucs `model`'s weights are neither cached nor downloadable now
    (`svt.inference.separation.check_separation_available`: the URL of each file and where to
    put it), instead of failing at the first such song mid-preparation. Downloads nothing."""
    needing = [s.song for s in sources if s.mixture is not None]
    if not needing:
        return
    songs = f"{', '.join(needing[:10])}{' ...' if len(needing) > 10 else ''}"
    if not demucs_available():
        raise PrepareError(f"{dataset}: {len(needing)} song(s) have only a mixture "
                           f"({songs}) and demucs is not installed. {SEPARATION_HELP}")
    from svt.inference.separation import SeparationError
    from svt.inference.separation import check_separation_available as check_model

    try:
        check_model(model)
    except SeparationError as err:
        raise PrepareError(f"{dataset}: {len(needing)} song(s) have only a mixture ({songs}) "
                           f"to separate, but {err}") from None


def preparation_separator(model=DEFAULT_MODEL, device: str | None = None):
    """The Demucs separator for `separate_vocals`, loaded on first use and kept for the next songs
    (one at a time: asking for another model or device replaces it; `release_separator` frees
    it). `device` None: a GPU when there is one. PrepareError when it cannot be loaded."""
    global _LOADED
    import torch

    from svt.inference.separation import SeparationError, load_separation_model

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        if not isinstance(model, (str, os.PathLike)):  # already loaded: checked, moved
            return load_separation_model(model, device=device)
        key = (os.fspath(model), str(device))
        if _LOADED is None or _LOADED[:2] != key:
            _LOADED = None
            _LOADED = (*key, load_separation_model(model, device=device))
    except SeparationError as err:
        raise PrepareError(f"cannot load the separation model: {err}") from None
    return _LOADED[2]


def release_separator() -> None:
    """Forget the separator `preparation_separator` keeps (its memory is freed once unused)."""
    global _LOADED
    _LOADED = None


def separate_vocals(mixture_path, out_path, model: str = DEFAULT_MODEL,
                    device: str | None = None) -> Path:
    """Extract the vocals of a mixture with Demucs and write them as 16 kHz mono WAV to
    `out_path` (`svt.inference.separation.separate_file`: deterministic, bounded memory; the model
    is loaded once, `preparation_separator`).

    `model`: a pretrained Demucs name (default `htdemucs`, downloaded by demucs on first use and
    cached) or a local model file or folder. Raises PrepareError explaining the alternatives when
    demucs is not installed, and naming the mixture when it cannot be read or separated. The
    mixture must be readable by soundfile (WAV, FLAC, OGG, MP3); convert other formats (m4a) with
    ffmpeg first.
    """
    if not demucs_available():
        raise PrepareError(f"{mixture_path}: cannot separate the vocals, demucs is not installed. "
                           f"{SEPARATION_HELP}")
    from svt.audio import AudioError
    from svt.inference.separation import SeparationError, separate_file

    separator = preparation_separator(model, device)
    try:
        vocals = separate_file(mixture_path, separator, output_rate=SAMPLE_RATE)
    except AudioError as err:
        message = str(err)
        if str(mixture_path) not in message:
            message = f"{mixture_path}: {message}"
        raise PrepareError(f"cannot read the mixture: {message}") from None
    except SeparationError as err:
        raise PrepareError(f"{mixture_path}: cannot separate the vocals ({err})") from None
    write_audio(out_path, vocals, SAMPLE_RATE)
    logger.info("separated the vocals of %s with demucs %s: %s", mixture_path, model, out_path)
    return Path(out_path)
