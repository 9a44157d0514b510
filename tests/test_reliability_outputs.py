"""Issue 21, second pass: outputs edited by hand, the record's name, audio levels and lengths,
odd sample rates, scoring memory, unbounded options, bundle files and weights, one-line errors."""
import json
import os
import subprocess
import sys
import threading
import warnings

import mir_eval
import numpy as np
import pytest
import soundfile as sf
import torch

import svt
from svt.audio import (
    AudioError,
    AudioLevelWarning,
    SampleRateError,
    TruncatedAudioWarning,
    mono_waveform,
    open_audio,
    resample,
)
from svt.cli.score import main as score_main
from svt.cli.transcribe import build_parser
from svt.cli.transcribe import main as transcribe_main
from svt.inference.bundle import DEFAULT_MODEL, BundleError, load_bundle
from svt.inference.files import (
    RECORD_FILE,
    TranscribeFilesError,
    add_to_record,
    read_record_entries,
    transcribe_files,
)
from svt.inference.transcribe import check_arguments
from svt.notes.formats import NoteFileError, read_notes
from svt.notes.scoring import match_counts

SR = 16000


@pytest.fixture(scope="module")
def model():
    return load_bundle(DEFAULT_MODEL)


def tone(seconds=1.0, rate=SR, peak=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (peak * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# ------------------------------------------------------------------ 1, 2: the output record

def test_a_rerun_keeps_outputs_edited_by_hand(tmp_path, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, tone(), SR)
    out = tmp_path / "out"
    assert transcribe_main([str(song), "--out-dir", str(out), "--format", "csv"]) == 0
    record = json.loads((out / RECORD_FILE).read_text())
    assert set(record["files"]) == {"song.json", "song.csv"}  # with size and SHA-256
    # Untouched outputs are replaced on a re-run.
    assert transcribe_main([str(song), "--out-dir", str(out), "--format", "csv",
                            "--onset-threshold", "0.3"]) == 0
    (out / "song.json").write_text("[[0.0, 1.0, 60.0]]\n")  # the user's edit
    capsys.readouterr()
    assert transcribe_main([str(song), "--out-dir", str(out), "--format", "csv",
                            "--onset-threshold", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "song.json (changed since svt-transcribe wrote it)" in err and "--overwrite" in err
    assert (out / "song.json").read_text() == "[[0.0, 1.0, 60.0]]\n"
    assert transcribe_main([str(song), "--out-dir", str(out), "--format", "csv",
                            "--overwrite"]) == 0
    assert (out / "song.json").read_text() != "[[0.0, 1.0, 60.0]]\n"
    assert sorted(p.name for p in out.iterdir()) == [RECORD_FILE, "song.csv", "song.json"]


def test_an_old_record_of_names_only_is_read_as_unknown_content(tmp_path, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, tone(), SR)
    out = tmp_path / "out"
    out.mkdir()
    (out / "song.json").write_text("[]\n")
    (out / RECORD_FILE).write_text(json.dumps({"written": ["song.json"]}))
    assert read_record_entries(out) == {"song.json": None}
    assert transcribe_main([str(song), "--out-dir", str(out), "--format", ""]) == 2
    assert "older svt-transcribe without a checksum" in capsys.readouterr().err


def test_no_input_maps_onto_the_record(tmp_path):
    hidden = tmp_path / ".svt-transcribe.wav"
    sf.write(hidden, tone(), SR)
    with pytest.raises(TranscribeFilesError, match=r"names starting with \.svt- are "):
        transcribe_files([hidden], tmp_path / "out", model="unused")
    assert not (tmp_path / "out" / RECORD_FILE).exists()


def test_concurrent_record_updates_are_not_lost(tmp_path):
    names = [f"s{i}.json" for i in range(40)]
    for name in names:
        (tmp_path / name).write_text(name)
    threads = [threading.Thread(target=add_to_record, args=(tmp_path, [name])) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(read_record_entries(tmp_path)) == set(names)


# ------------------------------------------------------------------ 3, 4: levels and lengths

def test_float_audio_above_full_scale_is_scaled_with_a_warning(tmp_path):
    loud = tone(peak=1.5)
    with pytest.warns(AudioLevelWarning, match=r"the waveform: float samples peak at 1\.5 "
                                               r"\(\+3\.5 dBFS\)"):
        wav, _ = mono_waveform(loud, SR)
    assert np.isclose(np.abs(wav).max(), 1.0)
    for rate in (SR, 44100):  # read slice by slice, and converted
        path = tmp_path / f"loud{rate}.wav"
        sf.write(path, tone(peak=1.5, rate=rate), rate, subtype="FLOAT")
        with pytest.warns(AudioLevelWarning, match=str(path)):
            source = open_audio(path)
        assert np.abs(source.read(0, source.num_samples)).max() <= 1.0 + 1e-3
        source.close()
    quiet = tmp_path / "fine.wav"
    sf.write(quiet, tone(peak=0.9), SR, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_audio(quiet).close()


def test_training_slices_of_a_loud_float_file_get_the_whole_files_gain(tmp_path):
    # Training reads each 5-s utterance alone; each must hear what the whole file is scaled to
    # (the song's peak, which the slice may not contain), never clipped by the pitch network.
    from svt.audio import read_audio

    loud = tone(seconds=2.0, peak=0.5)
    loud[len(loud) // 2 + 100] = 1.6  # the peak lies in the second half only
    path = tmp_path / "loud.wav"
    sf.write(path, loud, SR, subtype="FLOAT")
    with pytest.warns(AudioLevelWarning, match="peak at 1.6"):
        whole = read_audio(path)
    np.testing.assert_allclose(whole, loud / 1.6, rtol=1e-6)
    for start, stop in ((0, SR // 2), (SR, 2 * SR), (SR // 3, None)):
        with pytest.warns(AudioLevelWarning, match=str(path)):
            part = read_audio(path, start=start, stop=stop)
        np.testing.assert_array_equal(part, whole[start:stop])
    pcm = tmp_path / "pcm.wav"
    sf.write(pcm, tone(seconds=1.0, peak=0.9), SR, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # integer PCM cannot exceed full scale: nothing scanned
        read_audio(pcm, start=100, stop=4000)


def test_unscaled_pcm_in_floats_is_refused(tmp_path):
    with pytest.raises(AudioError, match="looks like unscaled integer PCM.*divide the samples "
                                         "by 32768"):
        mono_waveform(tone(peak=20000.0), SR)
    path = tmp_path / "pcm.wav"
    sf.write(path, tone(peak=20000.0), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=f"{path}: float samples reach 20000"):
        open_audio(path)
    # Integer arrays are scaled as soundfile scales them: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mono_waveform((tone() * 32767).astype(np.int16), SR)


@pytest.mark.parametrize("rate", [SR, 44100])
def test_a_truncated_wav_is_used_with_a_warning_naming_both_lengths(tmp_path, rate):
    full = tmp_path / "full.wav"
    sf.write(full, tone(2.0, rate), rate, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.warns(TruncatedAudioWarning,
                      match=rf"{cut}: the header claims {2 * rate} frames but the file holds "
                            rf"\d+ \("):
        open_audio(cut).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        open_audio(full).close()


# ------------------------------------------------------------------ 5: sample rates

def _peak_rss_mib(code: str) -> float:
    """Peak resident memory of a fresh interpreter running `code` (VmHWM: ru_maxrss would count
    the forked pytest process too)."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs Linux's /proc to measure memory")
    script = ("import numpy as np\n" + code + "\nprint([int(line.split()[1]) / 1024 for line "
              "in open('/proc/self/status') if line.startswith('VmHWM')][0])")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def test_odd_sample_rates_resample_in_bounded_memory():
    code = ("from svt.audio import resample\n"
            "for rate in (16001, 44101, 767999):\n"
            "    out = resample(np.zeros(rate * 2, np.float32), rate, 16000)\n"
            "    assert abs(len(out) - 32000) <= 1, len(out)\n")
    assert _peak_rss_mib(code) < 600  # torchaudio's sinc tables: 4.9 GiB at 16,001 Hz
    x = tone(1.0, 16001)
    y = resample(x, 16001, SR)
    assert abs(len(y) - SR) <= 1 and np.abs(y).max() < 0.6


@pytest.mark.parametrize("rate, message", [(1e12, "above any recording's rate"),
                                           (768001, "at most 768000"),
                                           (3999, "too low to hold singing")])
def test_sample_rates_outside_recording_rates_are_refused(rate, message):
    with pytest.raises(SampleRateError, match=message):
        mono_waveform(np.zeros(SR, np.float32), rate)


# ------------------------------------------------------------------ 6: scoring

def mir_eval_counts(ref, est, onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=0.2,
                    offset_min_tolerance=0.05):
    ri, rp = ref[:, :2], mir_eval.util.midi_to_hz(ref[:, 2])
    ei, ep = est[:, :2], mir_eval.util.midi_to_hz(est[:, 2])
    t = dict(onset_tolerance=onset_tolerance, pitch_tolerance=pitch_tolerance)
    return {
        "COnPOff": len(mir_eval.transcription.match_notes(
            ri, rp, ei, ep, offset_ratio=offset_ratio, offset_min_tolerance=offset_min_tolerance,
            **t)),
        "COnP": len(mir_eval.transcription.match_notes(ri, rp, ei, ep, offset_ratio=None, **t)),
        "COn": len(mir_eval.transcription.match_note_onsets(ri, ei,
                                                            onset_tolerance=onset_tolerance)),
        "COff": len(mir_eval.transcription.match_note_offsets(
            ri, ei, offset_ratio=offset_ratio, offset_min_tolerance=offset_min_tolerance)),
    }


def _adversarial(rng, k):
    """Notes crowding onto few onsets and pitches (the quadratic case) or spread out."""
    on = rng.uniform(0, 2, k)
    grid = rng.choice([0.0, 0.01, 0.05])
    if grid:
        on = np.round(on / grid) * grid
    if rng.random() < 0.4:
        on[:] = on[0]  # all share one onset
    if rng.random() < 0.5:
        dur = rng.choice([0.05, 0.1, 0.2, 0.5], k)
    else:
        dur = rng.uniform(0.01, 1, k)
    if rng.random() < 0.6:
        pitch = rng.choice([60.0, 60.3, 60.5, 61.0, 62.0], k)
    else:
        pitch = rng.uniform(55, 65, k)
    return np.stack([on, on + dur, pitch], 1)


def test_scoring_equals_mir_eval_on_random_and_crowded_notes():
    rng = np.random.default_rng(21)
    for _ in range(300):
        n, m = rng.integers(1, 20, 2)
        ref, est = _adversarial(rng, n), _adversarial(rng, m)
        tolerances = dict(onset_tolerance=float(rng.choice([0.01, 0.05, 0.1, 1.0])),
                          pitch_tolerance=float(rng.choice([25.0, 50.0, 100.0, 1200.0])),
                          offset_ratio=float(rng.choice([0.05, 0.2, 1.0])),
                          offset_min_tolerance=float(rng.choice([0.0, 0.05, 0.5])))
        assert match_counts(ref, est, **tolerances).matched == \
            mir_eval_counts(ref, est, **tolerances), (ref, est, tolerances)


def test_scoring_10000_notes_sharing_one_onset_in_linear_memory():
    code = ("from svt.notes.scoring import match_counts\n"
            "rng = np.random.default_rng(0)\n"
            "n = 10000\n"
            "same = np.stack([np.zeros(n), np.ones(n), np.full(n, 60.0)], 1)\n"
            "assert match_counts(same, same).matched['COnP'] == n\n"
            "ref = np.stack([np.zeros(n), rng.uniform(0.1, 2, n), rng.uniform(40, 80, n)], 1)\n"
            "est = np.stack([np.zeros(n), rng.uniform(0.1, 2, n), rng.uniform(40, 80, n)], 1)\n"
            "assert match_counts(ref, est).matched['COn'] == n\n"
            "on = np.cumsum(rng.uniform(0.2, 0.5, n))\n"
            "mel = np.stack([on, on + 0.2, np.full(n, 60.0)], 1)\n"
            "assert match_counts(mel, mel, onset_tolerance=1.0).matched['COnPOff'] == n\n")
    assert _peak_rss_mib(code) < 700  # was 3.3 GiB (one onset) and 2.35 GiB (wide tolerance)


@pytest.mark.parametrize("option, value", [("--onset-tolerance", "100000"),
                                           ("--pitch-tolerance", "5000"),
                                           ("--offset-ratio", "3"),
                                           ("--offset-min-tolerance", "2")])
def test_scoring_tolerances_are_bounded(tmp_path, capsys, option, value):
    notes = tmp_path / "a.json"
    notes.write_text("[[0, 1, 60]]")
    with pytest.raises(SystemExit):
        score_main([str(notes), str(notes), option, value])
    assert f"argument {option}: {value} is out of range" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must be a number"):
        match_counts(np.array([[0, 1, 60.0]]), np.array([[0, 1, 60.0]]),
                     **{option[2:].replace("-", "_"): float(value)})


# ------------------------------------------------------------------ 7: chunk and context

@pytest.mark.parametrize("option, value", [("--chunk-seconds", "0.001"),
                                           ("--chunk-seconds", "1e9"),
                                           ("--context-seconds", "1e6")])
def test_chunk_and_context_seconds_are_bounded(capsys, option, value):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["x.wav", "--out-dir", "o", option, value])
    assert "is out of range: expected from" in capsys.readouterr().err
    name = option[2:].replace("-", "_")
    with pytest.raises(ValueError, match=rf"{name} must be between \d+ and \d+ seconds"):
        check_arguments(None, None, **{"chunk_seconds": None, "context_seconds": 0.5,
                                       name: float(value)}, batch_size=1)


# ------------------------------------------------------------------ 8, 9: bundles

@pytest.fixture()
def bundle(tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, copy)
    return copy


def test_bundle_entries_that_are_not_regular_files_are_refused_before_reading(bundle):
    weights = bundle / "weights.pt"
    weights.unlink()
    weights.symlink_to("/dev/zero")
    with pytest.raises(BundleError, match=r"weights\.pt: a device \(through a link\), not a "
                                          "regular file"):
        load_bundle(bundle)
    weights.unlink()
    os.mkfifo(weights)  # would hang a reader
    with pytest.raises(BundleError, match=r"weights\.pt: a FIFO, not a regular file"):
        load_bundle(bundle)


@pytest.mark.parametrize("section", ["encoder_config", "head_config"])
def test_huge_sizes_in_the_settings_are_refused_before_allocation(bundle, section):
    manifest = json.loads((bundle / "svt_bundle.json").read_text())
    key = "hidden_size" if section == "encoder_config" else "input_size"
    manifest[section][key] = 10 ** 6
    (bundle / "svt_bundle.json").write_text(json.dumps(manifest))
    if section == "encoder_config":
        options = json.loads((bundle / "encoder" / "svt_encoder.json").read_text())
        options["hidden_size"] = 10 ** 6
        (bundle / "encoder" / "svt_encoder.json").write_text(json.dumps(options))
    with pytest.raises(BundleError, match=rf"{key} is 1e\+06, which would allocate more than "
                                          "the weights hold"):
        load_bundle(bundle)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.fill_(float("nan")), "holds .* NaN or infinite value"),
    (lambda t: t.to(torch.int64), "holds torch.int64 values where the model has torch.float32"),
])
def test_non_finite_or_non_float_weights_are_refused_naming_the_tensor(bundle, change, message):
    state = torch.load(bundle / "weights.pt", weights_only=True)
    name = next(k for k in sorted(state) if k.startswith("head") and state[k].is_floating_point())
    state[name] = change(state[name].clone())
    torch.save(state, bundle / "weights.pt")
    with pytest.raises(BundleError, match=f"tensor {name} {message}"):
        load_bundle(bundle)


def test_torchs_weights_only_advice_is_never_shown():
    from svt.inference.bundle import _first_line

    err = RuntimeError("Weights only load failed. ... Re-running `torch.load` with "
                       "`weights_only` set to `False` will likely succeed")
    assert "weights_only" not in _first_line(OSError(str(err)))
    assert "objects other than tensors" in _first_line(err)


# ------------------------------------------------------------------ 10: one-line errors

@pytest.mark.parametrize("text, message", [
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ("[[0, 1, " + "9" * 400 + "]]", "holds a 400-digit number"),
    ("[[0, 1, " + "9" * 5000 + "]]", "thousands of digits"),
])
def test_svt_score_names_the_file_for_deep_json_and_huge_numbers(tmp_path, capsys, text,
                                                                 message):
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(text)
    good.write_text("[[0, 1, 60]]")
    assert score_main([str(good), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"svt-score: error: {bad}") and message in err
    assert len(err.splitlines()) == 1


def test_reference_with_deep_json_is_one_error(tmp_path):
    song = tmp_path / "song.wav"
    sf.write(song, tone(), SR)
    bad = tmp_path / "ref.json"
    bad.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(TranscribeFilesError, match="--reference: .*nested too deeply"):
        transcribe_files([song], tmp_path / "out", reference=bad, model="unused")


def test_midi_with_zero_ticks_per_beat_is_one_error(tmp_path):
    import mido

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90, time=0),
                            mido.Message("note_off", note=60, velocity=0, time=480)])
    midi.tracks.append(track)
    path = tmp_path / "zero.mid"
    midi.save(path)
    data = bytearray(path.read_bytes())
    data[12:14] = b"\x00\x00"  # the header's division
    path.write_bytes(bytes(data))
    with pytest.raises(NoteFileError, match=f"{path}: the MIDI header gives 0 ticks per beat"):
        read_notes(path)


def test_transcribe_of_a_loud_float_array_warns_and_keeps_its_notes(model):
    # A held, harmonic-rich tone that starts like a sung note (after silence, a 50-ms attack):
    # an abrupt pure sine at t = 0 is not a note the model is sure to hear begin.
    t = np.arange(3 * SR) / SR
    held = sum(np.sin(2 * np.pi * h * 220.0 * t) / h for h in range(1, 9))
    held *= np.clip(t / 0.05, 0, 1) * np.clip((3.0 - t) / 0.05, 0, 1)
    wav = np.concatenate([np.zeros(SR // 4), 0.5 * held / np.abs(held).max(), np.zeros(SR // 4)])
    wav = wav.astype(np.float32)
    quiet = svt.transcribe(wav, SR, model)
    assert len(quiet) == 1 and abs(quiet[0, 2] - 57.0) < 0.5  # A3, one note
    with pytest.warns(AudioLevelWarning):
        loud = svt.transcribe(wav * 3, SR, model)
    np.testing.assert_allclose(loud, quiet, atol=0.05)
