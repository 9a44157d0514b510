"""AV-HuBERT's visual stream in plain PyTorch: loads official fairseq checkpoints without fairseq.

The original video recipe (docs/original-recipes.md §3.3) encodes lip videos with the LARGE pre-trained AV-HuBERT
(`large_vox_iter5.pt`, LRS3 + VoxCeleb2) through fairseq: `extract_finetune({"video": V, "audio":
None})`. fairseq pins old torch/omegaconf/hydra versions and cannot be installed next to this
toolkit, so this module rebuilds the part of `AVHubertModel` that the video-only path uses, with the
**same attribute names**, so that a fairseq checkpoint's `model` state dict loads by parameter name:

    feature_extractor_video.resnet   3-D conv stem + ResNet-18 trunk (PReLU), 512-d per frame
    feature_extractor_video.proj     Linear(512 -> D)
    layer_norm                       LayerNorm(2D) over [zero audio features, video features]
    post_extract_proj                Linear(2D -> D), then dropout_input
    encoder                          wav2vec2-style transformer: weight-normed convolutional
                                     positional embedding, pre-LN layers, final LayerNorm

`AVHubertVideoEncoder` is that network plus the encoder interface of `svt.models.ssl.SSLEncoder`
(relative lengths in, `(B, T, D)` features out, `output_size`, `num_frames`, `encoder_config`,
`save_for_bundle` / `from_bundle`, `freeze`, `output_norm`), so `Brain` and the bundles treat audio
and video encoders alike. Build it with `AVHubertVideoEncoder.from_checkpoint(path)` (official or
fabricated fairseq file), `AVHubertVideoEncoder(config)` (random weights) or
`AVHubertVideoEncoder.from_bundle(folder)`.

Behaviour kept from the original (docs/av-hubert.md §2-§4, §7):

* **Video-only fusion.** The audio half of the concatenation is zeros, and the LayerNorm(2D) is
  taken over all 2D channels, zeros included, exactly like `extract_finetune` with `audio=None`; the
  audio channels become `beta - mu/sigma * gamma` and feed `post_extract_proj` like any other input.
* **One output frame per input frame.** Nothing is strided in time (stem kernel 5 / stride 1 / pad
  2, temporal pooling 1), so 50 fps video (the SVT recipes) gives 50 Hz features; the model was
  pre-trained at 25 fps.
* **Training-time regularisation as in the checkpoint config**: `dropout`, `attention_dropout`,
  `activation_dropout`, `encoder_layerdrop` (whole layers skipped in training), `dropout_input`,
  and `feature_grad_mult` (the front-end's gradient is multiplied by 0.1 on the way back; 0 runs it
  without gradient). The original fine-tuned with all of them active (no overrides); pass overrides
  to `from_checkpoint` to change them.

Deliberate differences (like `SSLEncoder`'s, docs/original-recipes.md §9):

* **Per-utterance output normalisation.** `output_norm=True` normalises each utterance over its
  valid frames and all feature dims (no parameters, eps 1e-5). The original applied
  `F.layer_norm(out, out.shape)` to the whole padded batch (one mean/variance for all utterances,
  padding included); at batch size 1, how the original evaluates, both are the same.
* **Padding mask.** The original passed `padding_mask=None`, so padded (mid-grey) frames took part
  in attention. Here the relative lengths give a key padding mask to the transformer (and the padded
  positions are zeroed before the positional convolution, as fairseq does when given a mask), and
  the padded input frames are set to 0 (what SpeechBrain pads with anyway) so the stem's ±2-frame
  temporal context sees the same zeros as an unpadded run.
* **Batch norm sees valid frames only.** The stem's convolution runs on the padded clip (it needs
  temporal context); the rest of the front-end (BatchNorm3d, PReLU, pooling and the per-frame
  ResNet) runs on the valid frames only. In eval mode this changes nothing (running statistics,
  per-frame), but in training the batch statistics no longer include padding frames (the original's
  did), and the padded frames cost no compute.

With these, an utterance's valid features in a padded batch equal those of the utterance alone (to
float precision) in eval mode. Padded output frames are always 0.

Checkpoints are read with `torch.load(weights_only=True)`: fairseq pickles a few of its own objects
next to the weights (a `Dictionary` in `task_state`, a tokenizer in fine-tuned files), which are
replaced on load by inert stand-ins from an explicit allow-list (`StandIn`); nothing from the file
can run code. Any other global is refused with `UnsafeCheckpointError`. See
`load_fairseq_checkpoint`.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import pickle
import re
import typing
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from svt.errors import SvtUserError
from svt.models.encoder import (
    EncoderNotAvailableError,
    FrameEncoder,
    masked_standardize,
)

#: The checkpoint of the original video recipe: LARGE, pre-trained only, LRS3 + VoxCeleb2, iter 5.
AVHUBERT_LARGE_URL = ("https://dl.fbaipublicfiles.com/avhubert/model/lrs3_vox/clean-pretrain/"
                      "large_vox_iter5.pt")

#: Tensors of a pre-trained checkpoint that the video-only encoder does not use and drops on load:
#: the masked-prediction parts (`mask_emb` [audio_feat_dim], `label_embs_concat`
#: [classes, final_dim], `final_proj`, `target_glu` when enabled) and the unused audio front-end
#: (`feature_extractor_audio`).
DROPPED_KEYS = ("mask_emb", "label_embs_concat", "final_proj.weight", "final_proj.bias",
                "feature_extractor_audio.proj.weight", "feature_extractor_audio.proj.bias")
_DROPPED_PREFIXES = ("final_proj.", "target_glu.", "feature_extractor_audio.")

#: Prefix of the AV-HuBERT encoder inside fine-tuned (seq2seq / CTC) checkpoints.
FINETUNED_PREFIX = "encoder.w2v_model."

#: Written by `save_for_bundle` (same file name as `SSLEncoder`'s options file).
BUNDLE_OPTIONS_FILE = "svt_encoder.json"
BUNDLE_WEIGHTS_FILE = "model.safetensors"
MODEL_TYPE = "av_hubert"

#: Fields that fix tensor shapes: they come from the checkpoint and cannot be overridden.
_SIZE_FIELDS = ("encoder_layers", "encoder_embed_dim", "encoder_ffn_embed_dim",
                "encoder_attention_heads", "conv_pos", "conv_pos_groups", "resnet_relu_type",
                "sub_encoder_layers", "modality_fuse", "layer_norm_first", "activation_fn",
                "audio_feat_dim", "final_dim", "untie_final_proj")


class CheckpointError(SvtUserError, ValueError):
    """A checkpoint that cannot be loaded into the AV-HuBERT video encoder; the message says why.

    `missing`, `unexpected` and `mismatched` (name -> (expected shape, found shape)) hold the
    offending tensor names when the error is about the state dict.
    """

    def __init__(self, message: str, missing: Iterable[str] = (), unexpected: Iterable[str] = (),
                 mismatched: Mapping[str, tuple] | None = None):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = dict(mismatched or {})


class UnsafeCheckpointError(CheckpointError):
    """The file pickles objects outside the loader's allow-list; it was not unpickled."""


