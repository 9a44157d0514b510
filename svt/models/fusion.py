"""Residual cross-attention (RCA) fusion of audio and video features (docs/original-recipes.md §7.2).

Two RCA layers run side by side: one takes the audio as keys/values and the video as queries, the
other the reverse; their outputs are summed. Inside a layer ONE multi-head attention module serves
both as self-attention over the key/value stream and as cross-attention from the query stream:

    S = MHA(X, X, X)                 self-attention of the key/value stream X
    C = MHA(Y, X, X)                 cross-attention: stream Y queries X
    H = LayerNorm(X + a*S + (1-a)*C)
    O = LayerNorm(H + FFN(H))        post-norm, FFN = Linear -> ReLU -> Linear

Both streams get the same fixed sinusoidal positions. The video is aligned to the audio frame count
first (truncated, or zero-padded). Deliberate difference from the original: padded frames are
masked out of every attention (`key_padding_mask` from the true lengths); the original attended to
them. With the paper's sizes (d_model 1024, 8 heads, d_ffn 3072) the fusion has 20,996,096
parameters, as the original.

Extension: `video_size` lets the video encoder's feature size differ from the audio's (e.g. a BASE
AV-HuBERT, 768, with a LARGE audio model, 1024): a learned linear projection maps the video
features to `d_model` first. Left at None (the paper's setting) there is no projection.
"""
from __future__ import annotations

import math

import torch
from torch import nn

#: Above this many frames of length mismatch the streams probably do not belong together.
ALIGNMENT_WARNING_FRAMES = 15


def sinusoidal_positions(num_frames: int, d_model: int, device=None) -> torch.Tensor:
    """`pe[t, 2i] = sin(t / 10000^(2i/d))`, `pe[t, 2i+1] = cos(...)`, shape (T, d)."""
    position = torch.arange(num_frames, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, device=device, dtype=torch.float32)
                    * (-math.log(10000.0) / d_model))
    pe = torch.zeros(num_frames, d_model, device=device)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe


def align_video_to_audio(video: torch.Tensor, num_audio_frames: int) -> torch.Tensor:
    """Truncate or zero-pad the video features (B, T2, D) to `num_audio_frames` frames."""
    difference = video.shape[1] - num_audio_frames
    if difference >= 0:
        return video[:, :num_audio_frames]
    return torch.nn.functional.pad(video, (0, 0, 0, -difference))


class RCALayer(nn.Module):
    """One residual cross-attention layer (post-norm, attention weights shared by the self- and
    cross-attention)."""

    def __init__(self, d_model=1024, nhead=8, d_ffn=3072, alpha=0.5, dropout=0.0):
        super().__init__()
        self.alpha = alpha
        self.attention = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ffn), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(d_ffn, d_model))
        self.norm2 = nn.LayerNorm(d_model, eps=1e-6)
        self.dropout = nn.Dropout(dropout)

    def forward(self, kv: torch.Tensor, query: torch.Tensor, key_padding_mask=None):
        self_att, _ = self.attention(kv, kv, kv, key_padding_mask=key_padding_mask,
                                     need_weights=False)
        cross_att, _ = self.attention(query, kv, kv, key_padding_mask=key_padding_mask,
                                      need_weights=False)
        hidden = self.norm1(kv + self.dropout(self.alpha * self_att
                                              + (1 - self.alpha) * cross_att))
        return self.norm2(hidden + self.dropout(self.ffn(hidden)))


class FusionRCA(nn.Module):
    """Audio (B, T1, D) + video (B, T2, D) -> fused (B, T1, D).

    `zero_video=True` is the audio-only control of the paper (`train_rca_a`): the same network with
    the video stream replaced by zeros.
    """

    def __init__(self, d_model=1024, nhead=8, d_ffn=3072, alpha=0.5, dropout=0.0,
                 zero_video=False, video_size=None):
        super().__init__()
        self.d_model = d_model
        self.zero_video = zero_video
        self.video_size = d_model if video_size is None else int(video_size)
        # Only when the sizes differ, so the paper's configuration keeps its parameter count.
        self.video_projection = (nn.Linear(self.video_size, d_model)
                                 if self.video_size != d_model else None)
        self.audio_kv = RCALayer(d_model, nhead, d_ffn, alpha, dropout)   # video queries audio
        self.video_kv = RCALayer(d_model, nhead, d_ffn, alpha, dropout)   # audio queries video

    @property
    def output_size(self) -> int:
        return self.d_model

    def forward(self, audio: torch.Tensor, video: torch.Tensor | None = None, lens=None):
        """`lens`: relative lengths (B,) of the valid audio frames (None: all valid)."""
        batch, frames, _ = audio.shape
        if audio.shape[-1] != self.d_model:
            raise ValueError(f"FusionRCA(d_model={self.d_model}) got audio features of size "
                             f"{audio.shape[-1]}: set d_model to the audio encoder's feature size")
        if self.zero_video or video is None:
            video = torch.zeros_like(audio)  # the control's video: zeros in the fused space
        else:
            if video.shape[-1] != self.video_size:
                raise ValueError(f"FusionRCA(video_size={self.video_size}) got video features of "
                                 f"size {video.shape[-1]}: set video_size to the video encoder's "
                                 "feature size (null when it equals d_model)")
            video = align_video_to_audio(video.to(audio.dtype), frames)
            if self.video_projection is not None:
                video = self.video_projection(video)
        pe = sinusoidal_positions(frames, self.d_model, audio.device).to(audio.dtype)
        audio, video = audio + pe, video + pe
        mask = None
        if lens is not None:
            valid = torch.round(lens.float() * frames).clamp(min=1)
            mask = torch.arange(frames, device=audio.device)[None, :] >= valid[:, None]
        fused = self.audio_kv(audio, video, mask) + self.video_kv(video, audio, mask)
        if mask is not None:
            fused = fused.masked_fill(mask[..., None], 0.0)
        return fused
