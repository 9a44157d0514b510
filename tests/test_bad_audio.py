"""Audio with NaN/inf samples: zeroed where it enters, with a warning naming the file and the time
span, so the notes around them survive; a file with no finite sample is refused, not "silent"."""

import warnings

import numpy as np
import pytest
import soundfile as sf

import svt
from svt.audio import AudioError, NonFiniteAudioWarning, read_audio
from svt.cli.transcribe import main as transcribe_main
from svt.inference.bundle import DEFAULT_MODEL, load_bundle
from svt.inference.transcribe import SilentInputWarning
from svt.notes.scoring import score_song
from svt.synthetic.singing import generate_melody, render_singing

SR = 16000
#: Damaged samples inside the first 5-s chunk (2.5 s: a run of 3) and the second (6.0 s: one inf).
DAMAGE = ((int(2.5 * SR), int(2.5 * SR) + 3, np.nan), (6 * SR, 6 * SR + 1, np.inf))


@pytest.fixture(scope="module")
def model():
    return load_bundle(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def sung():
    rng = np.random.default_rng(11)
    notes = generate_melody(rng, 10.0, voice="tenor")
    return notes, render_singing(notes, SR, rng=rng, duration_s=10.0).astype(np.float32)


def damaged(wav):
    wav = wav.copy()
    for start, stop, value in DAMAGE:
        wav[start:stop] = value
    return wav


def zeroed(wav):
    wav = wav.copy()
    for start, stop, _ in DAMAGE:
        wav[start:stop] = 0.0
    return wav


def transcribe_warned(*args, **kwargs):
    with pytest.warns(NonFiniteAudioWarning) as caught:
        notes = svt.transcribe(*args, **kwargs)
    messages = [str(w.message) for w in caught if w.category is NonFiniteAudioWarning]
    assert len(messages) == 1, messages  # one warning per file, not one per chunk
    return notes, messages[0]


def test_nan_samples_in_a_16k_file_are_zeroed_with_one_warning(model, sung, tmp_path):
    truth, wav = sung
    path = tmp_path / "damaged.wav"
    sf.write(path, damaged(wav), SR, subtype="FLOAT")
    sf.write(tmp_path / "zeroed.wav", zeroed(wav), SR, subtype="FLOAT")
    notes, message = transcribe_warned(path, model=model)
    assert str(path) in message and "4 of 160000 samples" in message
    assert "(at 2.500 s, 6.000 s)" in message
    assert "6.000 s" in message
    # The same notes as the file with zeros there, and the damaged chunk keeps its notes.
    np.testing.assert_array_equal(notes, svt.transcribe(tmp_path / "zeroed.wav", model=model))
    first_chunk = lambda n: n[n[:, 0] < 5.0]  # noqa: E731
    assert len(first_chunk(notes)) >= 0.8 * len(first_chunk(truth))
    assert score_song(truth, notes)["COn_f1"] > 0.8


def test_nan_samples_in_a_converted_file_and_in_an_array(model, sung, tmp_path):
    truth, wav = sung
    stereo = np.stack([damaged(wav), zeroed(wav)], axis=1)
    sf.write(tmp_path / "stereo.wav", stereo, SR, subtype="FLOAT")  # 2 channels: conversion
    notes, message = transcribe_warned(tmp_path / "stereo.wav", model=model)
    assert "stereo.wav" in message and "6.000 s" in message
    assert score_song(truth, notes)["COn_f1"] > 0.8
    array_notes, message = transcribe_warned(damaged(wav), SR, model)
    assert message.startswith("the waveform: 4 of 160000 samples")
    np.testing.assert_array_equal(array_notes, svt.transcribe(zeroed(wav), SR, model))


def test_a_file_of_nothing_but_nan_is_refused_not_silent(model, tmp_path):
    path = tmp_path / "all_nan.wav"
    sf.write(path, np.full(SR * 2, np.nan, np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="every sample is NaN or infinite"):
        svt.transcribe(path, model=model)
    sf.write(tmp_path / "all_nan_44k.wav", np.full(44100, np.inf, np.float32), 44100,
             subtype="FLOAT")
    with pytest.raises(AudioError, match="all_nan_44k.wav: every sample"):
        svt.transcribe(tmp_path / "all_nan_44k.wav", model=model)
    with pytest.raises(AudioError, match="the waveform: every sample"):
        svt.transcribe(np.full(SR, np.nan, np.float32), SR, model)
    with pytest.raises(AudioError, match="every sample"):
        read_audio(path)


def test_cli_prints_the_warning_and_the_refusal(tmp_path, sung, capsys):
    _, wav = sung
    sf.write(tmp_path / "damaged.wav", damaged(wav), SR, subtype="FLOAT")
    sf.write(tmp_path / "all_nan.wav", np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
    code = transcribe_main([str(tmp_path / "damaged.wav"), str(tmp_path / "all_nan.wav"),
                            "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert "svt-transcribe: warning:" in err and "damaged.wav: 4 of 160000 samples" in err
    assert "all_nan.wav: every sample is NaN" in err
    assert (tmp_path / "out" / "damaged.json").is_file()
    assert not (tmp_path / "out" / "all_nan.json").exists()


def test_read_audio_zeroes_non_finite_samples_for_training(sung, tmp_path):
    _, wav = sung
    path = tmp_path / "d.wav"
    sf.write(path, damaged(wav), SR, subtype="FLOAT")
    with pytest.warns(NonFiniteAudioWarning, match=r"d\.wav: 3 samples .*\(at 2\.500 s\)"):
        part = read_audio(path, start=2 * SR, stop=3 * SR)  # a slice: its own time span
    np.testing.assert_array_equal(part, zeroed(wav)[2 * SR:3 * SR])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_audio(path, start=0, stop=SR), wav[:SR])
    with pytest.warns(NonFiniteAudioWarning, match="4 of 160000 samples"):
        resampled = read_audio(path, sample_rate=8000)  # zeroed before resampling: no NaN spreads
    assert np.isfinite(resampled).all()


def test_a_file_without_samples_is_empty_not_a_crash(model, tmp_path):
    with pytest.raises(AudioError, match="a folder, not an audio file"):
        svt.transcribe(tmp_path, model=model)
    sf.write(tmp_path / "no_samples.wav", np.zeros(0, np.float32), SR)
    with pytest.warns(SilentInputWarning, match="no_samples.wav"):
        notes = svt.transcribe(tmp_path / "no_samples.wav", model=model)
    assert notes.shape == (0, 3)


def test_waveform_arrays_in_other_layouts_give_the_same_notes(model, sung):
    truth, wav = sung
    reference = svt.transcribe(wav, SR, model)
    assert score_song(truth, reference)["COn_f1"] > 0.8
    pcm16 = np.round(wav * 32767).astype(np.int16)
    np.testing.assert_allclose(svt.transcribe(pcm16, SR, model), svt.transcribe(
        pcm16.astype(np.float32) / 32768, SR, model))
    # Channels first (librosa, torchaudio) or last (soundfile): the same mono signal.
    stereo = np.stack([wav, wav])
    np.testing.assert_array_equal(svt.transcribe(stereo, SR, model), reference)
    np.testing.assert_array_equal(svt.transcribe(stereo.T, SR, model), reference)
    np.testing.assert_array_equal(svt.transcribe(wav, 16000.0, model), reference)


@pytest.mark.parametrize("audio, rate, message", [
    (np.zeros(SR, np.float32), 0, "sample_rate must be a positive whole number"),
    (np.zeros(SR, np.float32), -16000, "sample_rate must be a positive whole number"),
    (np.zeros(SR, np.float32), 44100.5, "sample_rate must be a positive whole number"),
    (np.zeros(SR, np.float32), "16k", "sample_rate must be a positive whole number"),
    (np.zeros((3, 4, SR), np.float32), SR, r"got shape \(3, 4, 16000\)"),
    (np.zeros((300, 300), np.float32), SR, r"cannot tell channels from samples in shape"),
    (np.zeros((0, 2), np.float32), SR, r"the array of shape \(0, 2\) holds no samples"),
    (np.array(["a", "b"]), SR, "expected audio samples"),
])
def test_waveform_arrays_that_cannot_be_audio_are_refused(model, audio, rate, message):
    with pytest.raises(AudioError, match=message):
        svt.transcribe(audio, rate, model)


def test_64_channels_as_soundfile_returns_them(model, sung):
    _, wav = sung
    many = np.repeat(wav[:, None], 64, axis=1)  # (samples, 64)
    # The mean of 64 equal channels is the channel up to float rounding, which the pitch
    # network's bfloat16 products can carry into a note's pitch (by hundredths of a cent here).
    together, alone = svt.transcribe(many, SR, model), svt.transcribe(wav, SR, model)
    assert together.shape == alone.shape
    np.testing.assert_allclose(together[:, :2], alone[:, :2], atol=1e-4)
    np.testing.assert_allclose(together[:, 2], alone[:, 2], atol=0.01)


@pytest.mark.parametrize("options, message", [
    ({"chunk_seconds": 0}, "chunk_seconds must be a number of seconds above 0"),
    ({"chunk_seconds": -1}, "chunk_seconds must be"),
    ({"context_seconds": -1}, "context_seconds must be a number of seconds, 0 or more"),
    ({"batch_size": 0}, "batch_size must be a whole number, 1 or more, got 0"),
    ({"batch_size": 1.5}, "batch_size must be a whole number"),
    ({"onset_threshold": "0.5"}, "onset_threshold must be a number between 0 and 1, got '0.5'"),
])
def test_transcribe_arguments_are_checked_before_any_work(options, message, monkeypatch):
    from svt.inference import transcribe as inference

    monkeypatch.setattr(inference, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(ValueError, match=message):
        svt.transcribe(np.zeros(SR, np.float32), SR, **options)


def test_a_device_that_does_not_exist_is_refused_before_the_model_loads(tmp_path, capsys,
                                                                      monkeypatch):
    from svt.inference import files as library
    from svt.inference.transcribe import resolve_device

    with pytest.raises(ValueError, match="'gpu' is not a device; use auto, cpu, cuda"):
        resolve_device("gpu")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            resolve_device("cuda:3")
    monkeypatch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    sf.write(tmp_path / "s.wav", np.zeros(SR), SR)
    assert transcribe_main([str(tmp_path / "s.wav"), "--out-dir", str(tmp_path / "out"),
                            "--device", "gpu"]) == 2
    assert "svt-transcribe: error: --device 'gpu' is not a device" in capsys.readouterr().err


def test_notes_never_outlast_the_recording(model, sung, tmp_path):
    truth, wav = sung
    cut = wav[: int(3.0 * SR)]
    notes = svt.transcribe(cut, SR, model)
    assert len(notes) and notes[:, 1].max() <= 3.0 and (notes[:, 1] > notes[:, 0]).all()


def test_a_sample_rate_too_low_for_singing_is_refused(model, tmp_path):
    sf.write(tmp_path / "one_hertz.wav", np.zeros(100, np.float32), 1)
    with pytest.raises(AudioError, match="one_hertz.wav: its header says 1 samples per second"):
        svt.transcribe(tmp_path / "one_hertz.wav", model=model)
    with pytest.raises(AudioError, match="sample_rate 100 is too low to hold singing"):
        svt.transcribe(np.zeros(1000, np.float32), 100, model)
