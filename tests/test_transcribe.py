"""svt.transcribe and svt-transcribe: chunked stitching, formats, errors, outputs."""

import json
import re
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import svt
from svt.cli.score import main as score_main
from svt.audio import ArraySource
from svt.cli.transcribe import main as transcribe_main
from svt.inference.bundle import export_bundle, load_bundle
from svt.inference.files import RECORD_FILE
from svt.inference.transcribe import SilentInputWarning, predict_frames
from svt.models.head import TranscriptionHead
from svt.models.ssl import SSLEncoder
from svt.notes.decoding import frames_to_notes
from svt.notes.formats import read_notes
from svt.notes.scoring import score_song
from svt.synthetic.singing import generate_melody, render_singing
from svt.synthetic.tiny_models import build_tiny_ssl_model

SR = 16000


@pytest.fixture(scope="module")
def local_bundle(tmp_path_factory):
    """A model whose frames depend only on nearby audio (conv front-end + positional conv, no
    attention, no whole-utterance normalisation): chunked processing must equal one whole-file
    pass exactly, which isolates the stitching from the encoder's use of context."""
    root = tmp_path_factory.mktemp("local")
    source = build_tiny_ssl_model(root / "hf", num_layers=0, feat_extract_norm="layer",
                                  do_normalize=False)
    encoder = SSLEncoder(source=source, output_norm=False)
    torch.manual_seed(0)
    head = TranscriptionHead(encoder.output_size)
    with torch.no_grad():
        head.w.weight.mul_(4.0)  # livelier onset/offset curves: more notes to compare
    settings = {"frame_rate": 49.8, "sample_rate": SR, "dur_threshold": 5,
                "onset_threshold": 0.4, "offset_threshold": 0.5}
    return export_bundle(root / "model", encoder, head, settings)


@pytest.fixture(scope="module")
def song():
    rng = np.random.default_rng(3)
    notes = generate_melody(rng, 95.0, voice="tenor")
    return notes, render_singing(notes, SR, rng=rng, duration_s=95.0)


def whole_file_frames(model, wav):
    return model.predict_frames(wav)


@pytest.mark.parametrize("chunk, context, batch", [(5.0, 1.0, 4), (7.3, 0.5, 3), (30.0, 2.0, 1)])
def test_chunked_frames_equal_whole_file_pass(local_bundle, song, chunk, context, batch):
    model = load_bundle(local_bundle)
    _, wav = song
    whole = whole_file_frames(model, wav)
    chunked = predict_frames(model, ArraySource(wav), chunk, context, batch)
    assert len(chunked[0]) == len(whole[0]) == model.encoder.num_frames(len(wav))
    np.testing.assert_allclose(chunked[0], whole[0], atol=1e-4)
    np.testing.assert_allclose(chunked[1], whole[1], atol=1e-4)
    assert (chunked[2] == whole[2]).mean() > 0.999 and (chunked[3] == whole[3]).mean() > 0.999
    notes = svt.transcribe(wav, SR, model, chunk_seconds=chunk, context_seconds=context,
                           batch_size=batch)
    reference = frames_to_notes(*whole, 0.4, 0.5, frame_rate=model.encoder.frame_rate)
    assert len(notes) > 20
    # Notes at chunk borders are neither doubled nor cut: same notes as the whole-file decoding.
    assert score_song(reference, notes)["COnP_f1"] >= 0.99
    assert abs(len(notes) - len(reference)) <= 1


def test_default_batch_size_is_the_encoders(local_bundle, song, monkeypatch):
    """30 s in 5-s chunks: 6 chunks, in passes of the encoder's `inference_batch_size`."""
    model = load_bundle(local_bundle)
    _, wav = song
    passes = []
    original = model.frame_outputs
    monkeypatch.setattr(model, "frame_outputs",
                        lambda wavs, *a: passes.append(len(wavs)) or original(wavs, *a))
    assert model.encoder.inference_batch_size == 4  # an SSL encoder's: memory first
    default = predict_frames(model, ArraySource(wav[:SR * 30]), 5.0, 0.5)
    assert passes == [4, 2]
    monkeypatch.setattr(model.encoder, "inference_batch_size", 16)
    passes.clear()
    larger = predict_frames(model, ArraySource(wav[:SR * 30]), 5.0, 0.5)
    assert passes == [6]
    for a, b in zip(default, larger):  # the batch changes the speed, not the frames
        np.testing.assert_allclose(a, b, atol=1e-5)
    from svt.models.pitch_network import PitchNetworkEncoder

    assert PitchNetworkEncoder.inference_batch_size == 16


