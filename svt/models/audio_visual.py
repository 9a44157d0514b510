"""The audio-visual model of an exported audio-visual bundle: audio encoder, lip-video encoder,
RCA fusion (`svt.models.fusion`) and head in one module, waveform and lip video to frame logits.

Training fuses precomputed features (`svt.training.fusion`); this module puts the trained parts
back together for inference (`svt.inference.bundle` loads it from the `audio`/`video` sub-bundles
named in AV_BUNDLE_PARTS), so `svt.transcribe` runs it like any single-modality model.
"""
from __future__ import annotations

import torch

# ================================================================================================
# Audio-visual inference bundles
# ================================================================================================
#: Sub-folders of an audio-visual bundle holding the audio and the video model's own bundles.
AV_BUNDLE_PARTS = ("audio", "video")


class AudioVisualModel(torch.nn.Module):
    """Audio encoder + video encoder + RCA fusion + head: waveform and lip video to frame logits.

    `encoder` is the audio encoder: it sets the frame grid (`svt.transcribe` chunks on it); the
    video is expected at the same frame rate (50 fps) and aligned with the audio from frame 0.
    """

    def __init__(self, audio_encoder, video_encoder, fusion, head, settings: dict):
        super().__init__()
        self.encoder = audio_encoder
        self.video_encoder = video_encoder
        self.fusion = fusion
        self.head = head
        self.settings = dict(settings)

    @property
    def frame_rate(self) -> float:
        return float(self.encoder.frame_rate)

    def video_transform(self):
        """The video model's evaluation preprocessing (centre crop, its normalisation)."""
        from svt.data.video import VideoTransform

        return VideoTransform(train=False, per_clip=self.settings.get("video_norm") == "per_clip")

    def forward(self, wavs, wav_lens=None, videos=None, video_lens=None):
        """`wavs` (B, N) and preprocessed `videos` (B, T, 88, 88), both padded at the end, with
        relative lengths -> logits (B, frames, 20)."""
        if videos is None:
            raise ValueError("an audio-visual model needs the lip video as well as the audio")
        audio = self.encoder(wavs, wav_lens)
        video = self.video_encoder(videos.unsqueeze(1), video_lens)
        return self.head(self.fusion(audio, video, wav_lens))
