"""The encoder interface: what every encoder (audio or video) gives the rest of the toolkit.

An encoder maps a padded batch of inputs (waveforms `(B, N)` or lip clips `(B, T, H, W)`, padded
along dim 1 as SpeechBrain batches them) and their relative lengths to features `(B, T', D)`
whose padded frames are zero. The Brain, the inference bundles and `svt.transcribe` use only the
members declared here, so a new encoder is one subclass, in any module: set `encoder_type` (which
registers the class under that name, the name bundles record) and implement the abstract members
(docs/architecture.md, "Adding an encoder or a head").

Two frame rates are kept apart everywhere:

* `FrameEncoder.frame_rate` (the *encoder frame rate*) is the nominal rate of the encoder's output
  grid: 50 frames/s for the wav2vec 2.0 family (16000 / 320), None for encoders whose output has
  one frame per input frame (AV-HuBERT on 50 fps video). Whole recordings chunked by
  `svt.transcribe` are stitched and decoded on this grid.
* The *label frame rate* (`label_frame_rate` in YAML and bundle manifests) is the rate the
  training labels were made at: 49.8 frames/s for 5-s audio utterances, because the valid
  convolutions of the wav2vec 2.0 front-end give 249 frames for 80000 samples (see
  docs/original-recipes.md §2.5). Utterance predictions (recipes' evaluation) are decoded at it.
"""
from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from svt.errors import SvtUserError
from svt.models import Registry

#: Variance floor of the per-utterance normalisation (as `layer_norm`'s default).
NORM_EPS = 1e-5


class EncoderNotAvailableError(SvtUserError, FileNotFoundError):
    """An encoder's weights or config cannot be found locally (and cannot be downloaded)."""


class FrameEncoder(nn.Module, abc.ABC):
    """Base class of every encoder; a subclass setting `encoder_type` registers itself under it."""

    #: Name stored in bundle manifests; `FrameEncoder.for_type(name)` finds the class again.
    encoder_type: ClassVar[str | None] = None
    registry: ClassVar[Registry] = Registry("encoder", "encoder_type")

    #: Encoders with a pitch network define `sung_pitch(features) -> (B, T)`: the per-frame sung
    #: pitch in fractional MIDI (NaN where unvoiced), read from their own output features; the
    #: Brain scores notes with it and transcription gives each note its sung pitch. None (the
    #: default) for encoders without one.
    sung_pitch: ClassVar[Callable[[torch.Tensor], torch.Tensor] | None] = None

    #: Chunks per forward pass when transcribing (`svt.transcribe`'s default `batch_size`): more
    #: chunks share each pass but hold more activations at once.
    inference_batch_size: ClassVar[int] = 4

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        FrameEncoder.registry.register(cls)

    @classmethod
    def for_type(cls, encoder_type: str) -> type["FrameEncoder"]:
        """The registered class for a bundle's `encoder_type` (KeyError when there is none)."""
        return FrameEncoder.registry.get(encoder_type)

    @classmethod
    def registered_types(cls) -> list[str]:
        """The names of every encoder registered (the built-in ones included)."""
        return FrameEncoder.registry.names()

    # ------------------------------------------------------------------ geometry
    @property
    @abc.abstractmethod
    def output_size(self) -> int:
        """Feature dimension D."""

    @property
    @abc.abstractmethod
    def frame_rate(self) -> float | None:
        """Encoder frame rate: nominal output frames per second, or None for one output frame per
        input frame."""

    @abc.abstractmethod
    def num_frames(self, num_inputs):
        """Exact number of output frames for `num_inputs` input samples or frames."""

    @abc.abstractmethod
    def frame_lengths(self, lens: torch.Tensor | None, num_inputs: int,
                      batch_size: int | None = None) -> torch.Tensor:
        """Valid output frames per item (long tensor) of a padded batch of `num_inputs`."""

    # ------------------------------------------------------------------ bundles
    @abc.abstractmethod
    def encoder_config(self) -> dict:
        """JSON-safe constructor arguments (recorded in bundle manifests)."""

    @abc.abstractmethod
    def save_for_bundle(self, folder: str | os.PathLike) -> Path:
        """Write everything `from_bundle(folder)` needs to rebuild this encoder offline."""

    @classmethod
    @abc.abstractmethod
    def from_bundle(cls, folder: str | os.PathLike, **overrides) -> "FrameEncoder":
        """Rebuild an encoder written by `save_for_bundle`."""

def masked_standardize(x: torch.Tensor, mask: torch.Tensor | None = None,
                       eps: float = NORM_EPS) -> torch.Tensor:
    """Zero-mean / unit-variance per batch item, over its valid positions and all feature dims.

    Args:
        x: `(B, T, ...)` tensor; statistics are taken over the valid `T` positions and all trailing
            dims of each item (a parameter-free layer norm per utterance).
        mask: `(B, T)` bool, True on valid positions; None = all valid.
        eps: added to the variance, as in `layer_norm`.

    Returns:
        float32 tensor shaped like `x`, with invalid positions set to 0. With `mask=None` this is
        `F.layer_norm(x, x.shape[1:])`; the original used `F.layer_norm(x, x.shape)` (one mean and
        variance for the whole batch), which is the same thing at batch size 1.
    """
    x = x.float()
    if mask is None:  # layer_norm over all but the batch dim normalises each item separately
        return F.layer_norm(x, x.shape[1:], eps=eps)
    weight = mask.to(x.dtype).reshape(mask.shape + (1,) * (x.dim() - 2))
    dims = tuple(range(1, x.dim()))
    count = weight.sum(dims, keepdim=True) * (x[0, 0].numel())
    mean = (x * weight).sum(dims, keepdim=True) / count
    centered = (x - mean) * weight
    var = centered.pow(2).sum(dims, keepdim=True) / count
    return centered / torch.sqrt(var + eps)