# ==================================================================================================
# Configuration
# ==================================================================================================
@dataclasses.dataclass
class AVHubertConfig:
    """Hyper-parameters of the AV-HuBERT video path, named as the fairseq `cfg.model` keys.

    The defaults are the released BASE pre-training config (`base_*_iter5`);
    `AVHubertConfig.large()` gives LARGE (`large_vox_iter5`). A checkpoint's own `cfg['model']` is
    read with `from_fairseq`.

    Attributes:
        encoder_layers, encoder_embed_dim (D), encoder_ffn_embed_dim, encoder_attention_heads:
            transformer sizes (BASE 12/768/3072/12, LARGE 24/1024/4096/16).
        activation_fn: FFN activation ("gelu" = exact erf form, "gelu_accurate", "relu").
        dropout: residual-branch dropout in every layer and on the positional-conv output.
        attention_dropout: dropout on the attention probabilities.
        activation_dropout: dropout after the FFN activation.
        encoder_layerdrop: probability of skipping each transformer layer in training.
        dropout_input: dropout after `post_extract_proj`.
        dropout_features: the pre-training `unmasked_features` dropout; kept for the record, unused.
        feature_grad_mult: gradient scale of the front-end (ResNet + proj); 0 = no gradient there.
        layer_norm_first: pre-LN layers and a final LayerNorm (True in every released model).
        conv_pos, conv_pos_groups: kernel and groups of the positional convolution (128 / 16).
        resnet_relu_type: activation of the ResNet ("prelu" in the released models; also "relu",
            "swish").
        sub_encoder_layers: per-modality transformer layers before fusion; only 0 is supported.
        audio_feat_dim: audio feature size (104); fixes the shape of the dropped `mask_emb`.
        modality_fuse: "concat" (every released model); "add" is not supported.
        final_dim, untie_final_proj: pre-training projection sizes; only used to fabricate
            checkpoints with the real key set (`save_fairseq_style_checkpoint`).
    """

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    encoder_layerdrop: float = 0.05
    dropout_input: float = 0.1
    dropout_features: float = 0.1
    feature_grad_mult: float = 0.1
    layer_norm_first: bool = True
    conv_pos: int = 128
    conv_pos_groups: int = 16
    resnet_relu_type: str = "prelu"
    sub_encoder_layers: int = 0
    audio_feat_dim: int = 104
    modality_fuse: str = "concat"
    final_dim: int = 256
    untie_final_proj: bool = True

    @classmethod
    def base(cls, **overrides) -> "AVHubertConfig":
        """The released BASE model (12 layers, D = 768)."""
        return cls(**overrides)

    @classmethod
    def large(cls, **overrides) -> "AVHubertConfig":
        """The released LARGE model (24 layers, D = 1024), as `large_vox_iter5.pt`."""
        sizes = dict(encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096,
                     encoder_attention_heads=16)
        return cls(**{**sizes, **overrides})

    @classmethod
    def from_fairseq(cls, model_cfg: Mapping[str, Any], **overrides) -> "AVHubertConfig":
        """Read a fairseq `cfg['model']` dict: known keys are taken, all others ignored.

        Keys missing from `model_cfg` keep this dataclass's defaults (the released BASE values).
        """
        names = {field.name: field for field in dataclasses.fields(cls)}
        values = {}
        for key, value in {**dict(model_cfg), **overrides}.items():
            if key in names and value is not None:
                values[key] = _cast(value, names[key].type)
        return cls(**values)

    def to_dict(self) -> dict:
        """JSON-safe dict of all fields (what `encoder_config()` and the bundles store)."""
        return dataclasses.asdict(self)

    def validate(self) -> "AVHubertConfig":
        """Raise ValueError for settings this re-implementation does not support."""
        problems = []
        if self.modality_fuse != "concat":
            problems.append(f"modality_fuse={self.modality_fuse!r} (only 'concat')")
        if self.sub_encoder_layers != 0:
            problems.append(f"sub_encoder_layers={self.sub_encoder_layers} (only 0)")
        if self.resnet_relu_type not in _RESNET_ACTIVATIONS:
            problems.append(f"resnet_relu_type={self.resnet_relu_type!r} "
                            f"(one of {', '.join(_RESNET_ACTIVATIONS)})")
        if self.activation_fn not in _FFN_ACTIVATIONS:
            problems.append(f"activation_fn={self.activation_fn!r} "
                            f"(one of {', '.join(_FFN_ACTIVATIONS)})")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            problems.append(f"encoder_embed_dim={self.encoder_embed_dim} is not a multiple of "
                            f"encoder_attention_heads={self.encoder_attention_heads}")
        if self.encoder_embed_dim % self.conv_pos_groups:
            problems.append(f"encoder_embed_dim={self.encoder_embed_dim} is not a multiple of "
                            f"conv_pos_groups={self.conv_pos_groups}")
        if problems:
            raise ValueError("unsupported AV-HuBERT configuration: " + "; ".join(problems))
        return self


def _cast(value, annotation):
    """Coerce a config value to the dataclass field's type (fields are annotated as strings)."""
    kind = {"int": int, "float": float, "bool": bool, "str": str}.get(str(annotation))
    if kind is bool and isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return kind(value) if kind is not None else value