def test_file_and_array_inputs_agree_and_resampled_input_works(local_bundle, song, tmp_path):
    model = load_bundle(local_bundle)
    _, wav = song
    sf.write(tmp_path / "a.wav", wav, SR, subtype="FLOAT")
    from_file = svt.transcribe(tmp_path / "a.wav", model=model)
    from_array = svt.transcribe(wav, SR, model)
    np.testing.assert_allclose(from_file, from_array)
    import librosa
    stereo44 = np.stack([librosa.resample(wav, orig_sr=SR, target_sr=44100)] * 2, axis=1)
    sf.write(tmp_path / "b.flac", stereo44, 44100)
    converted = svt.transcribe(tmp_path / "b.flac", model=model)
    assert score_song(from_file, converted)["COn_f1"] >= 0.8
    as_array = svt.transcribe(stereo44, 44100, model)
    assert score_song(converted, as_array)["COn_f1"] >= 0.8


def test_silent_and_too_short_input_give_empty_notes_with_warning(local_bundle):
    model = load_bundle(local_bundle)
    for wav in (np.zeros(SR * 3, np.float32), np.zeros(100, np.float32)):
        with pytest.warns(SilentInputWarning):
            notes = svt.transcribe(wav, SR, model)
        assert notes.shape == (0, 3)


def test_api_requires_a_rate_and_a_model_for_video():
    with pytest.raises(ValueError, match="sample_rate is required"):
        svt.transcribe(np.zeros(10))
    with pytest.raises(ValueError, match="the default model is audio-only; pass model="):
        svt.transcribe(np.zeros(10), 16000, video=np.zeros((1, 96, 96), np.uint8))


