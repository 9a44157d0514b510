"""The context network with a bounded look-ahead (`lookahead_frames`): a model that can stream.

Checked against the definition (frame t read after frame t + L of a forward-only GRU), against
the same network run whole (a stream stepped with its state carried gives the same frames), and
through a bundle and `svt.LiveTranscriber`."""
import json

import numpy as np
import pytest
import torch

import svt
from svt.inference.bundle import export_bundle, load_bundle
from svt.inference.live import FrameStepper, LiveError, LiveTranscriber
from svt.models.head import TranscriptionHead
from svt.models.pitch_network import PitchNetworkEncoder

SR = 16000
LOOK = 5


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return PitchNetworkEncoder(hidden_size=8, num_layers=2, lookahead_frames=LOOK).eval()


SETTINGS = {"modality": "audio", "label_frame_rate": 100.0, "sample_rate": SR,
            "dur_threshold": 5, "onset_threshold": 0.5, "offset_threshold": 0.5,
            "decoder": "pitch"}


@pytest.fixture(scope="module")
def lookahead_model(encoder, tmp_path_factory):
    """The tiny look-ahead network with a head, through a bundle."""
    folder = tmp_path_factory.mktemp("lookahead") / "model"
    export_bundle(folder, encoder, TranscriptionHead(encoder.output_size), SETTINGS)
    return load_bundle(folder)


def test_frame_t_is_read_after_frame_t_plus_the_lookahead(encoder):
    assert not encoder.context.bidirectional and encoder.context.hidden_size == 16
    x = torch.randn(1, 40, encoder.input_size)
    lengths = torch.tensor([40])
    with torch.no_grad():
        out = encoder.run_context(x, lengths)
        changed = x.clone()
        changed[:, 25] += 1.0  # frame 25 is first heard by frame 25 - LOOK
        moved = encoder.run_context(changed, lengths)
        # The definition: a forward GRU over the frames and LOOK zero frames, shifted.
        padded = torch.cat([x, torch.zeros(1, LOOK, x.shape[2])], dim=1)
        expected = encoder.context(padded)[0][:, LOOK:]
    assert out.shape == (1, 40, 16)
    torch.testing.assert_close(out, expected)
    differs = (out - moved).abs().amax(-1)[0] > 0
    assert not differs[:25 - LOOK].any() and differs[25 - LOOK]


def test_padded_items_see_zeros_past_their_end(encoder):
    x = torch.randn(2, 30, encoder.input_size)
    with torch.no_grad():
        batch = encoder.run_context(x, torch.tensor([30, 17]))
        alone = encoder.run_context(x[1:, :17], torch.tensor([17]))
    torch.testing.assert_close(batch[1, :17], alone[0])


def test_lookahead_is_checked_and_kept_in_bundles(encoder, tmp_path):
    for bad in (-1, 501, 2.5, True, "12"):
        with pytest.raises(ValueError, match="lookahead_frames"):
            PitchNetworkEncoder(hidden_size=8, lookahead_frames=bad)
    head = TranscriptionHead(encoder.output_size)
    export_bundle(tmp_path / "model", encoder, head, SETTINGS)
    manifest = json.loads((tmp_path / "model" / "svt_bundle.json").read_text())
    assert manifest["encoder_config"]["lookahead_frames"] == LOOK
    # float32: FCPE as the in-memory encoder computes it (inference loads bfloat16 products)
    model = load_bundle(tmp_path / "model", pitch_precision="float32")
    assert model.encoder.lookahead_frames == LOOK
    wav = torch.randn(1, SR) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(model(wav), head(encoder(wav)))
    # Bundles written before the setting existed hold a bidirectional network.
    assert load_bundle(svt.inference.bundle.DEFAULT_MODEL).encoder.lookahead_frames is None


def test_stepping_with_the_state_carried_equals_the_whole_run(lookahead_model):
    model = lookahead_model
    stepper = FrameStepper(model, hop_frames=7, left_frames=0, right_samples=0, carry_state=True)
    x = torch.randn(1, 60, model.encoder.input_size)
    pitch = torch.zeros(1, 60, 2)
    with torch.no_grad():
        whole = model.head(torch.cat([model.encoder.run_context(x, torch.tensor([60])), pitch],
                                     dim=-1))
        onsets = []
        for first in range(0, 60, 7):
            count = min(7, 60 - first)
            # The step sees its frames and whatever follows in its window (here: to the end).
            onsets.append(stepper._forward_only(x[:, first:], pitch[:, first:first + count],
                                                count)[0])
    from svt.models.head import frame_predictions

    expected = frame_predictions(whole)[0][0]
    torch.testing.assert_close(torch.cat(onsets), expected, atol=1e-6, rtol=0)


def test_live_transcriber_streams_a_lookahead_model(lookahead_model):
    model = lookahead_model
    live = LiveTranscriber(model, latency=0.3)
    g = live.geometry
    # The right context holds the look-ahead and the pitch network's window for its last frame.
    assert g.carry_state and g.right_samples >= LOOK * 160 + 1024
    assert g.hop_frames * 160 + g.right_samples <= 0.3 * SR
    t = np.arange(3 * SR) / SR
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) * (t % 0.5 < 0.35)).astype(np.float32)
    one = live.push(wav, SR) + live.flush()
    live.reset()
    rng = np.random.default_rng(1)
    two, i = [], 0
    for size in rng.integers(1, 4000, 200):
        two += live.push(wav[i:i + size], SR)
        i += size
    two += live.push(wav[i:], SR) + live.flush()
    assert [(e.kind, e.time, e.pitch) for e in one] == [(e.kind, e.time, e.pitch) for e in two]
    with pytest.raises(LiveError, match="below this model's look-ahead"):
        LiveTranscriber(model, latency=0.1)