# ==================================================================================================
# Visual front-end: av_hubert `resnet.py` (ResEncoder, ResNet, BasicBlock)
# ==================================================================================================
_RESNET_ACTIVATIONS = ("prelu", "relu", "swish")


def _resnet_activation(relu_type: str, channels: int) -> nn.Module:
    """`prelu` has one learned slope per channel (keys `...relu1.weight`); the others no params."""
    if relu_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    if relu_type == "swish":
        return nn.SiLU()
    return nn.ReLU()


class BasicBlock(nn.Module):
    """ResNet basic block with separate activations before and after the residual addition.

    Attribute order follows the original `__init__` (conv1, bn1, relu1, relu2, conv2, bn2,
    downsample), which is also the checkpoint's key order.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, relu_type: str = "prelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = _resnet_activation(relu_type, planes)
        self.relu2 = _resnet_activation(relu_type, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + residual)


class ResNet(nn.Module):
    """ResNet-18 trunk (`[2, 2, 2, 2]` basic blocks, 64/128/256/512 channels) without stem or fc.

    `[N, 64, 22, 22]` -> `[N, 512]`: the strided first blocks of layers 2-4 take 22 -> 11 -> 6 -> 3,
    then a global average pool.
    """

    def __init__(self, relu_type: str = "prelu"):
        super().__init__()
        widths, inplanes = (64, 128, 256, 512), 64
        for index, planes in enumerate(widths, start=1):
            stride = 1 if index == 1 else 2
            blocks = nn.Sequential(BasicBlock(inplanes, planes, stride, relu_type),
                                   BasicBlock(planes, planes, 1, relu_type))
            setattr(self, f"layer{index}", blocks)
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class ResEncoder(nn.Module):
    """3-D convolutional stem + per-frame ResNet-18: lip video `[B, 1, T, H, W]` -> `[B, 512, T]`.

    `frontend3D` = Conv3d(1 -> 64, kernel (5, 7, 7), stride (1, 2, 2), pad (2, 3, 3), no bias),
    BatchNorm3d, PReLU(64), MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)): 88x88 -> 22x22, time kept
    (each output frame sees +-2 input frames). Then every frame goes through `trunk` on its own.
    """

    def __init__(self, relu_type: str = "prelu"):
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, 64, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3),
                      bias=False),
            nn.BatchNorm3d(64),
            _resnet_activation(relu_type, 64),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        self.trunk = ResNet(relu_type)

    def forward(self, video: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`[B, 1, T, H, W]` -> `[B, 512, T]`; frames where `frame_mask` ([B, T] bool) is False
        are skipped after the stem's convolution and come out as zeros."""
        batch, _, num_frames = video.shape[:3]
        x = self.frontend3D[0](video)  # the only op that mixes frames: run it on the whole clip
        x = x.transpose(1, 2)  # [B, T, 64, h, w]
        if frame_mask is None:
            frames = x.reshape(batch * num_frames, *x.shape[2:])
        else:
            frames = x[frame_mask]  # [N valid frames, 64, h, w]
        # BatchNorm3d / activation / MaxPool3d on [N, 64, 1, h, w]: per-channel statistics over the
        # same elements as the original's [B, 64, T, h, w] when nothing is padded.
        frames = self.frontend3D[1:](frames.unsqueeze(2)).squeeze(2)
        frames = self.trunk(frames)  # [N, 512]
        if frame_mask is None:
            out = frames.reshape(batch, num_frames, -1)
        else:
            out = frames.new_zeros(batch, num_frames, frames.shape[-1])
            out[frame_mask] = frames
        return out.transpose(1, 2)