def test_cli_folder_run_outputs_errors_and_scoring(local_bundle, song, tmp_path, capsys):
    notes, wav = song
    inputs = tmp_path / "in"
    inputs.mkdir()
    sf.write(inputs / "song.wav", wav[: SR * 20], SR)
    sf.write(inputs / "quiet.wav", np.zeros(SR * 2), SR)
    (inputs / "broken.wav").write_text("not audio")
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "song.json").write_text(json.dumps([n for n in notes.tolist() if n[1] <= 20]))
    out = tmp_path / "out"
    code = transcribe_main([str(inputs), "--model", str(local_bundle), "--out-dir", str(out),
                            "--plot", "--reference", str(refs), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 1  # one file failed
    assert "broken.wav: not a readable audio file" in captured.err
    assert "no notes found" in captured.err and "quiet.wav" in captured.err
    assert "2 of 3 file(s) transcribed" in captured.out and "COnPOff F1" in captured.out
    for stem in ("song", "quiet"):
        for ext in ("json", "csv", "mid", "png"):
            assert (out / f"{stem}.{ext}").is_file(), f"{stem}.{ext}"
    assert not (out / "broken.json").exists()
    assert read_notes(out / "quiet.json").shape == (0, 3)
    from_json = read_notes(out / "song.json")
    np.testing.assert_allclose(read_notes(out / "song.csv"), from_json, atol=1e-6)
    np.testing.assert_allclose(read_notes(out / "song.mid"), from_json, atol=2e-3)
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries
    # svt-score works directly on the output folder (quiet has no reference: reported).
    assert score_main([str(refs), str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["songs"]) == ["song"] and result["missing"]["estimate_only"] == ["quiet"]
    expected = score_song(json.loads((refs / "song.json").read_text()), from_json)
    assert result["songs"]["song"]["COnP_f1"] == pytest.approx(expected["COnP_f1"])


def test_cli_format_choice_and_bad_model(local_bundle, song, tmp_path, capsys):
    _, wav = song
    sf.write(tmp_path / "s.wav", wav[: SR * 6], SR)
    assert transcribe_main([str(tmp_path / "s.wav"), "--model", str(local_bundle), "--out-dir",
                            str(tmp_path / "o"), "--format", "csv"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()
                  if p.name != RECORD_FILE) == ["s.csv", "s.json"]
    assert transcribe_main([str(tmp_path / "s.wav"), "--model", str(tmp_path), "--out-dir",
                            str(tmp_path / "o")]) == 2
    assert "no model bundle here" in capsys.readouterr().err
    assert transcribe_main([str(tmp_path / "nothing.wav"), "--model", str(local_bundle),
                            "--out-dir", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_long_input_is_read_chunk_by_chunk(local_bundle, tmp_path, monkeypatch):
    """A 12-minute file: the reader is only ever asked for chunk-sized slices."""
    model = load_bundle(local_bundle)
    rng = np.random.default_rng(0)
    notes = generate_melody(rng, 60.0)
    minute = render_singing(notes, SR, rng=rng, duration_s=60.0)
    with sf.SoundFile(tmp_path / "long.wav", "w", SR, 1, subtype="PCM_16") as f:
        for _ in range(12):
            f.write(minute)
    from svt.audio import FileSource
    sizes = []
    original = FileSource.read

    def spy(self, start, stop):
        sizes.append(stop - start)
        return original(self, start, stop)

    monkeypatch.setattr(FileSource, "read", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SilentInputWarning)
        result = svt.transcribe(tmp_path / "long.wav", model=model, batch_size=8)
    assert max(sizes) <= (5 + 2 * 0.5) * SR + 400
    assert len(sizes) == int(np.ceil(12 * 60 / 5))
    # The 12 repetitions of the same minute give (nearly) the same notes each minute.
    per_minute = [((result[:, 0] >= 60 * k) & (result[:, 0] < 60 * (k + 1))).sum()
                  for k in range(12)]
    assert max(per_minute) - min(per_minute) <= 2


def test_cli_thresholds_and_saved_frames(local_bundle, song, tmp_path, capsys):
    """--save-frames writes the posteriors the notes were decoded from; the thresholds default to
    the bundle's, move the result the expected way, and are range-checked by argparse."""
    _, wav = song
    sf.write(tmp_path / "s.wav", wav[: SR * 12], SR)
    args = [str(tmp_path / "s.wav"), "--model", str(local_bundle), "--format", "csv"]
    assert transcribe_main([*args, "--out-dir", str(tmp_path / "default"), "--save-frames"]) == 0
    notes = read_notes(tmp_path / "default" / "s.json")
    saved = np.load(tmp_path / "default" / "s.npz")
    assert float(saved["frame_rate"]) == load_bundle(local_bundle).encoder.frame_rate == 50.0
    assert len(notes) > 0
    # The saved frames decode, at the stored rate with the bundle's thresholds, to the JSON notes.
    decoded = frames_to_notes(saved["onset"], saved["offset"], saved["octave"],
                              saved["pitch_class"], onset_threshold=0.4, offset_threshold=0.5,
                              frame_rate=float(saved["frame_rate"]))
    np.testing.assert_allclose(decoded, notes, atol=1e-6)
    # A stricter onset threshold keeps only peaks above it: fewer notes, those of the frames.
    strict = float(np.quantile(saved["onset"], 0.995))
    assert transcribe_main([*args, "--out-dir", str(tmp_path / "strict"),
                            "--onset-threshold", str(strict)]) == 0
    strict_notes = read_notes(tmp_path / "strict" / "s.json")
    assert len(strict_notes) < len(notes)
    np.testing.assert_allclose(strict_notes, frames_to_notes(
        saved["onset"], saved["offset"], saved["octave"], saved["pitch_class"],
        onset_threshold=strict, offset_threshold=0.5, frame_rate=50.0), atol=1e-6)
    for bad in ("0", "1", "1.5", "-0.2", "abc"):
        with pytest.raises(SystemExit) as exit_info:
            transcribe_main([*args, "--out-dir", str(tmp_path / "bad"), "--offset-threshold",
                             bad])
        assert exit_info.value.code == 2
        assert "--offset-threshold" in capsys.readouterr().err
    with pytest.raises(ValueError, match="onset_threshold must be a number between 0 and 1"):
        svt.transcribe(wav[:SR], sample_rate=SR, model=local_bundle, onset_threshold=2.0)


def test_every_input_gets_its_own_output_name(tmp_path):
    from svt.inference.files import name_clashes, output_stems

    files = [tmp_path / "x" / "a" / "song.wav", tmp_path / "y" / "a" / "song.wav",
             tmp_path / "z" / "song.wav", tmp_path / "z" / "song.flac",
             tmp_path / "a" / "solo.wav", tmp_path / "a_solo.wav", tmp_path / "other.wav"]
    names = output_stems(files)
    assert names == ["x__a__song", "y__a__song", "z__song__wav", "z__song__flac", "solo",
                     "a_solo", "other"]
    assert name_clashes(files, names) == {}


def test_clashing_names_or_a_bad_out_dir_stop_the_run_before_any_work(tmp_path, capsys,
                                                                        monkeypatch):
    from svt.inference import files as library

    monkeypatch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    sf.write(tmp_path / "s.wav", np.zeros(SR), SR)
    monkeypatch.setattr(library, "output_stems", lambda files: ["same"] * len(files))
    sf.write(tmp_path / "t.wav", np.zeros(SR), SR)
    assert transcribe_main([str(tmp_path / "s.wav"), str(tmp_path / "t.wav"),
                            "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "would all be written as same.*" in err and "nothing was written" in err
    assert not (tmp_path / "out").exists()
    monkeypatch.undo()
    monkeypatch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    (tmp_path / "a_file").write_text("x")
    assert transcribe_main([str(tmp_path / "s.wav"), "--out-dir", str(tmp_path / "a_file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert transcribe_main([str(tmp_path / "s.wav"), "--out-dir",
                            str(tmp_path / "a_file" / "sub")]) == 2
    assert "cannot be created" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "0"], "--batch-size: invalid positive_int value|must be at least 1"),
    (["--batch-size", "-1"], "must be at least 1"),
    (["--chunk-seconds", "0"], "0 is out of range: expected from 1 to 60"),
    (["--context-seconds", "-0.5"], "must not be negative"),
    (["--chunk-seconds", "nan"], "not a finite number"),
])
def test_out_of_range_arguments_are_refused_up_front(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        transcribe_main([str(tmp_path / "s.wav"), "--out-dir", str(tmp_path / "o"), *argv])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("argv, message", [
    (["--onset-tolerance", "-1"], "must be greater than 0"),
    (["--pitch-tolerance", "0"], "must be greater than 0"),
    (["--offset-min-tolerance", "-0.01"], "must not be negative"),
])
def test_score_refuses_out_of_range_tolerances(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        score_main(["a.json", "b.json", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_transcribe_files_from_python(local_bundle, song, tmp_path):
    """`svt.transcribe_files`: the call svt-transcribe makes, with its results and messages."""
    _, wav = song
    sf.write(tmp_path / "s.wav", wav[: SR * 6], SR)
    messages = []
    results = svt.transcribe_files([tmp_path / "s.wav", tmp_path / "gone.wav"], tmp_path / "o",
                                   model=local_bundle, formats=("mid",), device="cpu",
                                   report=lambda level, text: messages.append((level, text)))
    missing, written = results
    assert (missing.status, missing.name) == ("missing", None)
    assert written.status == "written" and written.name == "s" and len(written.notes) > 0
    assert written.outputs == [tmp_path / "o" / "s.json", tmp_path / "o" / "s.mid"]
    np.testing.assert_allclose(read_notes(tmp_path / "o" / "s.json"), written.notes)
    assert ("error", f"{tmp_path / 'gone.wav'}: no such file or folder") in messages
    assert ("info", f"{tmp_path / 's.wav'}: {len(written.notes)} notes -> "
                    f"{tmp_path / 'o' / 's'}.json") in messages
    [again] = svt.transcribe_files(tmp_path / "s.wav", tmp_path / "o", model=local_bundle,
                                   formats="mid", skip_existing=True, report=lambda *a: None)
    assert again.status == "skipped"
    # Refusals come before any work, as one exception naming every problem.
    from svt.inference.files import TranscribeFilesError

    with pytest.raises(TranscribeFilesError, match="unknown --format"):
        svt.transcribe_files(tmp_path / "s.wav", tmp_path / "o", formats=("pdf",))
    with pytest.raises(TranscribeFilesError, match="batch_size must be a whole number"):
        svt.transcribe_files(tmp_path / "s.wav", tmp_path / "o", batch_size=0)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "s.json").write_text("[]")
    with pytest.raises(TranscribeFilesError, match="1 output.s. would replace files") as info:
        svt.transcribe_files(tmp_path / "s.wav", tmp_path / "mine", formats=())
    assert info.value.errors == [str(info.value)] and info.value.advice is None


def test_plot_pitch_axis_fits_the_notes(tmp_path):
    """The piano roll shows the notes' range with a margin, not C2-C7 whatever the song."""
    from mir_eval.util import hz_to_midi

    from svt.inference.plot import DEFAULT_PITCH_RANGE, piano_roll_figure, plot_piano_roll

    def midi_limits(*args, **kwargs):
        import matplotlib.pyplot as plt

        fig = piano_roll_figure(*args, **kwargs)
        ax = fig.axes[0]
        limits = tuple(float(hz_to_midi(f)) for f in ax.get_ylim())
        labels = [t.get_text() for t in ax.get_yticklabels()]
        plt.close(fig)
        return limits, labels

    melody = np.array([[0.0, 0.5, 60], [0.5, 1.0, 64], [1.0, 1.5, 67], [1.5, 2.0, 62.3]])
    (low, high), labels = midi_limits(melody)
    assert 55 <= low <= 58.5 and 68.5 <= high <= 72 and high - low >= 12 - 1e-9
    assert "C4" in labels and "G4" in labels and "C2" not in labels
    # The reference widens the axis to hold its notes too.
    (low, high), _ = midi_limits(melody, reference=[[0.0, 1.0, 48], [1.0, 2.0, 79]])
    assert 44 <= low <= 46.5 and 80.5 <= high <= 83
    # A single note still gets an octave; no notes at all: the singing range.
    (low, high), _ = midi_limits([[0.0, 1.0, 70]])
    assert low < 70 < high and high - low == pytest.approx(12)
    assert midi_limits(np.zeros((0, 3)))[0] == pytest.approx(DEFAULT_PITCH_RANGE)
    audio = np.sin(2 * np.pi * 261.6 * np.arange(SR * 2) / SR).astype(np.float32)
    plot_piano_roll(tmp_path / "roll.png", melody, audio, SR, title="melody")
    assert (tmp_path / "roll.png").stat().st_size > 1000 and not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize("argv", [["--save-vocals"], ["--separation-model", "htdemucs"]])
def test_separation_options_need_separate(tmp_path, capsys, argv):
    """--save-vocals / --separation-model without --separate: an argument error, nothing run."""
    with pytest.raises(SystemExit) as exit_info:
        transcribe_main([str(tmp_path / "s.wav"), "--out-dir", str(tmp_path / "o"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{argv[0]} is for vocal separation: add --separate" in err
    assert not (tmp_path / "o").exists()
    from svt.inference.files import TranscribeFilesError

    with pytest.raises(TranscribeFilesError, match="save_vocals .* pass separate=True"):
        svt.transcribe_files(tmp_path / "s.wav", tmp_path / "o", save_vocals=True)
    with pytest.raises(TranscribeFilesError, match="separation_model is only used with separate"):
        svt.transcribe_files(tmp_path / "s.wav", tmp_path / "o", separation_model="htdemucs")
    with pytest.raises(ValueError, match="separation_model is only used with separate=True"):
        svt.transcribe(np.zeros(SR), SR, separation_model="htdemucs")
    assert not (tmp_path / "o").exists()


def test_separate_without_demucs_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    """--separate where demucs is not installed: one error naming the install command, before the
    transcriber loads, nothing written."""
    from svt.inference import files as library
    from svt.inference import separation

    monkeypatch.setattr(separation, "demucs_available", lambda: False)
    monkeypatch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    sf.write(tmp_path / "s.wav", np.zeros(SR), SR)
    assert transcribe_main([str(tmp_path / "s.wav"), "--separate", "--out-dir",
                            str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("svt-transcribe: error:") == 1 and "pip install demucs" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(separation.SeparationNotInstalled, match="pip install demucs"):
        svt.transcribe(tmp_path / "s.wav", separate=True)
