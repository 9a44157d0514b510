"""The frozen-pitch-network encoder, the recorded-singing corpus, the SSVD layout and the pYIN
baseline."""
import json

import numpy as np
import pytest
import torch
from mir_eval.util import midi_to_hz

from svt.audio import write_audio
from svt.baselines import contour_to_notes
from svt.data.utterances import PrepareError, read_csv
from svt.datasets.ssvd import prepare_ssvd
from svt.inference.bundle import export_bundle, load_bundle
from svt.models.head import TranscriptionHead
from svt.models.pitch_network import (
    FastPitchNetwork,
    PitchNetworkEncoder,
    _depthwise,
    _depthwise_by_taps,
    gru_without_packing,
    reverse_within_lengths,
)
from svt.notes.formats import read_notes
from svt.synthetic.recorded_singing import (
    CorpusStyle,
    make_recorded_corpus,
    render_recorded_song,
)

SR = 16000


def harmonic_tone(midi, seconds, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    f0 = float(midi_to_hz(midi))
    return (sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return PitchNetworkEncoder(hidden_size=16, num_layers=1).eval()


def test_geometry_and_frozen_weights_outside_the_state_dict(encoder):
    wav = torch.from_numpy(harmonic_tone(60, 1.0))[None]
    features = encoder(wav)
    assert features.shape == (1, 16000 // 160 + 1, encoder.output_size) == (1, 101, 34)
    assert encoder.num_frames(16000) == 101 and encoder.frame_rate == 100.0
    # FCPE (43 MB) is loaded from its wheel, never trained, saved or handed to optimisers.
    assert not any(k.startswith("fcpe") for k in encoder.state_dict())
    # BatchNorm(128) + Linear(128 + 360 + 1 -> 192) + one bidirectional GRU layer of 16.
    expected = 2 * 128 + (489 * 192 + 192) + 2 * 3 * (192 * 16 + 16 * 16 + 2 * 16)
    assert sum(p.numel() for p in encoder.parameters()) == expected
    assert all(not p.requires_grad for p in encoder.fcpe.parameters())


@pytest.mark.parametrize("midi", [45.0, 57.3, 69.5, 76.8])
def test_sung_pitch_follows_the_tone(encoder, midi):
    wav = torch.from_numpy(harmonic_tone(midi, 1.0))[None]
    with torch.no_grad():
        sung = encoder.sung_pitch(encoder(wav))[0].numpy()
    middle = sung[20:80]
    assert np.isfinite(middle).all()
    assert abs(np.median(middle) - midi) < 0.1  # within 10 cents of the tone's pitch


def test_silence_is_unvoiced(encoder):
    with torch.no_grad():
        sung = encoder.sung_pitch(encoder(torch.zeros(1, 16000)))
    assert torch.isnan(sung).all()


def test_padded_batch_equals_items_alone(encoder):
    a = torch.from_numpy(harmonic_tone(60, 1.0))
    b = torch.from_numpy(harmonic_tone(64, 0.5))
    batch = torch.stack([a, torch.nn.functional.pad(b, (0, 8000))])
    with torch.no_grad():
        together = encoder(batch, torch.tensor([1.0, 0.5]))
        alone = encoder(b[None])
    torch.testing.assert_close(together[1, :51], alone[0], atol=1e-5, rtol=0)
    assert together[1, 51:].abs().max() == 0


def test_bundle_round_trip(tmp_path, encoder):
    head = TranscriptionHead(encoder.output_size)
    settings = {"modality": "audio", "label_frame_rate": 100.0, "sample_rate": SR,
                "dur_threshold": 5, "onset_threshold": 0.4, "offset_threshold": 0.5}
    export_bundle(tmp_path / "model", encoder, head, settings)
    manifest = json.loads((tmp_path / "model" / "svt_bundle.json").read_text())
    assert manifest["encoder_type"] == "pitch_network"
    # float32: FCPE exactly as the in-memory encoder computes it (inference loads bfloat16)
    model = load_bundle(tmp_path / "model", pitch_precision="float32")
    assert load_bundle(tmp_path / "model").encoder.pitch_precision == "bfloat16"
    wav = harmonic_tone(62.4, 1.0)
    frames = model.predict_frames(wav)
    assert len(frames) == 5  # onset, offset, octave, pitch class, sung pitch
    with torch.no_grad():
        expected = head(encoder(torch.from_numpy(wav)[None]))
    torch.testing.assert_close(model(torch.from_numpy(wav)[None]), expected)


# ------------------------------------------------------------------ FCPE, computed faster

def random_log_mel(frames, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(-5, 2, (1, frames, 128))
                            .astype(np.float32))


@pytest.mark.parametrize("frames", [1, 9, 57, 400])
def test_fast_pitch_network_is_torchfcpe(encoder, frames):
    fast = FastPitchNetwork.wrap(encoder.fcpe)
    mel = torch.cat([random_log_mel(frames, 1), random_log_mel(frames, 2)])
    with torch.no_grad():
        expected = encoder.fcpe.model(mel)
        torch.testing.assert_close(fast(mel), expected, atol=1e-5, rtol=0)
    assert FastPitchNetwork.wrap(object()) is None


# ------------------------------------------------------------------ FCPE with bfloat16 products

def test_bfloat16_pitch_network_stays_within_rounding_of_torchfcpe(encoder):
    """bfloat16 operands (8 significant bits) through six layers: the salience moves by about
    0.01 at most, and neither the voicing decision nor the f0 of a sung tone changes."""
    fast = FastPitchNetwork.wrap(encoder.fcpe)
    mel = torch.cat([random_log_mel(300, 3), random_log_mel(300, 4)])
    with torch.no_grad():
        expected = encoder.fcpe.model(mel)
        bfloat16 = fast(mel, "bfloat16")
    error = (bfloat16 - expected).abs()
    assert 0 < error.max() < 0.03 and error.mean() < 1e-3
    tone = torch.from_numpy(np.concatenate([harmonic_tone(57.3, 0.5), harmonic_tone(64.6, 0.5)]))
    exact = PitchNetworkEncoder(hidden_size=16, num_layers=1).eval()
    rounded = PitchNetworkEncoder(hidden_size=16, num_layers=1, pitch_precision="bfloat16").eval()
    with torch.no_grad():
        sung_exact = exact.sung_pitch(exact(tone[None]))[0].numpy()
        sung_rounded = rounded.sung_pitch(rounded(tone[None]))[0].numpy()
    assert (np.isnan(sung_exact) == np.isnan(sung_rounded)).all()
    voiced = ~np.isnan(sung_exact)
    assert voiced.sum() > 80
    assert np.abs(sung_exact[voiced] - sung_rounded[voiced]).max() < 0.05  # 5 cents
    assert abs(np.median(sung_rounded[10:40]) - 57.3) < 0.1
    assert abs(np.median(sung_rounded[60:90]) - 64.6) < 0.1


def test_bfloat16_products_emulated_in_float32_equal_the_native_ones():
    """Where torch has no fast bfloat16 kernel the products are emulated in float32: each
    result is the float64 product of the bfloat16-rounded operands rounded to bfloat16, up to
    one bfloat16 step where a float32 sum lands on the other side of a rounding boundary
    (rarely); the native kernels, where present, give the same."""
    from svt.models.pitch_network import (
        _EmulatedBfloat16Matmul,
        _NativeBfloat16Matmul,
        bfloat16_matmul,
    )

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(256, 128, generator=generator) * 0.1
    bias = torch.randn(256, generator=generator)
    x = torch.randn(200, 128, generator=generator)
    rounded = [t.to(torch.bfloat16).double() for t in (weight, bias, x)]
    exact = (rounded[2] @ rounded[0].t() + rounded[1]).to(torch.bfloat16).double()
    # One bfloat16 step (8 significant bits), plus float32's summation error for results near
    # zero (at most 128 terms x 2**-24 x their magnitudes, about 1e-5 here).
    step = exact.abs() * 2.0 ** -7 + 1e-4

    def check(matmul):
        result = matmul.linear(x, matmul.operand(weight), matmul.operand(bias))
        assert result.dtype == torch.float32
        result = result.double()
        assert (result - exact).abs().le(step).all()
        assert (result != exact).double().mean() < 1e-3

    check(_EmulatedBfloat16Matmul)
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert bfloat16_matmul("cpu") is _NativeBfloat16Matmul
        check(_NativeBfloat16Matmul)
    else:
        assert bfloat16_matmul("cpu") is _EmulatedBfloat16Matmul


def test_pitch_precision_is_checked_and_not_part_of_the_bundle(tmp_path, encoder):
    with pytest.raises(ValueError, match="pitch_precision must be one of float32, bfloat16"):
        PitchNetworkEncoder(hidden_size=16, num_layers=1, pitch_precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        FastPitchNetwork.wrap(encoder.fcpe)(random_log_mel(10), "half")
    head = TranscriptionHead(encoder.output_size)
    settings = {"modality": "audio", "label_frame_rate": 100.0, "sample_rate": SR,
                "dur_threshold": 5, "onset_threshold": 0.4, "offset_threshold": 0.5}
    export_bundle(tmp_path / "model", encoder, head, settings)
    assert "pitch_precision" not in (tmp_path / "model" / "encoder" / "svt_encoder.json") \
        .read_text()
    with pytest.raises(ValueError, match="pitch_precision must be one of float32, bfloat16, "
                                         "got 'fp16'"):
        load_bundle(tmp_path / "model", pitch_precision="fp16")
    # The same notes either way on a sung line (the scores on real singing: the model card).
    wav = np.concatenate([harmonic_tone(m, 0.4) for m in (60, 62, 64, 65, 67)])
    frames = {precision: load_bundle(tmp_path / "model", pitch_precision=precision)
              .predict_frames(wav) for precision in ("float32", "bfloat16")}
    for exact, rounded in zip(frames["float32"], frames["bfloat16"]):
        assert exact.shape == rounded.shape
        assert np.allclose(exact, rounded, atol=0.02, equal_nan=True)


def test_pitch_precision_reaches_the_model_from_every_entry_point(tmp_path, capsys):
    import svt
    from svt.cli.argtypes import PITCH_PRECISION_CHOICES
    from svt.cli.live import build_parser as live_parser
    from svt.cli.transcribe import build_parser as transcribe_parser
    from svt.cli.transcribe import main as transcribe_main
    from svt.inference.bundle import DEFAULT_MODEL, DEFAULT_PITCH_PRECISION
    from svt.inference.files import TranscribeFilesError, transcribe_files
    from svt.inference.live import LiveError, LiveTranscriber
    from svt.models.pitch_network import PITCH_PRECISIONS

    assert set(PITCH_PRECISION_CHOICES) == set(PITCH_PRECISIONS)
    assert PITCH_PRECISION_CHOICES[0] == DEFAULT_PITCH_PRECISION == "bfloat16"
    from svt.synthetic.singing import render_singing

    # Four sung notes (the additive voice: vibrato, jitter, formants). Not harmonic_tone: the
    # shipped model's head hears a perfectly steady synthetic tone as an instrument, not a voice,
    # and the decoder leaves such notes out (svt.notes.decoding.notes_the_head_hears).
    song = tmp_path / "song.wav"
    sung = np.array([[0.25, 0.75, 60], [0.85, 1.35, 64], [1.45, 1.95, 67], [2.05, 2.55, 72]])
    write_audio(song, render_singing(sung, SR, 0, "tenor", 2.8), SR)
    for parser, given in ((transcribe_parser(), [str(song), "--out-dir", str(tmp_path)]),
                          (live_parser(), ["--input", str(song)])):
        assert parser.parse_args(given).pitch_precision == "bfloat16"
        assert parser.parse_args([*given, "--pitch-precision", "float32"]) \
            .pitch_precision == "float32"
        with pytest.raises(SystemExit):
            parser.parse_args([*given, "--pitch-precision", "float16"])
    assert "invalid choice: 'float16'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pitch_precision must be one of"):
        svt.transcribe(str(song), pitch_precision="half")
    with pytest.raises(TranscribeFilesError, match="pitch_precision must be one of"):
        transcribe_files([song], tmp_path / "out", pitch_precision="half")
    assert not (tmp_path / "out").exists()
    with pytest.raises(LiveError, match="pitch_precision must be one of"):
        LiveTranscriber(DEFAULT_MODEL, pitch_precision="half")
    assert LiveTranscriber(DEFAULT_MODEL, pitch_precision="float32") \
        .model.encoder.pitch_precision == "float32"
    assert LiveTranscriber(DEFAULT_MODEL).model.encoder.pitch_precision == "bfloat16"
    # A loaded model is used as it was loaded: a precision that contradicts it is an error.
    loaded = load_bundle(DEFAULT_MODEL, pitch_precision="float32")
    with pytest.raises(ValueError, match="was loaded with 'float32': load it with "
                                         r"load_bundle\(path, pitch_precision='bfloat16'\)"):
        svt.transcribe(str(song), model=loaded, pitch_precision="bfloat16")
    with pytest.raises(LiveError, match="was loaded with 'float32'"):
        LiveTranscriber(loaded, pitch_precision="bfloat16")
    assert len(svt.transcribe(str(song), model=loaded, pitch_precision="float32")) == 4
    assert LiveTranscriber(loaded).model.encoder.pitch_precision == "float32"
    # The shipped model finds the same four notes either way.
    notes = {precision: svt.transcribe(str(song), pitch_precision=precision)
             for precision in PITCH_PRECISIONS}
    assert len(notes["float32"]) == len(notes["bfloat16"]) == 4
    assert np.abs(notes["float32"] - notes["bfloat16"]).max() < 0.02
    assert np.allclose(notes["bfloat16"][:, 2], [60, 64, 67, 72], atol=0.2)
    assert np.allclose(notes["bfloat16"][:, 0], sung[:, 0] + 0.02, atol=0.03)  # the onset delay
    assert transcribe_main([str(song), "--out-dir", str(tmp_path / "cli"), "--format", "",
                            "--pitch-precision", "float32", "--device", "cpu"]) == 0
    written = json.loads((tmp_path / "cli" / "song.json").read_text())
    assert len(written["notes"] if isinstance(written, dict) else written) == 4


# ------------------------------------------------------------------ the pitch network's stride

@pytest.mark.parametrize("seconds", [1.0, 0.995])  # 101 frames (odd) and 100 (even)
def test_pitch_stride_reads_every_second_frame_and_interpolates(seconds):
    torch.manual_seed(0)
    strided = PitchNetworkEncoder(hidden_size=16, num_layers=1, pitch_stride=2).eval()
    second_half = np.arange(int(seconds * SR)) >= SR // 2  # 60 then 67
    wav = torch.from_numpy(np.where(second_half, harmonic_tone(67, 1.0)[:len(second_half)],
                                    harmonic_tone(60, 1.0)[:len(second_half)]))[None]
    mel, salience = strided.pitch_features(wav)
    frames = int(seconds * SR) // 160 + 1
    assert mel.shape == (1, frames, 128) and salience.shape == (1, frames, 360)
    with torch.no_grad():
        full_mel = strided.fcpe.wav2mel(wav.unsqueeze(-1), SR)
        read = strided.fcpe.model(full_mel[:, ::2])[0]  # torchfcpe's own network, every 2nd frame
    torch.testing.assert_close(mel, full_mel)  # the mel stays at every frame
    torch.testing.assert_close(salience[0, ::2], read, atol=1e-5, rtol=0)
    middle = (read[:-1] + read[1:]) / 2  # frame 2k + 1: halfway between frames 2k and 2k + 2
    torch.testing.assert_close(salience[0, 1:2 * len(middle):2], middle, atol=1e-5, rtol=0)
    if frames % 2 == 0:  # the last frame is past the last one read: it repeats it
        torch.testing.assert_close(salience[0, -1], read[-1], atol=1e-5, rtol=0)
    with torch.no_grad():
        features = strided(wav)
    assert features.shape == (1, frames, strided.output_size)
    sung = strided.sung_pitch(features)[0].numpy()
    assert abs(np.median(sung[20:45]) - 60) < 0.1 and abs(np.median(sung[60:90]) - 67) < 0.1


def test_pitch_stride_is_kept_by_bundles_and_cache_names(tmp_path, encoder):
    from svt.models.pitch_network import PitchFeatureCache

    strided = PitchNetworkEncoder(hidden_size=16, num_layers=1, pitch_stride=2).eval()
    strided.save_for_bundle(tmp_path / "enc")
    assert json.loads((tmp_path / "enc" / "svt_encoder.json").read_text())["pitch_stride"] == 2
    assert PitchNetworkEncoder.from_bundle(tmp_path / "enc").pitch_stride == 2
    encoder.save_for_bundle(tmp_path / "old")  # stride 1: the key stays absent, as in old bundles
    assert "pitch_stride" not in json.loads((tmp_path / "old" / "svt_encoder.json").read_text())
    cache = PitchFeatureCache(tmp_path / "cache")
    assert cache.network_tag(encoder) == "" and cache.network_tag(strided) == "-stride2"
    strided.set_pitch_precision("bfloat16")  # other salience values: other cache files
    assert cache.network_tag(strided) == "-stride2-bfloat16"
    for bad in (0, 5, 1.5, True, "2"):
        with pytest.raises(ValueError, match="pitch_stride must be a whole number"):
            PitchNetworkEncoder(hidden_size=16, num_layers=1, pitch_stride=bad)


@pytest.mark.parametrize("shape", [(1, 8), (57, 8), (2, 31, 8)])
def test_pointwise_products_as_onednn_convolutions_equal_torchs_linear(shape):
    from svt.models.pitch_network import _pointwise

    generator = torch.Generator().manual_seed(len(shape))
    x = torch.randn(*shape, generator=generator)
    weight, bias = torch.randn(5, 8, generator=generator), torch.randn(5, generator=generator)
    out = _pointwise(x, weight, bias)
    assert out.shape == (*shape[:-1], 5) and out.is_contiguous()
    torch.testing.assert_close(out, torch.nn.functional.linear(x, weight, bias), atol=1e-5,
                               rtol=0)
    # A view that is not contiguous (the layout FastPitchNetwork never passes) works too.
    torch.testing.assert_close(_pointwise(x.transpose(0, -2), weight, bias),
                               torch.nn.functional.linear(x.transpose(0, -2), weight, bias),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("length", [1, 7, 15, 16, 100])
def test_depthwise_convolutions_equal_a_grouped_convolution(length):
    torch.manual_seed(length)
    conv = torch.nn.Conv1d(6, 6, 31, padding=15, groups=6)
    x = torch.randn(length, 6)  # (time, channels), the layout FastPitchNetwork runs in
    with torch.no_grad():
        expected = conv(x.t()[None])[0].t()
        for depthwise in (_depthwise, _depthwise_by_taps):
            torch.testing.assert_close(depthwise(x, conv.weight[:, 0, :], conv.bias), expected,
                                       atol=1e-6, rtol=0)


def test_reverse_within_lengths_keeps_the_padding_in_place():
    x = torch.arange(10.0).reshape(2, 5, 1)
    out = reverse_within_lengths(x, torch.tensor([5, 3]))[..., 0]
    assert out.tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]


@pytest.mark.parametrize("bidirectional,num_layers", [(True, 2), (True, 1), (False, 2)])
def test_gru_without_packing_equals_torchs_packed_gru(bidirectional, num_layers):
    torch.manual_seed(num_layers)
    gru = torch.nn.GRU(12, 8, num_layers=num_layers, bidirectional=bidirectional,
                       batch_first=True, dropout=0.3 if num_layers > 1 else 0.0).eval()
    lengths = torch.tensor([40, 17, 1, 40, 29])
    x = torch.randn(5, 40, 12, requires_grad=True)
    weights = torch.randn(5, 40, 8 * (2 if bidirectional else 1))

    def outputs_and_gradients(run):
        gru.zero_grad()
        x.grad = None
        out = run()
        (out * weights).sum().backward()
        return [out.detach(), x.grad.clone()] + [p.grad.clone() for p in gru.parameters()]

    def packed():
        out, _ = gru(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                             enforce_sorted=False))
        return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=40)[0]

    expected = outputs_and_gradients(packed)
    got = outputs_and_gradients(lambda: gru_without_packing(gru, x, lengths))
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert got[0][2, 1:].abs().max() == 0  # nothing past an item's end


@pytest.mark.parametrize("lookahead", [None, 3])
def test_training_path_of_the_context_network_computes_the_inference_features(lookahead):
    torch.manual_seed(1)
    encoder = PitchNetworkEncoder(hidden_size=16, num_layers=2, lookahead_frames=lookahead).eval()
    a = torch.from_numpy(harmonic_tone(60, 1.0))
    b = torch.nn.functional.pad(torch.from_numpy(harmonic_tone(64, 0.5)), (0, 8000))
    batch, lens = torch.stack([a, b]), torch.tensor([1.0, 0.5])
    with torch.no_grad():
        inference = encoder(batch, lens)
    training = encoder(batch, lens)  # gradients on: the path without packing
    assert training.requires_grad
    torch.testing.assert_close(training.detach(), inference, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ corpus

def test_recorded_song_is_seeded_and_sung_off_the_tempered_scale():
    notes, audio, info = render_recorded_song([3, 1], 8.0)
    again, audio2, _ = render_recorded_song([3, 1], 8.0)
    np.testing.assert_array_equal(audio, audio2)
    np.testing.assert_array_equal(notes, again)
    assert audio.dtype == np.float32 and len(audio) == 8 * SR
    assert 10 ** (-20.5 / 20) <= np.abs(audio).max() <= 10 ** (-0.9 / 20)
    deviation = np.abs(notes[:, 2] - np.round(notes[:, 2]))
    assert deviation.max() > 0.1  # intonation: fractional sung pitches
    clean, _, _ = render_recorded_song([3, 1], 8.0, CorpusStyle.clean())
    np.testing.assert_array_equal(clean[:, 2], np.round(clean[:, 2]))


def test_corpus_in_the_ssvd_layout_prepares_and_resumes(tmp_path):
    corpus = make_recorded_corpus(tmp_path / "corpus", 3, seed=5, duration_range=(4.0, 6.0),
                                  progress=False)
    files = sorted(p.name for p in corpus.iterdir())
    assert files == ["corpus.json", "song00000.txt", "song00000.wav", "song00001.txt",
                     "song00001.wav", "song00002.txt", "song00002.wav"]
    first = (corpus / "song00001.wav").read_bytes()
    (corpus / "song00002.txt").unlink()  # an interrupted song is made again, the others kept
    make_recorded_corpus(corpus, 3, seed=5, duration_range=(4.0, 6.0), progress=False)
    assert (corpus / "song00001.wav").read_bytes() == first
    assert (corpus / "song00002.txt").exists()
    # Songs made with other settings are never mixed in.
    from svt.synthetic.recorded_singing import CorpusMismatchError

    with pytest.raises(CorpusMismatchError, match=r"seed, style differ"):
        make_recorded_corpus(corpus, 4, seed=6, style=CorpusStyle.mixed(), progress=False)
    # A corpus described before newer style settings existed is the same corpus (their
    # defaults reproduce it).
    description = json.loads((corpus / "corpus.json").read_text())
    for key in ("articulations", "voice_bank_share", "voice_bank_speakers", "voice_bank_folder",
                "festival_bank_folder"):
        del description["style"][key]
    (corpus / "corpus.json").write_text(json.dumps(description))
    make_recorded_corpus(corpus, 3, seed=5, duration_range=(4.0, 6.0), progress=False)
    out = prepare_ssvd(corpus, tmp_path / "prep", dataset="synthetic_train",
                       label_frame_rate=100.0, progress=False)
    header, table = read_csv(out["synthetic_train"])
    rows = [dict(zip(header, row)) for row in table]
    assert {r["song"] for r in rows} == {"song00000", "song00001", "song00002"}
    np.testing.assert_allclose(read_notes(rows[0]["song_anno"]),
                               read_notes(corpus / f"{rows[0]['song']}.txt"))


def test_corpus_rendered_by_two_processes_is_the_same_files(tmp_path, capsys):
    alone = make_recorded_corpus(tmp_path / "one", 3, seed=8, duration_range=(3.0, 4.0),
                                 progress=False)
    both = tmp_path / "two"
    both.mkdir()
    (both / "song00001.wav").write_bytes((alone / "song00001.wav").read_bytes())
    (both / "song00001.txt").write_bytes((alone / "song00001.txt").read_bytes())
    make_recorded_corpus(both, 3, seed=8, duration_range=(3.0, 4.0), workers=2)
    assert capsys.readouterr().out.strip() == "3/3 songs"  # the kept song counts as done
    for name in ("song00000", "song00001", "song00002"):
        for ext in (".wav", ".txt"):
            assert (both / (name + ext)).read_bytes() == (alone / (name + ext)).read_bytes()
    with pytest.raises(ValueError, match="workers must be a whole number >= 1"):
        make_recorded_corpus(tmp_path / "bad", 1, workers=0)


def test_corpus_workers_from_an_unguarded_script_get_a_clear_error(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "make.py"
    script.write_text("from svt.synthetic.recorded_singing import make_recorded_corpus\n"
                      f"make_recorded_corpus({str(tmp_path / 'corpus')!r}, 2, "
                      "duration_range=(3.0, 3.5), progress=False, workers=2)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "CorpusWorkerError" in last and 'if __name__ == \"__main__\":' in last


def test_prepare_ssvd_names_an_audio_file_without_notes(tmp_path):
    data = tmp_path / "ssvd"
    data.mkdir()
    write_audio(data / "1.wav", harmonic_tone(60, 1.0), SR)
    (data / "1.txt").write_text("0.1\t0.5\t60.2\r\n")
    write_audio(data / "2.wav", harmonic_tone(60, 1.0), SR)
    with pytest.raises(PrepareError, match=r"2\.wav has no 2\.txt beside it"):
        prepare_ssvd(data, tmp_path / "prep", progress=False)


# ------------------------------------------------------------------ pYIN baseline rules

def test_contour_to_notes_cuts_at_level_changes_not_vibrato():
    rate = 100.0
    t = np.arange(100) / rate
    first = 60.2 + 0.4 * np.sin(2 * np.pi * 5.5 * t[:50])  # vibrato of +-40 cents
    contour = np.r_[first, np.full(50, 62.4), np.full(20, np.nan), np.full(40, 62.4),
                    np.full(5, 65.0)]  # a 50-ms blip after the last note is too short
    notes = contour_to_notes(contour, rate)
    assert notes.shape == (3, 3)
    np.testing.assert_allclose(notes[:, :2], [[0.0, 0.5], [0.5, 1.0], [1.2, 1.6]], atol=0.011)
    np.testing.assert_allclose(notes[:, 2], [60.2, 62.4, 62.4], atol=0.06)
    np.testing.assert_allclose(contour_to_notes(contour, rate, rounded=True)[:, 2], [60, 62, 62])


def test_pyin_baseline_hears_the_sung_pitch_at_any_rate():
    from svt.audio import SampleRateError
    from svt.baselines import pyin_notes

    tone = harmonic_tone(57.0, 1.0, sr=44100)  # A3, 220 Hz
    for rate, wav in ((44100, tone), (16000, harmonic_tone(57.0, 1.0))):
        notes = pyin_notes(wav, rate)
        assert len(notes) == 1 and abs(notes[0, 2] - 57.0) < 0.05
        assert notes[0, 1] - notes[0, 0] > 0.9
    with pytest.raises(SampleRateError, match="pYIN: sample_rate 1e"):
        pyin_notes(tone, 10**12)


def test_sung_pitches_are_the_median_f0_of_each_annotated_span():
    from svt.baselines import sung_pitches

    contour = np.full(300, np.nan)  # 100 frames/s
    contour[10:60] = 60.3 + 0.4 * np.sin(np.arange(50))  # vibrato around 60.3
    contour[100:150] = 64.0
    contour[100:105] = 62.0  # a scoop into the note: the median ignores it
    notes = np.array([[0.1, 0.6, 60.0], [1.0, 1.5, 64.5], [2.0, 2.5, 67.0]])  # last: unvoiced
    pitches = sung_pitches(notes, contour, frame_rate=100.0)
    assert np.isnan(pitches[2])
    np.testing.assert_allclose(pitches[:2], [np.median(contour[10:60]), 64.0])


def test_real_recordings_benchmark_runs_on_a_folder(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    data = make_recorded_corpus(tmp_path / "data", 2, seed=4, duration_range=(4.0, 5.0),
                                progress=False)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_real.py"), str(data),
                          "--systems", "pyin-rounded,svt,pyin,svt-float32", "--json",
                          str(tmp_path / "r.json"), "--accompaniment-snr-db", "5",
                          "--reverb-rt60", "0.4", "--sung-reference", "--repeats", "2"],
                         capture_output=True, text=True, check=True)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["recordings"] == 2
    assert set(result["systems"]) == {"svt", "pyin", "pyin-rounded", "svt-float32"}
    pyin, rounded = result["systems"]["pyin"], result["systems"]["pyin-rounded"]
    assert pyin["COn"] == rounded["COn"]  # same notes, only the pitch rounded
    for system in result["systems"].values():  # timed twice, taking turns; the median reported
        assert len(system["round_s_per_s"]) == 2
        assert system["s_per_s"] == pytest.approx(np.median(system["round_s_per_s"]))
    assert "warning" not in out.stderr  # every system gave the same notes in both rounds
    assert "| svt |" in out.stdout
    assert result["condition"] == ("reverb RT60 0.4 s at 0 dB direct-to-reverberant, "
                                   "accompaniment at 5 dB SNR")
    # The generated songs are sung at their written pitches: the annotations sit on the voice.
    assert abs(result["annotated_minus_sung"]["median_cents"]) < 10
    assert "scored against the sung pitch" in out.stdout
    assert {"COnPOff_sung", "COnP_sung"} <= set(pyin) and 0 <= pyin["COnP_sung"] <= 100


def test_real_recordings_benchmark_hears_each_recording_in_its_own_room(tmp_path):
    import importlib.util
    import zlib
    from pathlib import Path

    from svt.audio import read_audio
    from svt.synthetic.recorded_singing import add_room_reverb

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_real", root / "benchmarks" /
                                                  "bench_real.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = make_recorded_corpus(tmp_path / "data", 2, seed=4, duration_range=(2.0, 3.0),
                                progress=False)
    (tmp_path / "dry").mkdir(), (tmp_path / "room").mkdir()
    dry, _, _ = bench.prepare_audio(data, tmp_path / "dry", None)
    wet, references, _ = bench.prepare_audio(data, tmp_path / "room", None, reverb=(0.7, 2.0))
    for song, path in wet.items():
        expected = add_room_reverb(read_audio(dry[song]), 16000, 0.7, 2.0,
                                   np.random.default_rng([zlib.crc32(song.encode()), 1]))
        expected /= max(1.0, np.abs(expected).max() / 0.99)
        np.testing.assert_allclose(read_audio(path), expected, atol=1e-4)  # 16-bit files
    a, b = (read_audio(wet[song]) - read_audio(dry[song]) for song in sorted(wet))
    assert not np.allclose(a[:len(b)], b[:len(a)], atol=1e-3)  # each song its own room
    assert len(references) == 2
    with pytest.raises(SystemExit):
        bench.main([str(data), "--reverb-rt60", "0"])


def test_pitch_feature_cache_computes_each_utterance_once(tmp_path, encoder, monkeypatch):
    from svt.models.pitch_network import PitchFeatureCache

    wavs = torch.from_numpy(np.stack([harmonic_tone(60, 1.0), harmonic_tone(67, 1.0)]))
    wavs[1, 12000:] = 0.0
    wav_lens = torch.tensor([1.0, 0.75])  # the second item is padding after 0.75 s
    direct = encoder(wavs, wav_lens)
    cache = PitchFeatureCache(tmp_path / "cache")
    runs = []
    original = encoder.pitch_features
    monkeypatch.setattr(encoder, "pitch_features",
                        lambda *a, **k: runs.append(1) or original(*a, **k))
    first = cache.pitch_features(encoder, wavs, wav_lens, ["a", "b"])
    assert len(runs) == 2 and len(list((tmp_path / "cache").glob("*.npy"))) == 2
    second = cache.pitch_features(encoder, wavs, wav_lens, ["a", "b"])
    assert len(runs) == 2  # read back, not computed again
    for x, y in zip(first, second):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    # The cached features give the encoder's own output (float16 storage: tiny differences).
    torch.testing.assert_close(encoder(wavs, wav_lens, pitch_features=second), direct,
                               rtol=0, atol=2e-2)
    assert second[1][1, 76:].abs().max() == 0  # nothing past the item's own frames
    # A changed recording under the same id is a new file, never the stale one.
    changed = wavs.clone()
    changed[0] *= 0.5
    cache.pitch_features(encoder, changed, wav_lens, ["a", "b"])
    assert len(runs) == 3 and len(list((tmp_path / "cache").glob("a-*.npy"))) == 2
    # A damaged file is computed again.
    victim = sorted((tmp_path / "cache").glob("b-*.npy"))[0]
    victim.write_bytes(b"garbage")
    cache.pitch_features(encoder, wavs, wav_lens, ["a", "b"])
    assert len(runs) == 4


def test_mixed_corpus_sings_every_articulation():
    from svt.synthetic.recorded_singing import choose_articulation

    style = CorpusStyle.mixed()
    drawn = [choose_articulation(np.random.default_rng(k), style) for k in range(400)]
    shares = {name: drawn.count(name) / len(drawn) for name, _ in style.articulations}
    for name, share in style.articulations:
        assert abs(shares[name] - share) < 0.07
    joined = {}
    for k in range(30):
        notes, _, info = render_recorded_song([11, k], 12.0, style)
        gaps = notes[1:, 0] - notes[:-1, 1]
        steps = np.abs(np.diff(notes[:, 2])) > 0.5
        joined.setdefault(info["articulation"], []).extend(gaps[steps] < 0.01)
    assert np.mean(joined["legato"]) > 0.6 and np.mean(joined["detached"]) < 0.2
    # Legato joins the notes of a phrase, not across a breath, and never a repeated pitch:
    # nothing in the audio would mark its onset.
    from svt.synthetic.recorded_singing import join_legato

    written = np.array([[0.0, 0.4, 60], [0.45, 0.9, 62], [0.95, 1.3, 62], [2.0, 2.5, 64]])
    np.testing.assert_allclose(join_legato(written)[:, 1], [0.445, 0.9, 1.3, 2.5])
    # The default style is the one the earlier corpora were made with (same songs).
    plain, audio, info = render_recorded_song([3, 1], 8.0)
    assert info["articulation"] == "detached"