class VideoFeatureExtractor(nn.Module):
    """AV-HuBERT's `SubModel` for video: `resnet` then `proj` Linear(512 -> D); `[B, D, T]` out.

    The original's optional per-modality transformer (`sub_encoder_layers`) is 0 in every released
    model and is not implemented.
    """

    def __init__(self, embed_dim: int, relu_type: str = "prelu"):
        super().__init__()
        self.resnet = ResEncoder(relu_type)
        self.proj = nn.Linear(512, embed_dim)

    def forward(self, video: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.resnet(video, frame_mask)  # [B, 512, T]
        return self.proj(x.transpose(1, 2)).transpose(1, 2)


class _GradMultiply(torch.autograd.Function):
    """Identity forward, gradient times `scale` backward (fairseq's `GradMultiply`)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


# ==================================================================================================
# Transformer encoder: fairseq wav2vec2 `TransformerEncoder` (commit afc77bdf)
# ==================================================================================================
_FFN_ACTIVATIONS = ("gelu", "gelu_accurate", "relu")


def _ffn_activation(name: str):
    if name == "gelu":  # fairseq `gelu`: exact erf form, computed in float32
        return lambda x: F.gelu(x.float()).type_as(x)
    if name == "gelu_accurate":
        return lambda x: F.gelu(x.float(), approximate="tanh").type_as(x)
    return F.relu


class WeightNormConv1d(nn.Module):
    """Conv1d whose weight is `weight_g * weight_v / ||weight_v||`, the norm taken per kernel tap.

    This is `torch.nn.utils.weight_norm(conv, name="weight", dim=2)` as fairseq uses it for the
    positional convolution, written out so the parameters keep the checkpoint's names and order
    (`bias`, `weight_g` [1, 1, K], `weight_v` [D, D/groups, K]) without the deprecated utility.
    """

    def __init__(self, channels: int, kernel_size: int, groups: int, padding: int):
        super().__init__()
        self.groups, self.padding = groups, padding
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel_size))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel_size))

    def effective_weight(self) -> torch.Tensor:
        """The convolution weight, `g * v / ||v||` (norm over dims 0 and 1)."""
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.effective_weight(), self.bias, padding=self.padding,
                        groups=self.groups)

    def extra_repr(self) -> str:
        out, per_group, kernel = self.weight_v.shape
        return (f"{out}, {out}, kernel_size={kernel}, groups={self.groups}, "
                f"padding={self.padding}, weight_norm_dim=2")


class SamePad(nn.Module):
    """Drop the last output frame of an even-kernel convolution padded by K/2 (T + 1 -> T)."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.remove = 1 if kernel_size % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-self.remove] if self.remove else x


class MultiheadAttention(nn.Module):
    """fairseq self-attention: separate q/k/v/out projections with bias, no bias_k/v or zero-attn.

    Computed with `F.scaled_dot_product_attention` (scale head_dim^-0.5, dropout on the
    probabilities), the same maths as fairseq's. Works batch-first, `[B, T, D]`.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        # creation order k, v, q, out = the checkpoint's key order
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, dim = x.shape

        def heads(t):
            return t.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        attn_mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class TransformerSentenceEncoderLayer(nn.Module):
    """One wav2vec2 transformer layer; pre-LN when `layer_norm_first` (all released AV-HuBERTs).

    Pre-LN:  x = x + drop(attn(LN(x)));  x = x + drop(fc2(act_drop(act(fc1(LN(x))))))
    Post-LN: x = LN(x + drop(attn(x)));  x = LN(x + drop(fc2(act_drop(act(fc1(x))))))
    """

    def __init__(self, config: AVHubertConfig):
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = MultiheadAttention(dim, config.encoder_attention_heads,
                                            config.attention_dropout)
        self.dropout1 = nn.Dropout(config.dropout)
        self.dropout2 = nn.Dropout(config.activation_dropout)
        self.dropout3 = nn.Dropout(config.dropout)
        self.layer_norm_first = config.layer_norm_first
        self.activation_fn = _ffn_activation(config.activation_fn)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout1(self.self_attn(self.self_attn_layer_norm(x), padding_mask))
            return x + self._feed_forward(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + self.dropout1(self.self_attn(x, padding_mask)))
        return self.final_layer_norm(x + self._feed_forward(x))

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout3(self.fc2(self.dropout2(self.activation_fn(self.fc1(x)))))


class TransformerEncoder(nn.Module):
    """wav2vec2 transformer: x + GELU(pos_conv(x)), dropout, layers (with layerdrop), final LN.

    `pos_conv` = Sequential(weight-normed grouped Conv1d(D, D, conv_pos, padding conv_pos // 2),
    SamePad, GELU): a relative positional embedding spanning `conv_pos` frames (128 frames = 5.12 s
    at 25 fps, 2.56 s at the recipes' 50 fps). `layer_norm` is applied at the end for pre-LN models
    and right after the positional embedding for post-LN ones, as in fairseq.
    """

    def __init__(self, config: AVHubertConfig):
        super().__init__()
        dim = config.encoder_embed_dim
        self.dropout, self.layerdrop = config.dropout, config.encoder_layerdrop
        self.layer_norm_first = config.layer_norm_first
        self.pos_conv = nn.Sequential(
            WeightNormConv1d(dim, config.conv_pos, config.conv_pos_groups, config.conv_pos // 2),
            SamePad(config.conv_pos), nn.GELU())
        self.layers = nn.ModuleList(TransformerSentenceEncoderLayer(config)
                                    for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`[B, T, D]` -> `[B, T, D]`; `padding_mask` `[B, T]` is True on padded frames."""
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = F.dropout(x, p=self.dropout, training=self.training)
        for layer in self.layers:
            if self.training and self.layerdrop > 0 and float(torch.rand(())) < self.layerdrop:
                continue  # layerdrop: skip the whole layer
            x = layer(x, padding_mask)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x


# ==================================================================================================
# The encoder
# ==================================================================================================
class AVHubertVideoEncoder(FrameEncoder):
    """AV-HuBERT's video-only feature extractor as a SpeechBrain-style encoder.

    `forward(video, lens)` maps a padded batch of normalised lip clips `[B, 1, T, 88, 88]` (grey
    levels /255, 88x88 crop, then `(x - 0.421) / 0.165`, as the recipes prepare them) with
    SpeechBrain relative lengths to `[B, T, D]` features: the last transformer layer after the final
    LayerNorm (fairseq's `extract_finetune` with `audio=None`), one per input frame, then optional
    per-utterance normalisation; padded frames are 0.

    State-dict keys are those of fairseq's `AVHubertModel` (e.g.
    `feature_extractor_video.resnet.trunk.layer1.0.conv1.weight`, `encoder.layers.0.fc1.weight`),
    so the official checkpoints load by name (`from_checkpoint`).

    Args:
        config: an `AVHubertConfig` (or its `to_dict()`); builds randomly initialised weights with
            the original initialisation (ResNet convs N(0, sqrt(2 / (k*k*out))), transformer
            linears N(0, 0.02), positional conv as wav2vec2).
        output_norm: normalise each utterance's features over its valid frames and all dims (zero
            mean, unit variance, no parameters), as the original's `output_norm: True` but per
            utterance instead of per batch.
        freeze: no gradients for any parameter, kept in eval mode (no dropout, layerdrop or batch
            statistics) even when the module is put in train mode, and run under `torch.no_grad`.
    """

    encoder_type = MODEL_TYPE

    def __init__(self, config: AVHubertConfig | Mapping[str, Any], output_norm: bool = True,
                 freeze: bool = False):
        super().__init__()
        if not isinstance(config, AVHubertConfig):
            config = AVHubertConfig(**dict(config))
        self.config = config.validate()
        self.output_norm = bool(output_norm)
        self.freeze = False
        self.checkpoint_path: str | None = None  # provenance, set by from_checkpoint

        dim = config.encoder_embed_dim
        # attribute names (and creation order) = fairseq AVHubertModel's, hence the key names
        self.feature_extractor_video = VideoFeatureExtractor(dim, config.resnet_relu_type)
        self.post_extract_proj = nn.Linear(2 * dim, dim)
        self.dropout_input = nn.Dropout(config.dropout_input)
        self.encoder = TransformerEncoder(config)
        self.layer_norm = nn.LayerNorm(2 * dim)
        self._init_weights()
        self.set_freeze(freeze)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, freeze: bool = False,
                        output_norm: bool = True, **config_overrides) -> "AVHubertVideoEncoder":
        """Load a fairseq AV-HuBERT checkpoint (pre-trained or fine-tuned) without fairseq.

        Pre-trained files (`large_vox_iter5.pt` style) hold the model keys at the top level of
        `ckpt['model']` and the sizes in `ckpt['cfg']['model']`; fine-tuned ones prefix the encoder
        with `encoder.w2v_model.` and nest the pre-training config at
        `ckpt['cfg']['model']['w2v_args']['model']` (their own dropout / layerdrop /
        feature_grad_mult settings override it, as fairseq does). `DROPPED_KEYS` (pre-training
        heads, audio front-end) and, in fine-tuned files, everything outside the encoder (decoder,
        CTC projection) are dropped; every other tensor must match the model by name and shape.
        Floating tensors are cast to float32.

        Args:
            path: the `.pt` file.
            freeze, output_norm: as in the constructor.
            **config_overrides: training-time settings to change, e.g. `dropout=0.0`,
                `encoder_layerdrop=0.0`, `feature_grad_mult=1.0`. Sizes cannot be overridden.

        Raises:
            EncoderNotAvailableError (a FileNotFoundError): no such file; says where to get it.
            UnsafeCheckpointError: the file pickles objects outside the allow-list.
            CheckpointError: not an AV-HuBERT checkpoint, unsupported config, or missing /
                unexpected / wrongly shaped tensors (all listed).
        """
        path = Path(path).expanduser()
        # None means "the checkpoint's value" (lets YAML files expose optional overrides).
        config_overrides = {k: v for k, v in config_overrides.items() if v is not None}
        _check_overrides(config_overrides)
        checkpoint = load_fairseq_checkpoint(path)
        state, model_cfg, _ = _encoder_state_and_config(checkpoint, source=str(path))
        try:
            config = AVHubertConfig.from_fairseq(model_cfg, **config_overrides).validate()
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: {error}") from None
        encoder = cls._from_state_dict(config, state, source=str(path), output_norm=output_norm,
                                       freeze=freeze)
        encoder.checkpoint_path = str(path)
        return encoder

    @classmethod
    def from_bundle(cls, folder: str | os.PathLike, **overrides) -> "AVHubertVideoEncoder":
        """Rebuild an encoder written by `save_for_bundle` (offline; identical outputs).

        `overrides` replace saved options (`freeze`, `output_norm`) or training-time config
        settings (e.g. `dropout=0.0`).
        """
        folder = Path(folder).expanduser()
        options_file, weights_file = folder / BUNDLE_OPTIONS_FILE, folder / BUNDLE_WEIGHTS_FILE
        if not options_file.is_file() or not weights_file.is_file():
            raise EncoderNotAvailableError(
                f"'{folder}' is not an AV-HuBERT encoder folder written by "
                f"AVHubertVideoEncoder.save_for_bundle (needs {BUNDLE_OPTIONS_FILE} and "
                f"{BUNDLE_WEIGHTS_FILE})")
        payload = json.loads(options_file.read_text())
        if payload.get("model_type") != MODEL_TYPE:
            raise CheckpointError(f"{options_file}: model_type {payload.get('model_type')!r} is "
                                  f"not {MODEL_TYPE!r}; this folder holds another encoder")
        options = {**payload["options"]}
        config_overrides = {k: v for k, v in overrides.items()
                            if k not in ("freeze", "output_norm")}
        _check_overrides(config_overrides)
        options.update({k: v for k, v in overrides.items() if k in ("freeze", "output_norm")})
        config = AVHubertConfig(**{**payload["config"], **config_overrides})
        from safetensors.torch import load_file

        encoder = cls._from_state_dict(config, load_file(str(weights_file)), source=str(folder),
                                       **options)
        encoder.checkpoint_path = payload.get("checkpoint_path")
        return encoder

    @classmethod
    def _from_state_dict(cls, config: AVHubertConfig, state: Mapping[str, torch.Tensor],
                         source: str, output_norm: bool = True,
                         freeze: bool = False) -> "AVHubertVideoEncoder":
        """Build on the meta device (no random init, no second copy) and adopt `state`'s tensors."""
        with torch.device("meta"):
            encoder = cls(config, output_norm=output_norm, freeze=False)
        _check_state_dict(encoder.state_dict(), state, source, config)
        tensors = {name: tensor.to(torch.float32 if tensor.is_floating_point() else tensor.dtype,
                                   copy=True).contiguous()
                   for name, tensor in state.items()}
        encoder.load_state_dict(tensors, strict=True, assign=True)
        encoder.set_freeze(freeze)
        return encoder

    def _init_weights(self):
        """The original initialisation (only matters for training from scratch and tests)."""
        if self.post_extract_proj.weight.is_meta:  # built to receive a checkpoint's tensors
            return
        for module in self.feature_extractor_video.resnet.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                fan = math.prod(module.kernel_size) * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan))
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.encoder.modules():  # fairseq `init_bert_params`
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)
        conv = self.encoder.pos_conv[0]
        out_channels, _, kernel = conv.weight_v.shape
        std = math.sqrt(4 * (1.0 - self.config.dropout) / (kernel * out_channels))
        with torch.no_grad():
            nn.init.normal_(conv.weight_v, 0.0, std)
            nn.init.zeros_(conv.bias)
            conv.weight_g.copy_(conv.weight_v.norm(dim=(0, 1), keepdim=True))

    def set_freeze(self, freeze: bool = True) -> "AVHubertVideoEncoder":
        """Freeze (no grads, eval mode kept, no_grad forward) or unfreeze all parameters."""
        self.freeze = bool(freeze)
        for parameter in self.parameters():
            parameter.requires_grad_(not self.freeze)
        if self.freeze:
            super().train(False)
        return self

    # ------------------------------------------------------------------ toolkit interface
    def encoder_config(self) -> dict:
        """JSON-safe constructor arguments: `AVHubertVideoEncoder(**encoder_config())` rebuilds it
        (with random weights; the weights are in the state dict / `save_for_bundle`)."""
        return {"config": self.config.to_dict(), "output_norm": self.output_norm,
                "freeze": self.freeze}

    def save_for_bundle(self, folder: str | os.PathLike) -> Path:
        """Write `svt_encoder.json` (config, options, provenance) and `model.safetensors` (the
        state dict, fairseq key names) into `folder`; `from_bundle(folder)` reloads it offline."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu().contiguous()
                 for name, tensor in self.state_dict().items()}
        save_file(state, str(folder / BUNDLE_WEIGHTS_FILE), metadata={"format": "pt"})
        payload = {"format": 1, "model_type": MODEL_TYPE, "config": self.config.to_dict(),
                   "options": {"output_norm": self.output_norm, "freeze": self.freeze},
                   "checkpoint_path": self.checkpoint_path}
        (folder / BUNDLE_OPTIONS_FILE).write_text(json.dumps(payload, indent=2) + "\n")
        return folder

    @property
    def output_size(self) -> int:
        """Feature dimension D (1024 for LARGE, 768 for BASE)."""
        return int(self.config.encoder_embed_dim)

    @property
    def frame_rate(self) -> None:
        """None: the output rate is the input video's frame rate (one feature per frame).

        The SVT recipes feed 50 fps video (so features are at 50 Hz; the recipe YAML's `frame_rate`
        says so); AV-HuBERT itself was pre-trained on 25 fps video.
        """
        return None

    def num_frames(self, num_input_frames):
        """Output frames for `num_input_frames` video frames: the same number (int or tensor)."""
        return num_input_frames

    def frame_lengths(self, lens: torch.Tensor | None, num_frames: int,
                      batch_size: int | None = None) -> torch.Tensor:
        """Valid frames per utterance (long tensor) of a padded batch of `num_frames` frames:
        `round(lens * num_frames)`, within [1, num_frames] (SpeechBrain's convention)."""
        if lens is None:
            return torch.full((batch_size or 1,), num_frames, dtype=torch.long)
        lens = torch.as_tensor(lens)
        return torch.round(lens.double() * num_frames).long().clamp(1, num_frames)

    # ------------------------------------------------------------------ forward
    def train(self, mode: bool = True):
        """As `nn.Module.train`, but a frozen encoder stays in eval mode."""
        return super().train(mode and not self.freeze)

    def forward(self, video: torch.Tensor, lens: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a padded batch of lip clips.

        Args:
            video: `[B, 1, T, H, W]` float, normalised as the recipes do (H = W = 88 for the
                released models); `[B, T, H, W]` is accepted too. Padded at the end along T.
            lens: `[B]` relative lengths in (0, 1] (true length = round(lens * T)); None = all full.

        Returns:
            `[B, T, D]` float32 features; frames past an utterance's length are 0.
        """
        if video.dim() == 4:
            video = video.unsqueeze(1)
        if video.dim() != 5 or video.shape[1] != 1 or video.shape[2] == 0:
            raise ValueError(f"AVHubertVideoEncoder expects video shaped [batch, 1, frames, "
                             f"height, width] with at least one frame, got {tuple(video.shape)}")
        num_frames = video.shape[2]
        frame_mask = None
        if lens is not None:
            frame_lens = self.frame_lengths(lens, num_frames).to(video.device)
            if bool((frame_lens < num_frames).any()):
                positions = torch.arange(num_frames, device=video.device)
                frame_mask = positions[None, :] < frame_lens[:, None]
        padding_mask = None if frame_mask is None else ~frame_mask
        with torch.no_grad() if self.freeze else contextlib.nullcontext():
            features = self.extract_features(video, padding_mask)
        if self.output_norm:
            return masked_standardize(features, frame_mask)
        features = features.float()
        return features if frame_mask is None else features * frame_mask[:, :, None]

    def extract_features(self, video: torch.Tensor,
                         padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """fairseq `AVHubertModel.extract_finetune({'video': video, 'audio': None}, padding_mask)`.

        `[B, 1, T, H, W]` -> `[B, T, D]` (last layer, final LayerNorm), no output normalisation.
        `padding_mask` `[B, T]` is True on padded frames (fairseq's convention); the original
        recipe passed None.
        """
        frame_mask = None if padding_mask is None else ~padding_mask
        video = video.to(self.post_extract_proj.weight.dtype)
        if frame_mask is not None:  # padding = 0, as SpeechBrain pads: the stem sees the same zeros
            video = video * frame_mask[:, None, :, None, None].to(video.dtype)
        features_video = self._video_features(video, frame_mask)  # [B, D, T]
        features_audio = torch.zeros_like(features_video)  # audio=None -> zeros, audio first
        features = torch.cat([features_audio, features_video], dim=1).transpose(1, 2)
        features = self.layer_norm(features)  # over all 2D channels, the zeros included
        features = self.dropout_input(self.post_extract_proj(features))
        return self.encoder(features, padding_mask)

    def _video_features(self, video, frame_mask):
        """Front-end with fairseq's `feature_grad_mult` (`forward_features`)."""
        scale = self.config.feature_grad_mult
        if scale <= 0:
            with torch.no_grad():
                return self.feature_extractor_video(video, frame_mask)
        features = self.feature_extractor_video(video, frame_mask)
        if scale != 1.0 and torch.is_grad_enabled() and features.requires_grad:
            features = _GradMultiply.apply(features, scale)
        return features


def _check_overrides(overrides: Mapping[str, Any]):
    fields = {field.name for field in dataclasses.fields(AVHubertConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown AV-HuBERT config override(s): {', '.join(unknown)}")
    sizes = sorted(set(overrides) & set(_SIZE_FIELDS))
    if sizes:
        raise ValueError(f"cannot override {', '.join(sizes)}: architecture settings come from "
                         f"the checkpoint")


def _check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor],
                      source: str, config: AVHubertConfig):
    """Raise `CheckpointError` listing missing, unexpected and wrongly shaped tensors."""
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    mismatched = {name: (tuple(expected[name].shape), tuple(found[name].shape))
                  for name in expected if name in found
                  and tuple(expected[name].shape) != tuple(found[name].shape)}
    if not (missing or unexpected or mismatched):
        return

    def listing(names, limit=40):
        shown = ", ".join(names[:limit])
        return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")

    lines = [f"{source}: the checkpoint's tensors do not match the AV-HuBERT video encoder built "
             f"from its config ({config.encoder_layers} layers, D={config.encoder_embed_dim}, "
             f"FFN {config.encoder_ffn_embed_dim}, conv_pos {config.conv_pos}/"
             f"{config.conv_pos_groups}):"]
    if missing:
        lines.append(f"  missing ({len(missing)}): {listing(missing)}")
    if unexpected:
        lines.append(f"  unexpected ({len(unexpected)}): {listing(unexpected)}")
    if mismatched:
        shapes = [f"{name}: expected {list(want)}, found {list(got)}"
                  for name, (want, got) in mismatched.items()]
        lines.append(f"  shape mismatch ({len(mismatched)}): {listing(shapes)}")
    raise CheckpointError("\n".join(lines), missing, unexpected, mismatched)


# ==================================================================================================
# Reading fairseq checkpoints without fairseq
# ==================================================================================================
class StandIn:
    """Inert stand-in for an object pickled from a class we must not (or cannot) import.

    fairseq checkpoints pickle e.g. `fairseq.data.dictionary.Dictionary` in `task_state`. On load,
    such a global resolves to a subclass of this class (allow-listed under the original's dotted
    name): unpickling only stores the pickled state (`__dict__`, or `pickled_state` /
    `pickled_args` for other forms) and runs no code of the original class. `_pickle_name` is the
    original dotted name, which `save_fairseq_style_checkpoint` writes back into the pickle.
    """

    _pickle_name = "fairseq._StandIn"

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            self.pickled_args = (args, kwargs)

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)
        elif (isinstance(state, tuple) and len(state) == 2
              and all(s is None or isinstance(s, dict) for s in state)):
            for part in state:  # (dict state, slot state)
                self.__dict__.update(part or {})
        else:
            self.pickled_state = state

    def __getstate__(self):
        return self.__dict__.get("pickled_state", self.__dict__)

    def __repr__(self):
        return f"<stand-in for {self._pickle_name}: {sorted(self.__dict__)}>"


_STAND_IN_CLASSES: dict[str, type] = {}


def stand_in_class(full_name: str) -> type:
    """The (cached) inert `StandIn` subclass that replaces the global `full_name`."""
    if full_name not in _STAND_IN_CLASSES:
        _STAND_IN_CLASSES[full_name] = type(full_name.rpartition(".")[2], (StandIn,),
                                            {"_pickle_name": full_name, "__module__": __name__})
    return _STAND_IN_CLASSES[full_name]


#: Third-party globals that become inert stand-ins: the known ones of fairseq/AV-HuBERT files
#: (dictionary, tokenizer) and, for zip files whose globals are listed before loading, any other
#: global from these namespaces (fairseq is not installed; nothing of it is ever executed).
_KNOWN_STAND_INS = ("fairseq.data.dictionary.Dictionary",
                    "fairseq.data.encoders.sentencepiece_bpe.SentencepieceBPE",
                    "sentencepiece.SentencePieceProcessor",
                    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
                    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
                    "omegaconf.nodes.AnyNode", "omegaconf.nodes.StringNode",
                    "omegaconf.nodes.IntegerNode", "omegaconf.nodes.FloatNode",
                    "omegaconf.nodes.BooleanNode")
_STAND_IN_NAMESPACES = ("fairseq.", "omegaconf.", "sentencepiece.")


def _real_safe_globals() -> list:
    """Harmless real globals that fairseq checkpoints may reference (legacy `args`, numpy scalars
    in training metadata, containers in omegaconf metadata)."""
    import numpy as np

    safe: list = [(argparse.Namespace, "argparse.Namespace"), (typing.Any, "typing.Any"),
                  (dict, "builtins.dict"), (list, "builtins.list"), (tuple, "builtins.tuple"),
                  (object, "builtins.object"), (np.dtype, "numpy.dtype"),
                  (np.ndarray, "numpy.ndarray")]
    # numpy >= 2 names `numpy._core.multiarray`; files pickled under numpy 1.x `numpy.core...`
    multiarray = (getattr(np, "_core", None) or np.core).multiarray
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        safe += [(multiarray.scalar, f"{module}.scalar"),
                 (multiarray._reconstruct, f"{module}._reconstruct")]
    for name in getattr(np.dtypes, "__all__", ()):
        safe.append((getattr(np.dtypes, name), f"numpy.dtypes.{name}"))
    return safe


def _is_stand_in_name(name: str) -> bool:
    return name.startswith(_STAND_IN_NAMESPACES) or name in _KNOWN_STAND_INS


def _missing_checkpoint(path: Path) -> EncoderNotAvailableError:
    return EncoderNotAvailableError(
        f"AV-HuBERT checkpoint not found: '{path}'. The original video recipe uses the LARGE "
        f"pre-trained model (LRS3 + VoxCeleb2, iteration 5). Download it once on a machine with "
        f"internet access (see https://github.com/facebookresearch/av_hubert for its licence):\n"
        f"    wget -O /path/to/large_vox_iter5.pt {AVHUBERT_LARGE_URL}\n"
        f"then pass the path in the recipe YAML (avhubert_checkpoint: /path/to/large_vox_iter5.pt) "
        f"or on the command line (--avhubert_checkpoint=/path/to/large_vox_iter5.pt).")


def load_fairseq_checkpoint(path: str | os.PathLike) -> dict:
    """Unpickle a fairseq checkpoint safely: `torch.load(weights_only=True)` plus stand-ins.

    The allow-list is: inert `StandIn`s for the fairseq / omegaconf / sentencepiece objects that
    fairseq pickles next to the weights (`Dictionary` in `task_state`, the tokenizer of fine-tuned
    files, possibly omegaconf containers), `argparse.Namespace` (legacy `args`), and numpy's scalar
    / array / dtype reconstructors (training metadata). Zip-format files (every torch >= 1.6 save)
    are scanned for their globals first, so any fairseq-namespace global becomes a stand-in and any
    other unknown global is refused before unpickling; they are memory-mapped, so only the tensors
    actually used are read. Legacy-format files use the known names (retrying with a stand-in for
    a refused fairseq-namespace name).

    Returns:
        The checkpoint dict (`model`, `cfg`, `task_state`, ...), tensors on CPU.

    Raises:
        EncoderNotAvailableError: no such file (with download instructions).
        UnsafeCheckpointError: the file references globals outside the allow-list.
        CheckpointError: not a readable torch checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise _missing_checkpoint(path)
    is_zip = zipfile.is_zipfile(path)
    stand_ins = set(_KNOWN_STAND_INS)

    def allow_list():
        return _real_safe_globals() + [(stand_in_class(name), name) for name in sorted(stand_ins)]

    if is_zip:
        with torch.serialization.safe_globals(allow_list()):
            try:
                unknown = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception as error:  # noqa: BLE001 - not a torch.save zip
                raise CheckpointError(
                    f"{path}: not a readable torch checkpoint ({error})") from None
        stand_ins.update(name for name in unknown if _is_stand_in_name(name))
        refused = [name for name in unknown if not _is_stand_in_name(name)]
        if refused:
            raise _unsafe(path, refused)
    use_mmap = is_zip
    for _ in range(32):
        try:
            with torch.serialization.safe_globals(allow_list()):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True,
                                        mmap=use_mmap)
            break
        except pickle.UnpicklingError as error:
            message = str(error)
            match = re.search(r"GLOBAL (\S+) was not an allowed global", message)
            name = match.group(1) if match else None
            if name and _is_stand_in_name(name) and name not in stand_ins:
                stand_ins.add(name)  # legacy format: learn the fairseq names one by one
                continue
            if name or "allowlist" in message or "add_safe_globals" in message:
                raise _unsafe(path, [name] if name else [], message) from None
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({message})") from None
        except Exception as error:  # noqa: BLE001 - torch raises KeyError, RuntimeError, ...
            if use_mmap:  # an odd zip layout memory-mapping cannot handle: read it normally
                use_mmap = False
                continue
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from None
    else:
        raise UnsafeCheckpointError(f"{path}: too many unknown globals; refusing to load it")
    if not isinstance(checkpoint, Mapping) or "model" not in checkpoint:
        found = type(checkpoint).__name__
        if isinstance(checkpoint, Mapping):
            found += f" with keys {list(checkpoint)[:10]}"
        raise CheckpointError(f"{path}: not a fairseq checkpoint (expected a dict with a 'model' "
                              f"state dict, found a {found})")
    return dict(checkpoint)


def _unsafe(path: Path, names: list, detail: str = "") -> UnsafeCheckpointError:
    listed = ", ".join(names) if names else "see below"
    message = (f"Refusing to unpickle '{path}': it references {listed}, which is not on the "
               f"AV-HuBERT loader's allow-list (fairseq/omegaconf/sentencepiece objects become "
               f"inert stand-ins; argparse.Namespace and numpy scalars/arrays are allowed). "
               f"Loading it could run arbitrary code. If the file comes from a trusted source, "
               f"re-save its 'model' and 'cfg' entries as plain tensors/dicts.")
    reason = next((line.strip() for line in detail.splitlines() if "WeightsUnpickler" in line),
                  detail.strip().splitlines()[0] if detail.strip() else "")
    if reason:
        message += f"\n(torch: {reason})"
    return UnsafeCheckpointError(message)


def _plain(value):
    """Turn config containers from a checkpoint into plain dicts/lists (stand-ins unwrapped)."""
    if isinstance(value, argparse.Namespace):
        return {key: _plain(item) for key, item in vars(value).items()}
    if isinstance(value, StandIn):  # omegaconf containers / nodes (unverified: no real file)
        state = value.__dict__
        if "_content" in state:
            return _plain(state["_content"])
        if "_val" in state:
            return _plain(state["_val"])
        return value
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


#: Settings of a fine-tuned model's own config that fairseq copies over the pre-training config
#: when it builds the encoder (av_hubert `hubert_asr.py`; fine-tuned name -> pre-training name).
_FINETUNE_OVERRIDES = {"dropout": "dropout", "activation_dropout": "activation_dropout",
                       "dropout_input": "dropout_input", "attention_dropout": "attention_dropout",
                       "layerdrop": "encoder_layerdrop", "feature_grad_mult": "feature_grad_mult"}


def _encoder_state_and_config(checkpoint: Mapping, source: str):
    """`(state dict of the video encoder, model config dict, dropped key names)`."""
    state = checkpoint["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in state.values()):
        raise CheckpointError(f"{source}: ckpt['model'] is not a state dict of tensors")
    cfg = _plain(checkpoint.get("cfg"))
    if not cfg and checkpoint.get("args") is not None:  # legacy: flat argparse namespace
        cfg = {"model": _plain(checkpoint["args"])}
    model_cfg = (cfg or {}).get("model") or {}

    finetuned = any(name.startswith(FINETUNED_PREFIX) for name in state)
    if finetuned:
        dropped = [name for name in state if not name.startswith(FINETUNED_PREFIX)]
        state = {name[len(FINETUNED_PREFIX):]: t for name, t in state.items()
                 if name.startswith(FINETUNED_PREFIX)}
        inner = _plain((model_cfg.get("w2v_args") or {}).get("model")) or {}
        for outer_key, inner_key in _FINETUNE_OVERRIDES.items():
            if model_cfg.get(outer_key) is not None:
                inner = {**inner, inner_key: model_cfg[outer_key]}
        model_cfg = inner
    else:
        dropped = []
    name = model_cfg.get("_name")
    if name is not None and name != "av_hubert":
        raise CheckpointError(f"{source}: this is a '{name}' model, not AV-HuBERT ('av_hubert')")
    dropped += [k for k in state if k in DROPPED_KEYS or k.startswith(_DROPPED_PREFIXES)]
    state = {k: t for k, t in state.items()
             if not (k in DROPPED_KEYS or k.startswith(_DROPPED_PREFIXES))}
    if not model_cfg or "encoder_embed_dim" not in model_cfg:
        model_cfg = {**_infer_config(state, source), **model_cfg}
    return state, model_cfg, dropped


def _infer_config(state: Mapping[str, torch.Tensor], source: str) -> dict:
    """Sizes from tensor shapes, for checkpoints without a config (heads assume head_dim 64)."""
    try:
        dim = state["post_extract_proj.weight"].shape[0]
        weight_v = state["encoder.pos_conv.0.weight_v"]
        layers = {int(k.split(".")[2]) for k in state if k.startswith("encoder.layers.")}
        return dict(encoder_embed_dim=dim, encoder_layers=len(layers),
                    encoder_ffn_embed_dim=state["encoder.layers.0.fc1.weight"].shape[0],
                    encoder_attention_heads=max(1, dim // 64), conv_pos=weight_v.shape[2],
                    conv_pos_groups=dim // weight_v.shape[1])
    except (KeyError, IndexError) as error:
        raise CheckpointError(f"{source}: no model config in the checkpoint and the tensors do not "
                              f"look like AV-HuBERT (no {error})") from None
