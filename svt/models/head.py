"""The transcription head, its loss, and the conversion of its outputs to frame predictions.

Every system of the paper ends in the same head: one linear layer giving 20 values per frame,
laid out as

    0      onset logit
    1      offset / silence logit
    2..6   5 octave logits (classes 0..3 = octaves from C2, 4 = silence)
    7..19  13 pitch-class logits (0..11 = C..B, 12 = silence)

The loss is the original recipes' (docs/original-recipes.md §3.1): onset BCE with positive weight 15, offset BCE, octave
and pitch-class NLL on log-softmax, each averaged over the valid frames of the batch, summed.
An option the original lacks, `legato_onset_ignore_frames`, leaves the onset loss out around the
onsets of notes entered without a silence (see `legato_onset_weights`).
"""
from __future__ import annotations

import functools
from typing import ClassVar

import torch
import torch.nn.functional as F
from speechbrain.nnet import losses as sb_losses

from svt.models import Registry
from svt.notes.labels import NUM_FRAME_OUTPUTS, NUM_OCTAVE_CLASSES, SILENT_OCTAVE

ONSET, OFFSET = 0, 1
OCTAVE_SLICE = slice(2, 2 + NUM_OCTAVE_CLASSES)
PITCH_CLASS_SLICE = slice(2 + NUM_OCTAVE_CLASSES, NUM_FRAME_OUTPUTS)
#: Prediction and target lengths may differ by a few frames (encoder conv rounding); more than
#: this is a data error (SpeechBrain 0.5's `allowed_len_diff`).
ALLOWED_LENGTH_DIFFERENCE = 3
LOSS_NAMES = ("onset", "offset", "octave", "pitch")


class FrameHead(torch.nn.Module):
    """Base of the heads: features `(B, T, input_size)` -> `(B, T, 20)` frame outputs.

    A subclass setting `head_type` registers itself under it, and `head_config()` gives the
    constructor arguments, so a bundle records `head_type` + `head_config` and
    `FrameHead.build(...)` rebuilds any head."""

    head_type: ClassVar[str | None] = None
    registry: ClassVar[Registry] = Registry("head", "head_type")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        FrameHead.registry.register(cls)

    @classmethod
    def build(cls, head_type: str, config: dict) -> "FrameHead":
        """A new head of the registered `head_type` from its `head_config` (KeyError when no head
        is registered under that name)."""
        return FrameHead.registry.get(head_type)(**config)

    def head_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define head_config()")


class TranscriptionHead(FrameHead):
    """Per-frame Linear(input_size, 20), the paper's head. The layer is stored as `w` so that state
    dicts use the original's keys (`w.weight`, `w.bias`) and its `model.pt` files load by name."""

    head_type = "linear"

    def __init__(self, input_size: int):
        super().__init__()
        self.w = torch.nn.Linear(input_size, NUM_FRAME_OUTPUTS)

    def head_config(self) -> dict:
        return {"input_size": self.w.in_features}

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.w(features)


