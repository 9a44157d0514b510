"""Inference bundles: a trained model in a folder that later tools load without the training YAML.

Layout of `<output_folder>/model/`:

    svt_bundle.json   format version, modality, frame rate, sample rate, decoding thresholds,
                      the encoder's constructor settings and the head's input size
    encoder/          the encoder's own files (a HuggingFace `save_pretrained` folder for SSL
                      encoders), so it reloads offline
    weights.pt        state dict of the whole model (encoder + head): the weights of record

The bundle is written to a temporary folder and renamed into place, so a crash never leaves a
half-written bundle.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from svt.decoding import frames_to_notes
from svt.model import TranscriptionHead, frame_predictions

BUNDLE_FILE = "svt_bundle.json"
WEIGHTS_FILE = "weights.pt"
FORMAT_VERSION = 1


class BundleError(FileNotFoundError):
    """A model bundle that is missing or cannot be used; the message says what to do."""


class TranscriptionModel(torch.nn.Module):
    """Encoder + head with the settings needed to turn audio into notes."""

    def __init__(self, encoder, head, settings: dict):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.settings = dict(settings)

    @property
    def frame_rate(self) -> float:
        return float(self.settings["frame_rate"])

    @property
    def sample_rate(self) -> int:
        return int(self.settings.get("sample_rate", 16000))

    def forward(self, wavs, wav_lens=None):
        return self.head(self.encoder(wavs, wav_lens))

    @torch.no_grad()
    def predict_frames(self, wav):
        """Decoder inputs `(onset_prob, offset_prob, octave, pitch_class)` for one waveform."""
        device = next(self.parameters()).device
        wavs = torch.as_tensor(np.asarray(wav, dtype=np.float32), device=device)[None]
        return tuple(t[0].cpu().numpy() for t in frame_predictions(self(wavs)))

    def decode(self, frames):
        return frames_to_notes(*frames, onset_threshold=self.settings["onset_threshold"],
                               offset_threshold=self.settings["offset_threshold"],
                               frame_rate=self.frame_rate)


def _unwrap(module):
    return module.module if hasattr(module, "module") else module


@contextmanager
def staged_bundle_folder(folder):
    """Yield a temporary folder beside `folder`; on success it replaces `folder` (renames only, so
    a crash never leaves a half-written bundle), on failure it is removed."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        yield tmp
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_bundle(folder, encoder, head, settings: dict) -> Path:
    """Write a bundle (any encoder with `save_for_bundle` / `from_bundle`) to `folder`,
    atomically."""
    encoder, head = _unwrap(encoder), _unwrap(head)
    with staged_bundle_folder(folder) as tmp:
        encoder.save_for_bundle(tmp / "encoder")
        model = TranscriptionModel(encoder, head, settings)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / WEIGHTS_FILE)
        manifest = {
            "format_version": FORMAT_VERSION,
            "modality": settings.get("modality", "audio"),
            "encoder_class": f"{type(encoder).__module__}.{type(encoder).__name__}",
            "encoder_config": encoder.encoder_config(),
            "head_input_size": head.w.in_features,
            **{k: v for k, v in settings.items() if k != "modality"},
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(folder)


def find_bundle(path) -> Path:
    """The bundle folder for `path`: a bundle itself or a recipe output folder holding `model/`."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise BundleError(
        f"{path}: no model bundle here (no {BUNDLE_FILE} in it or in {path / 'model'}). Pass a "
        "recipe's output folder or its model/ folder (e.g. results/demo/model after `make demo`)")


def read_manifest(path) -> dict:
    """The settings stored in a bundle (frame rate, thresholds, encoder config, ...)."""
    folder = find_bundle(path)
    try:
        return json.loads((folder / BUNDLE_FILE).read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{folder / BUNDLE_FILE}: corrupt bundle manifest ({err}); re-export "
                          "the model") from None


MODALITY_NAMES = {"audio": "an audio-only", "video": "a video-only",
                  "audio_visual": "an audio-visual"}
MODALITY_HINTS = {
    ("audio_visual", "audio"): " (it needs the singer's lip video too: pass video= in Python, "
                               "--video on the command line)",
    ("audio", "audio_visual"): " (a lip video was given: use an audio-visual bundle, the "
                               "N20EMv2/audio_visual recipe's <output_folder>/model, or drop "
                               "the video)",
    ("video", "audio"): " (video-only models are evaluated by the N20EMv2/video_only recipe)",
}

def modality_mismatch(found: str, needed: str) -> str:
    """The explanation (with what to do) for a model of modality `found` where `needed` is."""
    return (f"{MODALITY_NAMES.get(found, found)} model, but {MODALITY_NAMES.get(needed, needed)} "
            f"model is needed here" + MODALITY_HINTS.get((found, needed), ""))


#: Encoder classes a bundle may name (never an arbitrary import path from a file).
ENCODER_CLASSES = {
    "svt.encoders.SSLEncoder": ("svt.encoders", "SSLEncoder"),
    "svt.avhubert.AVHubertVideoEncoder": ("svt.avhubert", "AVHubertVideoEncoder"),
}


def _encoder_class(name, folder):
    import importlib

    if name not in ENCODER_CLASSES:
        raise BundleError(f"{folder}: unknown encoder class {name!r} in the bundle; this svt knows "
                          f"{sorted(ENCODER_CLASSES)}")
    module, attribute = ENCODER_CLASSES[name]
    return getattr(importlib.import_module(module), attribute)


def load_bundle(path, device="cpu", modality=None) -> TranscriptionModel:
    """Load a bundle written by `export_bundle` (or a recipe output folder holding one).

    With `modality` ("audio", "video" or "audio_visual"), a bundle of another modality is a clear
    error. An audio-visual bundle loads as `svt.av.AudioVisualModel`."""
    folder = find_bundle(path)
    manifest = read_manifest(folder)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{folder}: bundle format {manifest.get('format_version')} is not "
                          f"supported by this svt (expects {FORMAT_VERSION}); re-export it")
    found = manifest.get("modality", "audio")
    if modality is not None and found != modality:
        raise BundleError(f"{folder}: this bundle is {modality_mismatch(found, modality)}")
    if found == "audio_visual":
        from svt.av import load_av_bundle

        return load_av_bundle(folder, manifest, device)
    encoder_class = _encoder_class(manifest.get("encoder_class", "svt.encoders.SSLEncoder"), folder)
    encoder = encoder_class.from_bundle(folder / "encoder")
    head = TranscriptionHead(manifest["head_input_size"])
    settings = {k: v for k, v in manifest.items()
                if k not in ("encoder_config", "encoder_class", "head_input_size")}
    model = TranscriptionModel(encoder, head, settings)
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval()
