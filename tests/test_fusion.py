import math

import pytest
import torch

from svt.models.fusion import (
    FusionRCA,
    RCALayer,
    align_video_to_audio,
    sinusoidal_positions,
)


def test_parameter_count_matches_the_paper():
    fusion = FusionRCA()
    assert sum(p.numel() for p in fusion.parameters()) == 20_996_096
    layer = RCALayer()
    assert sum(p.numel() for p in layer.parameters()) == 10_498_048


def test_shapes_and_alignment():
    fusion = FusionRCA(d_model=16, nhead=2, d_ffn=32).eval()
    audio = torch.randn(2, 20, 16)
    assert fusion(audio, torch.randn(2, 23, 16)).shape == (2, 20, 16)
    assert fusion(audio, torch.randn(2, 17, 16)).shape == (2, 20, 16)
    video = torch.randn(1, 5, 3)
    torch.testing.assert_close(align_video_to_audio(video, 3), video[:, :3])
    padded = align_video_to_audio(video, 7)
    assert padded.shape == (1, 7, 3) and (padded[:, 5:] == 0).all()


def test_sinusoidal_positions_hand_computed():
    pe = sinusoidal_positions(3, 4)
    assert pe[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert pe[2, 0].item() == pytest.approx(math.sin(2))
    assert pe[2, 3].item() == pytest.approx(math.cos(2 / 100))


def test_padded_frames_are_masked():
    torch.manual_seed(0)
    fusion = FusionRCA(d_model=16, nhead=2, d_ffn=32).eval()
    audio, video = torch.randn(1, 12, 16), torch.randn(1, 12, 16)
    alone = fusion(audio[:, :8], video[:, :8])
    batch_audio = torch.cat([audio, torch.randn(1, 12, 16)])
    batch_audio[0, 8:] = 99.0  # padding garbage must not leak into valid frames
    batch_video = torch.cat([video, torch.randn(1, 12, 16)])
    batch_video[0, 8:] = -99.0
    out = fusion(batch_audio, batch_video, lens=torch.tensor([8 / 12, 1.0]))
    torch.testing.assert_close(out[0, :8], alone[0], atol=1e-5, rtol=1e-5)
    assert (out[0, 8:] == 0).all()


def test_zero_video_control_ignores_video():
    torch.manual_seed(0)
    fusion = FusionRCA(d_model=16, nhead=2, d_ffn=32, zero_video=True).eval()
    audio = torch.randn(2, 10, 16)
    torch.testing.assert_close(fusion(audio, torch.randn(2, 10, 16)), fusion(audio, None))


def test_video_of_another_size_is_projected_to_d_model():
    torch.manual_seed(0)
    assert FusionRCA(d_model=16, nhead=2, d_ffn=32).video_projection is None
    fusion = FusionRCA(d_model=16, nhead=2, d_ffn=32, video_size=6).eval()
    count = sum(p.numel() for p in FusionRCA(d_model=16, nhead=2, d_ffn=32).parameters())
    assert sum(p.numel() for p in fusion.parameters()) == count + 6 * 16 + 16
    audio, video = torch.randn(2, 10, 16), torch.randn(2, 11, 6)
    out = fusion(audio, video)
    assert out.shape == (2, 10, 16)
    # The projection is applied to the aligned video, then the same RCA runs as for 16-d video.
    projected = fusion.video_projection(video[:, :10])
    fusion.video_projection = None
    fusion.video_size = 16
    torch.testing.assert_close(out, fusion(audio, projected))


def test_feature_sizes_are_checked_with_a_clear_error():
    fusion = FusionRCA(d_model=16, nhead=2, d_ffn=32, video_size=6)
    with pytest.raises(ValueError, match="audio features of size 8"):
        fusion(torch.randn(1, 4, 8), torch.randn(1, 4, 6))
    with pytest.raises(ValueError, match="video_size=6.*size 16"):
        fusion(torch.randn(1, 4, 16), torch.randn(1, 4, 16))
    # The audio-only control takes zeros in d_model whatever the video size.
    control = FusionRCA(d_model=16, nhead=2, d_ffn=32, video_size=6, zero_video=True)
    assert control(torch.randn(1, 4, 16), torch.zeros(1, 4, 16)).shape == (1, 4, 16)
