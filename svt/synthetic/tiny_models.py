"""Tiny models built from configs, for tests and CPU demos: no download, seconds to run.

`build_tiny_ssl_model` saves a small randomly initialised wav2vec2 / HuBERT / WavLM /
data2vec-audio folder (real CNN kernels and strides, so the frame counts are the real models')
that `svt.models.ssl.SSLEncoder` loads like a hub model; `tiny_config` is an AV-HuBERT
configuration of two small layers for `svt.models.avhubert`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from svt.models.avhubert import AVHubertConfig
from svt.models.ssl import (
    SUPPORTED_MODEL_TYPES,
    UnsupportedEncoderError,
    transformers_config_classes,
    transformers_model_classes,
)


def build_tiny_ssl_model(folder: str | os.PathLike, model_type: str = "wav2vec2",
                         hidden_size: int = 32, num_layers: int = 2, num_heads: int = 2,
                         intermediate_size: int = 64, conv_dim: int = 32,
                         feat_extract_norm: str = "group", do_normalize: bool = True,
                         seed: int = 0, **config_overrides) -> Path:
    """Save a small randomly initialised SSL model folder that `SSLEncoder(source=folder)` loads.

    The CNN keeps the real kernels (10,3,3,3,3,2,2) and strides (5,2,2,2,2,2,2), so frame counts
    equal wav2vec2's (80000 samples -> 249 frames); only widths and depths shrink (the defaults give
    about 45k parameters). The positional convolution is small too (kernel 16, 2 groups; data2vec:
    two layers of kernel 16), `layerdrop` is 0 (dropping one of two layers is not regularisation).
    A `Wav2Vec2FeatureExtractor` `preprocessor_config.json` (16 kHz, `do_normalize`) is saved with
    it. Weights are a deterministic function of `seed` (the global torch RNG is left untouched).

    Args:
        folder: output folder (created).
        model_type: "wav2vec2", "hubert", "wavlm" or "data2vec-audio".
        hidden_size, num_layers, num_heads, intermediate_size: transformer sizes.
        conv_dim: channels of every CNN layer.
        feat_extract_norm: "group" (wav2vec2-base style: group norm in the first conv layer,
            post-LN transformer, no attention mask) or "layer" (wav2vec2-large-lv60 style: layer
            norm in every conv layer, pre-LN "stable layer norm" transformer, attention mask).
            data2vec-audio always uses layer norm and ignores it.
        do_normalize: the feature extractor's input normalisation flag.
        seed: RNG seed of the initialisation.
        **config_overrides: any other config field (e.g. `num_conv_pos_embeddings=128,
            num_conv_pos_embedding_groups=16, conv_bias=True` for the exact large-lv60 shape).

    Returns:
        The folder, as a Path.
    """
    from transformers import Wav2Vec2FeatureExtractor

    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedEncoderError(f"build_tiny_ssl_model: unknown model_type {model_type!r}; "
                                      f"choose one of {', '.join(SUPPORTED_MODEL_TYPES)}")
    if feat_extract_norm not in ("group", "layer"):
        raise ValueError(f"feat_extract_norm must be 'group' or 'layer', got {feat_extract_norm!r}")
    settings = dict(hidden_size=hidden_size, num_hidden_layers=num_layers,
                    num_attention_heads=num_heads, intermediate_size=intermediate_size,
                    conv_dim=(conv_dim,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                    conv_stride=(5, 2, 2, 2, 2, 2, 2), num_conv_pos_embedding_groups=2,
                    layerdrop=0.0)
    if model_type == "data2vec-audio":
        # here num_conv_pos_embeddings counts positional conv layers; the kernel is separate
        settings.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=16)
        uses_layer_norm = True
    else:
        settings.update(num_conv_pos_embeddings=16, feat_extract_norm=feat_extract_norm,
                        do_stable_layer_norm=feat_extract_norm == "layer")
        uses_layer_norm = feat_extract_norm == "layer"
    settings.update(config_overrides)
    config = transformers_config_classes()[model_type](**settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers_model_classes()[model_type](config)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                             do_normalize=do_normalize,
                             return_attention_mask=uses_layer_norm).save_pretrained(folder)
    return folder


def tiny_config(**overrides) -> AVHubertConfig:
    """A very small AVHubertConfig for tests and CPU demos.

    2 layers, D = 32, FFN 64, 2 heads, positional conv of kernel 16 in 4 groups, no layerdrop
    (dropping one of two layers is not regularisation); dropouts and `feature_grad_mult` keep the
    released values. The ResNet trunk's widths (64..512) are fixed by the architecture, so the model
    still has about 11 M parameters and each frame costs ~0.6 GFLOP: keep clips short.
    """
    settings = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                    encoder_attention_heads=2, conv_pos=16, conv_pos_groups=4,
                    encoder_layerdrop=0.0, final_dim=16)
    return AVHubertConfig(**{**settings, **overrides})