class MLPHead(FrameHead):
    """Per-frame MLP: `num_layers` x (Linear(hidden_size), GELU, dropout), then Linear(20)."""

    head_type = "mlp"

    def __init__(self, input_size: int, hidden_size: int = 256, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        if num_layers < 1 or hidden_size < 1:
            raise ValueError(f"MLPHead needs num_layers >= 1 and hidden_size >= 1, got "
                             f"{num_layers} and {hidden_size}")
        self.config = {"input_size": int(input_size), "hidden_size": int(hidden_size),
                       "num_layers": int(num_layers), "dropout": float(dropout)}
        layers, size = [], input_size
        for _ in range(num_layers):
            layers += [torch.nn.Linear(size, hidden_size), torch.nn.GELU(),
                       torch.nn.Dropout(dropout)]
            size = hidden_size
        layers.append(torch.nn.Linear(size, NUM_FRAME_OUTPUTS))
        self.layers = torch.nn.Sequential(*layers)

    def head_config(self) -> dict:
        return dict(self.config)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


def truncate_to_common_length(logits: torch.Tensor, targets: torch.Tensor):
    difference = abs(logits.shape[1] - targets.shape[1])
    if difference > ALLOWED_LENGTH_DIFFERENCE:
        raise ValueError(
            f"model output has {logits.shape[1]} frames but the labels have {targets.shape[1]} "
            f"(more than {ALLOWED_LENGTH_DIFFERENCE} apart): the label frame rate does not match "
            "the encoder; check `frame_rate` in the YAML against the encoder's output rate")
    length = min(logits.shape[1], targets.shape[1])
    return logits[:, :length], targets[:, :length]


def legato_onset_weights(targets: torch.Tensor, window: int) -> torch.Tensor:
    """Onset-loss weights `(B, T)`: 0 within `window` frames of a legato onset, 1 elsewhere.

    A legato onset is an onset target whose previous label frame is voiced (the note is entered
    without a silent frame, so only the pitch marks it); an onset in the first frame of an
    utterance counts as articulated. Why: a head trained to fire at such pitch steps also fires
    at a real voice's scoops and pitch drift (measured on SSVD, docs/shipped-model.md), and the
    decoder's pitch-level cuts can split legato notes instead; they come later than the onset
    head's, so on legato singing this costs notes (measured there too). `window` 0: all ones.
    """
    if window < 0:
        raise ValueError(f"the legato onset window must be >= 0 frames, got {window}")
    onset = targets[..., 0] == 1
    weights = torch.ones(onset.shape, dtype=torch.float32, device=targets.device)
    if window == 0 or onset.shape[1] < 2:
        return weights
    voiced = targets[..., 2] != SILENT_OCTAVE
    legato = torch.zeros_like(onset)
    legato[:, 1:] = onset[:, 1:] & voiced[:, :-1]
    near = F.max_pool1d(legato.float().unsqueeze(1), 2 * window + 1, stride=1, padding=window)
    return weights - near.squeeze(1)


def transcription_loss(logits, targets, lengths, onset_pos_weight=15.0, offset_pos_weight=1.0,
                       reduction="mean", legato_onset_ignore_frames=0):
    """Total loss and its four parts, from SpeechBrain's masked losses.

    Args:
        logits: (B, T, 20) head outputs.
        targets: (B, T', 4) integer labels from `notes_to_frames` (|T - T'| <= 3).
        lengths: (B,) relative lengths of the valid targets in (0, 1].
        reduction: "mean" averages over all valid frames of the batch (training);
            "batch" gives per-utterance means, shape (B,) (evaluation statistics).
        legato_onset_ignore_frames: N > 0 leaves the onset loss out within N frames of each
            legato onset (`legato_onset_weights`; those frames still count in the mean).

    Returns:
        (total, {"onset": ..., "offset": ..., "octave": ..., "pitch": ...}).
    """
    if reduction not in ("mean", "batch"):
        raise ValueError(f"reduction must be 'mean' or 'batch', got {reduction!r}")
    logits, targets = truncate_to_common_length(logits, targets)
    logits = logits.float()
    pos_weight = functools.partial(torch.tensor, device=logits.device)
    onset_weight = (legato_onset_weights(targets, legato_onset_ignore_frames)
                    if legato_onset_ignore_frames else None)
    parts = {
        "onset": sb_losses.bce_loss(logits[..., ONSET], targets[..., 0].float(), lengths,
                                    weight=onset_weight,
                                    pos_weight=pos_weight(float(onset_pos_weight)),
                                    reduction=reduction),
        "offset": sb_losses.bce_loss(logits[..., OFFSET], targets[..., 1].float(), lengths,
                                     pos_weight=pos_weight(float(offset_pos_weight)),
                                     reduction=reduction),
        "octave": sb_losses.nll_loss(F.log_softmax(logits[..., OCTAVE_SLICE], -1),
                                     targets[..., 2].long(), lengths, reduction=reduction),
        "pitch": sb_losses.nll_loss(F.log_softmax(logits[..., PITCH_CLASS_SLICE], -1),
                                    targets[..., 3].long(), lengths, reduction=reduction),
    }
    return sum(parts.values()), parts


def frame_predictions(logits: torch.Tensor):
    """Decoder inputs from head outputs (..., 20): onset and offset probabilities, octave and
    pitch-class indices."""
    logits = logits.float()
    return (torch.sigmoid(logits[..., ONSET]), torch.sigmoid(logits[..., OFFSET]),
            logits[..., OCTAVE_SLICE].argmax(-1), logits[..., PITCH_CLASS_SLICE].argmax(-1))


class TranscriptionLoss(torch.nn.Module):
    """`transcription_loss` with its weights fixed, as a YAML object (`loss:` in the recipes):
    `loss(logits, targets, lengths, reduction="mean") -> (total, parts)`."""

    def __init__(self, onset_pos_weight: float = 15.0, offset_pos_weight: float = 1.0,
                 legato_onset_ignore_frames: int = 0):
        super().__init__()
        self.onset_pos_weight = float(onset_pos_weight)
        self.offset_pos_weight = float(offset_pos_weight)
        if int(legato_onset_ignore_frames) < 0:
            raise ValueError("legato_onset_ignore_frames must be >= 0, got "
                             f"{legato_onset_ignore_frames}")
        self.legato_onset_ignore_frames = int(legato_onset_ignore_frames)

    def forward(self, logits, targets, lengths, reduction="mean"):
        return transcription_loss(logits, targets, lengths, self.onset_pos_weight,
                                  self.offset_pos_weight, reduction=reduction,
                                  legato_onset_ignore_frames=self.legato_onset_ignore_frames)
