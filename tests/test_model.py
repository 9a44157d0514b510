"""Head and loss: checked against SpeechBrain's own masked losses (the original used SpeechBrain's
bce_loss / nll_loss with relative lengths) and against hand-computed values."""
import math

import numpy as np
import pytest
import torch

from svt.models.head import (TranscriptionHead, TranscriptionLoss, frame_predictions,
                             legato_onset_weights, transcription_loss)
from svt.notes.labels import notes_to_frames


def random_batch(b=3, t=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, 20, generator=g)
    labels = torch.stack([torch.randint(0, 2, (b, t), generator=g),
                          torch.randint(0, 2, (b, t), generator=g),
                          torch.randint(0, 5, (b, t), generator=g),
                          torch.randint(0, 13, (b, t), generator=g)], dim=-1)
    lengths = torch.tensor([1.0, 0.5, 0.73])[:b]
    return logits, labels, lengths


def hand_reference(logits, labels, lengths, reduction="mean"):
    """The recipe loss written out with torch: per-frame BCE (onset pos_weight 15) and NLL of the
    log-softmax, averaged over the frames j < lengths[b] * T (per utterance for "batch")."""
    num_frames = labels.shape[1]
    mask = (torch.arange(num_frames)[None, :] < lengths[:, None] * num_frames).float()
    per_frame = {
        "onset": torch.nn.functional.binary_cross_entropy_with_logits(
            logits[..., 0], labels[..., 0].float(), reduction="none",
            pos_weight=torch.tensor(15.0)),
        "offset": torch.nn.functional.binary_cross_entropy_with_logits(
            logits[..., 1], labels[..., 1].float(), reduction="none"),
        "octave": -torch.log_softmax(logits[..., 2:7], -1).gather(
            -1, labels[..., 2:3].long())[..., 0],
        "pitch": -torch.log_softmax(logits[..., 7:20], -1).gather(
            -1, labels[..., 3:4].long())[..., 0],
    }
    if reduction == "mean":
        return {k: (v * mask).sum() / mask.sum() for k, v in per_frame.items()}
    return {k: (v * mask).sum(1) / mask.sum(1) for k, v in per_frame.items()}


@pytest.mark.parametrize("reduction", ["mean", "batch"])
def test_loss_matches_the_masked_losses_written_out(reduction):
    logits, labels, lengths = random_batch()
    total, parts = transcription_loss(logits, labels, lengths, reduction=reduction)
    expected = hand_reference(logits, labels, lengths, reduction)
    for name in parts:
        torch.testing.assert_close(parts[name], expected[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total, sum(expected.values()), rtol=1e-5, atol=1e-6)


def test_loss_hand_computed_single_frame():
    logits = torch.zeros(1, 1, 20)
    labels = torch.tensor([[[1, 0, 2, 5]]])
    total, parts = transcription_loss(logits, labels, torch.tensor([1.0]))
    assert parts["onset"].item() == pytest.approx(15 * math.log(2))
    assert parts["offset"].item() == pytest.approx(math.log(2))
    assert parts["octave"].item() == pytest.approx(math.log(5))
    assert parts["pitch"].item() == pytest.approx(math.log(13))
    assert total.item() == pytest.approx(16 * math.log(2) + math.log(5) + math.log(13))


def test_length_difference_is_truncated_or_rejected():
    logits, labels, lengths = random_batch(t=40)
    total, _ = transcription_loss(logits[:, :38], labels, lengths)
    ref, _ = transcription_loss(logits[:, :38], labels[:, :38], lengths)
    torch.testing.assert_close(total, ref)
    with pytest.raises(ValueError, match="frame rate"):
        transcription_loss(logits[:, :30], labels, lengths)


def test_padded_frames_do_not_count():
    logits, labels, lengths = random_batch()
    total, _ = transcription_loss(logits, labels, lengths, reduction="batch")
    changed = logits.clone()
    changed[1, 25:] = 100.0  # beyond item 1's valid half
    total2, _ = transcription_loss(changed, labels, lengths, reduction="batch")
    torch.testing.assert_close(total, total2)


# A note entered legato at 0.5 s (frame 50), one after a 50-ms rest (frame 95) and one after a
# 15-ms rest (frame 122: one silent label frame before it), at 100 frames/s.
LEGATO_SONG = [[0.1, 0.5, 60], [0.5, 0.9, 62], [0.95, 1.2, 64], [1.215, 1.4, 65]]


def test_legato_onset_weights_blank_only_around_notes_entered_voiced():
    labels = torch.from_numpy(notes_to_frames(LEGATO_SONG, 150, 100.0))[None]
    assert torch.nonzero(labels[0, :, 0]).ravel().tolist() == [10, 50, 95, 122]
    weights = legato_onset_weights(labels, 2)
    assert torch.nonzero(weights[0] == 0).ravel().tolist() == [48, 49, 50, 51, 52]
    assert torch.equal(legato_onset_weights(labels, 0), torch.ones(1, 150))
    # An onset in an utterance's first frame has no frame before it: articulated.
    assert torch.equal(legato_onset_weights(labels[:, 50:], 2)[0, :3], torch.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        legato_onset_weights(labels, -1)


def test_loss_ignores_onsets_only_in_the_legato_window():
    labels = torch.from_numpy(notes_to_frames(LEGATO_SONG, 150, 100.0))[None]
    logits = torch.randn(1, 150, 20, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([1.0])
    loss = TranscriptionLoss(onset_pos_weight=15.0, legato_onset_ignore_frames=3)
    _, parts = loss(logits, labels, lengths)
    # Written out: the onset BCE summed over the frames outside 47..53, over all 150 frames.
    per_frame = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[0, :, 0], labels[0, :, 0].float(), reduction="none", pos_weight=torch.tensor(15.0))
    keep = torch.ones(150)
    keep[47:54] = 0
    torch.testing.assert_close(parts["onset"], (per_frame * keep).sum() / 150)
    # The other parts are those of the plain loss; window 0 is the plain loss.
    _, plain = transcription_loss(logits, labels, lengths)
    for name in ("offset", "octave", "pitch"):
        torch.testing.assert_close(parts[name], plain[name])
    _, zero = TranscriptionLoss(onset_pos_weight=15.0)(logits, labels, lengths)
    torch.testing.assert_close(zero["onset"], plain["onset"])
    with pytest.raises(ValueError, match="legato_onset_ignore_frames"):
        TranscriptionLoss(legato_onset_ignore_frames=-2)


def test_head_keys_and_predictions():
    head = TranscriptionHead(8)
    assert set(head.state_dict()) == {"w.weight", "w.bias"}
    logits = torch.full((1, 2, 20), -5.0)
    logits[0, 0, 0] = 5.0          # onset
    logits[0, :, 2 + 3] = 5.0      # octave 3
    logits[0, 1, 7 + 12] = 5.0     # frame 1 pitch class silence
    logits[0, 0, 7 + 4] = 5.0      # frame 0 pitch class E
    onset, offset, octave, pc = frame_predictions(logits)
    assert onset[0, 0] > 0.99 and onset[0, 1] < 0.01 and (offset < 0.01).all()
    np.testing.assert_array_equal(octave[0].numpy(), [3, 3])
    np.testing.assert_array_equal(pc[0].numpy(), [4, 12])
