"""FCPE distilled into a compact pitch network: the network, its place in the encoder and in
bundles, and the distillation's training, resumption and agreement report."""
import json
import math

import numpy as np
import pytest
import torch

from svt.inference.bundle import export_bundle, load_bundle
from svt.models.head import TranscriptionHead
from svt.models.pitch_network import (
    MEL_BINS,
    SALIENCE_BINS,
    CompactPitchNetwork,
    PitchFeatureCache,
    PitchNetworkEncoder,
    salience_to_midi,
)
from svt.training.pitch_distillation import (
    DistillationDataError,
    DistillationSettings,
    distill_pitch_network,
    learning_rate,
    mix_frames,
    pitch_agreement,
    recording_pieces,
    teacher_features,
    training_batch,
)
from test_pitch_network import harmonic_tone

SR = 16000
TINY = {"dim": 16, "num_layers": 1, "kernel_size": 5}


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return PitchNetworkEncoder(hidden_size=8, num_layers=1).eval()


@pytest.fixture(scope="module")
def tone_frames(teacher):
    """FCPE's log-mel and salience for tones every half semitone from MIDI 48.1 to 71.6, each
    0.7 s and a silent 0.3 s."""
    items = []
    for k in range(48):
        midi = 48.1 + 0.5 * k
        wav = np.concatenate([harmonic_tone(midi, 0.7), np.zeros(SR * 3 // 10, np.float32)])
        items.append((f"tone{k}", wav))
    return teacher_features(teacher, items)


def test_compact_network_is_fcpe_made_smaller():
    torch.manual_seed(0)
    network = CompactPitchNetwork(dim=16, num_layers=2, kernel_size=31).eval()
    mel = torch.randn(1, 200, MEL_BINS)
    with torch.no_grad():
        out = network(mel)
        assert out.shape == (1, 200, SALIENCE_BINS) and ((out > 0) & (out < 1)).all()
    assert CompactPitchNetwork().config() == {"dim": 256, "num_layers": 4, "expansion": 2,
                                               "kernel_size": 31}
    # Width 256 and 4 blocks: 2.03 M parameters against FCPE's 10.8 M.
    assert sum(p.numel() for p in CompactPitchNetwork().parameters()) == 2034536


@pytest.mark.parametrize("options", [{"dim": 0}, {"num_layers": 1.5}, {"kernel_size": 4},
                                     {"expansion": True}])
def test_compact_network_refuses_bad_options(options):
    with pytest.raises(ValueError, match="CompactPitchNetwork: "):
        CompactPitchNetwork(**options)


def test_encoder_computes_the_salience_with_the_compact_network(tmp_path, teacher):
    torch.manual_seed(1)
    encoder = PitchNetworkEncoder(hidden_size=8, num_layers=1, compact_pitch_network=TINY).eval()
    network = encoder.compact_pitch_network
    assert not any(p.requires_grad for p in network.parameters())
    assert {k for k in encoder.state_dict() if k.startswith("compact_pitch_network.")}
    wav = torch.from_numpy(harmonic_tone(60, 0.5))[None]
    mel, salience = encoder.pitch_features(wav)
    fcpe_mel, fcpe_salience = teacher.pitch_features(wav)
    assert torch.equal(mel, fcpe_mel)  # FCPE's mel front-end is kept
    with torch.no_grad():
        assert torch.allclose(salience, network(mel), atol=1e-6)
    assert not torch.allclose(salience, fcpe_salience, atol=1e-2)
    encoder.train()
    assert not network.training  # frozen: no training mode
    encoder.eval()

    # The bundle records the network's options and carries its weights.
    head = TranscriptionHead(input_size=encoder.output_size)
    export_bundle(tmp_path / "model", encoder, head,
                  {"modality": "audio", "label_frame_rate": 100.0, "sample_rate": SR,
                   "dur_threshold": 5, "onset_threshold": 0.5, "offset_threshold": 0.5})
    manifest = json.loads((tmp_path / "model" / "svt_bundle.json").read_text())
    assert manifest["encoder_config"]["compact_pitch_network"] == {**TINY, "expansion": 2}
    assert manifest["encoder_config"]["pitch_network"].startswith("compact network distilled")
    loaded = load_bundle(tmp_path / "model", pitch_precision="float32")  # as computed above
    assert torch.equal(loaded.encoder.pitch_features(wav)[1], salience)
    # Loaded for inference (bfloat16): the compact network runs under torch's bfloat16 autocast.
    rounded = load_bundle(tmp_path / "model").encoder.pitch_features(wav)[1]
    assert 0 < (rounded - salience).abs().max() < 0.02

    with pytest.raises(ValueError, match="compact_pitch_network must be"):
        PitchNetworkEncoder(hidden_size=8, compact_pitch_network=256)


def test_feature_cache_keeps_fcpe_and_each_compact_network_apart(tmp_path, teacher):
    cache = PitchFeatureCache(tmp_path)
    wav = torch.from_numpy(harmonic_tone(60, 0.5))[None]
    torch.manual_seed(2)
    first = PitchNetworkEncoder(hidden_size=8, num_layers=1, compact_pitch_network=TINY).eval()
    torch.manual_seed(3)
    second = PitchNetworkEncoder(hidden_size=8, num_layers=1, compact_pitch_network=TINY).eval()
    outputs = [cache.pitch_features(e, wav, None, ["utt"])[1] for e in (teacher, first, second)]
    names = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert len(names) == 3 and sum("compact" in n for n in names) == 2
    assert names[0].split("-")[:2] == names[1].split("-")[:2]  # the same utterance and samples
    for output, encoder in zip(outputs, (teacher, first, second)):
        expected = encoder.pitch_features(wav)[1].half().float()
        assert torch.allclose(output, expected, atol=1e-6)


def test_distillation_settings_are_checked():
    with pytest.raises(ValueError, match="steps must be a whole number, 1 or more"):
        DistillationSettings(steps=0)
    with pytest.raises(ValueError, match="learning_rate must be a number, 0 or more"):
        DistillationSettings(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="seed must be a whole number, 0 or more"):
        DistillationSettings(seed=-1)


def test_learning_rate_warms_up_then_decays_to_zero():
    settings = DistillationSettings(steps=110, warmup_steps=10, learning_rate=1.0)
    assert learning_rate(settings, 0) == pytest.approx(0.1)
    assert learning_rate(settings, 9) == pytest.approx(1.0)
    assert learning_rate(settings, 10) == pytest.approx(1.0)
    assert learning_rate(settings, 60) == pytest.approx(0.5)  # half-way through the cosine
    assert learning_rate(settings, 110) == pytest.approx(0.0, abs=1e-12)


def test_training_batches_are_seeded_by_step(tone_frames):
    settings = DistillationSettings(batch_size=4, crop_frames=30, seed=5)
    mel, target = training_batch(tone_frames, settings, 7)
    assert mel.shape == (4, 30, MEL_BINS) and target.shape == (4, 30, SALIENCE_BINS)
    again = training_batch(tone_frames, settings, 7)
    assert torch.equal(mel, again[0]) and torch.equal(target, again[1])
    assert not torch.equal(mel, training_batch(tone_frames, settings, 8)[0])
    # Every crop is a contiguous stretch of one utterance's frames.
    crop = mel[0].numpy()
    assert any(np.array_equal(crop, f[s:s + 30, :MEL_BINS].astype(np.float32))
               for f in tone_frames for s in range(len(f) - 29))


def test_distilled_network_hears_the_pitch_of_tones_it_never_heard(teacher, tone_frames):
    """Trained on FCPE's outputs for tones every half semitone (x.1, x.6), the compact network
    reports tones between them (x.35, x.85) within 20 cents of their pitch, as FCPE does."""
    settings = DistillationSettings(dim=48, num_layers=2, kernel_size=9, steps=600,
                                    batch_size=8, crop_frames=60, warmup_steps=20,
                                    learning_rate=5e-3)
    network = distill_pitch_network(tone_frames, settings)
    cent_table = teacher.fcpe.model.cent_table
    errors = []
    for midi in (50.35, 57.85, 64.35, 69.85):
        frames = teacher_features(teacher, [("held_out", harmonic_tone(midi, 0.7))])[0]
        mel = torch.from_numpy(frames[:, :MEL_BINS].astype(np.float32))[None]
        with torch.no_grad():
            salience = network(mel)
        f0 = salience_to_midi(salience, cent_table)[0, 15:55]
        assert (salience.max(-1).values[0, 15:55] >= 0.05).all()  # voiced
        errors.append(float((f0 - midi).abs().median()))
    assert max(errors) < 0.2, errors
    report = pitch_agreement(network, tone_frames, cent_table)
    assert report["voicing_agreement"] > 0.95 and report["f0_within_50_cents"] > 0.95, report


def test_distillation_resumes_to_the_same_weights(tmp_path, tone_frames):
    settings = DistillationSettings(**TINY, steps=12, batch_size=2, crop_frames=40,
                                    warmup_steps=3, checkpoint_every=4)
    whole = distill_pitch_network(tone_frames, settings)
    losses = []

    def stop_at_8(step, loss):
        losses.append((step, loss))
        if step == 8:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "distill.pt"
    with pytest.raises(KeyboardInterrupt):
        distill_pitch_network(tone_frames, settings, checkpoint=checkpoint, log=stop_at_8)
    assert [s for s, _ in losses] == [4, 8] and all(math.isfinite(v) for _, v in losses)
    resumed = distill_pitch_network(tone_frames, settings, checkpoint=checkpoint)
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert torch.load(checkpoint, weights_only=True)["step"] == 12

    with pytest.raises(ValueError, match="written with other settings"):
        distill_pitch_network(tone_frames, DistillationSettings(**TINY, steps=13),
                              checkpoint=checkpoint)


def test_pitch_agreement_counts_frames_by_hand():
    cent_table = torch.linspace(1200.0 * math.log2(32.7 / 10), 1200.0 * math.log2(1975.5 / 10),
                                SALIENCE_BINS)
    step = float(cent_table[1] - cent_table[0])  # about 20 cents
    frames = np.zeros((10, MEL_BINS + SALIENCE_BINS), np.float32)
    for t in range(8):  # 8 voiced frames at bin 100, 2 unvoiced
        frames[t, MEL_BINS + 100] = 0.9

    class Shifted(torch.nn.Module):
        """The teacher's salience moved by `bins` bins, read from the frames themselves."""

        def __init__(self, bins):
            super().__init__()
            self.bins = bins

        def forward(self, mel):
            salience = torch.from_numpy(frames[None, :, MEL_BINS:])
            return torch.roll(salience, self.bins, dims=-1)

    same = pitch_agreement(Shifted(0), [frames], cent_table)
    assert same == {"frames": 10, "voicing_agreement": 1.0, "voiced_frames": 8,
                    "f0_within_50_cents": 1.0, "f0_within_20_cents": 1.0,
                    "median_f0_distance_cents": 0.0}
    moved = pitch_agreement(Shifted(5), [frames], cent_table)
    assert moved["f0_within_50_cents"] == 0.0
    assert moved["median_f0_distance_cents"] == pytest.approx(5 * step, rel=1e-4)


def test_teacher_must_be_fcpe():
    encoder = PitchNetworkEncoder(hidden_size=8, num_layers=1, compact_pitch_network=TINY)
    with pytest.raises(ValueError, match="the teacher is FCPE"):
        teacher_features(encoder, [("a", np.zeros(1600, np.float32))])
    with pytest.raises(ValueError, match=r"needs arrays \(T, 488\)"):
        distill_pitch_network([np.zeros((10, 5), np.float16)], DistillationSettings(**TINY))


def test_recordings_are_read_in_pieces_of_the_utterance_length(tmp_path):
    import soundfile as sf
    import soxr

    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (int(44100 * 12.4), 2)).astype(np.float32)
    (tmp_path / "take1").mkdir()
    sf.write(tmp_path / "take1" / "a.wav", stereo, 44100)
    mono = rng.uniform(-0.5, 0.5, int(16000 * 10.5)).astype(np.float32)
    sf.write(tmp_path / "b.flac", mono, 16000, subtype="PCM_24")
    sf.write(tmp_path / "c.wav", mono[:8000], 16000)        # 0.5 s: shorter than a piece
    (tmp_path / "notes.txt").write_text("not audio")
    pieces = list(recording_pieces(tmp_path))
    # 12.4 s: 5 + 5 + 2.4 s; 10.5 s: 5 + 5 (the last 0.5 s is under MIN_PIECE_SECONDS); none of c.
    assert [item_id for item_id, _ in pieces] == [
        "b.flac@0", "b.flac@80000", "take1/a.wav@0", "take1/a.wav@80000", "take1/a.wav@160000"]
    assert [len(wav) for _, wav in pieces] == [80000, 80000, 80000, 80000, 38400]
    # The pieces are the 16-kHz mono recording, cut.
    b, _ = sf.read(tmp_path / "b.flac", dtype="float32")
    np.testing.assert_array_equal(np.concatenate([w for _, w in pieces[:2]]), b[:160000])
    a, _ = sf.read(tmp_path / "take1" / "a.wav", dtype="float32")    # as stored (16-bit)
    a = soxr.resample(a.mean(axis=1), 44100, 16000)
    np.testing.assert_allclose(np.concatenate([w for _, w in pieces[2:]]), a, atol=1e-6)


def test_recordings_folder_must_hold_audio(tmp_path):
    with pytest.raises(DistillationDataError, match="is not a folder"):
        list(recording_pieces(tmp_path / "nowhere"))
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(DistillationDataError, match="no audio files"):
        list(recording_pieces(tmp_path))
    import soundfile as sf

    sf.write(tmp_path / "blip.wav", np.zeros(8000, np.float32), 16000)     # 0.5 s
    with pytest.raises(DistillationDataError, match="every audio file here is shorter than 1 s"):
        list(recording_pieces(tmp_path))
    sf.write(tmp_path / "take.wav", np.zeros(16000, np.float32), 16000)    # 1 s: one piece
    assert [(i, len(w)) for i, w in recording_pieces(tmp_path)] == [("take.wav@0", 16000)]
    with pytest.raises(ValueError, match="piece_seconds must be at least 1 s"):
        list(recording_pieces(tmp_path, piece_seconds=0.0))


def test_recordings_are_drawn_for_their_share_of_the_crops():
    generated = [np.zeros((3, 1)) for _ in range(100)]
    recorded = [np.ones((3, 1)) for _ in range(10)]
    mixed = mix_frames(generated, recorded, 0.3)
    # 0.3 / 0.7 * 100 = 42.9 draws wanted: the 10 recordings 4 times, the same arrays.
    assert len(mixed) == 140
    assert all(a is b for a, b in zip(mixed, generated + recorded * 4))
    for unmixed in (mix_frames(generated, recorded, 0.0), mix_frames(generated, [], 0.5)):
        assert len(unmixed) == 100 and all(a is b for a, b in zip(unmixed, generated))
    assert len(mix_frames(generated, recorded, 0.01)) == 110     # at least once
    for share in (1.0, -0.1):
        with pytest.raises(ValueError, match="recorded_share"):
            mix_frames(generated, recorded, share)
