"""Transcribe a dataset folder, then score it: svt-transcribe names each song after its folder in
the MIR-ST500 / N20EMv2 layouts and skips the other audio there, so svt-score matches the outputs
to Annotations.json / annotations.json. And an interrupted svt-transcribe leaves nothing behind."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from svt.cli.score import main as score_main
from svt.cli.transcribe import main as transcribe_main
from svt.inference.files import RECORD_FILE, name_clashes, output_stems
from svt.notes.formats import read_note_collection, read_notes
from svt.notes.scoring import score_song
from svt.synthetic.singing import make_corpus


def test_vocals_are_named_after_their_song_folder(tmp_path):
    files = [tmp_path / "x" / "1" / "vocals.wav", tmp_path / "y" / "1" / "vocals.wav",
             tmp_path / "test" / "7" / "vocals.wav", tmp_path / "s" / "vocals.wav",
             tmp_path / "s" / "vocals.flac", tmp_path / "song.wav"]
    names = output_stems(files)
    assert names == ["x__1", "y__1", "7", "s__wav", "s__flac", "song"]
    assert name_clashes(files, names) == {}


def outputs(folder):
    """The note files in `folder` (not svt-transcribe's record of what it wrote)."""
    return [p.name for p in folder.iterdir() if p.name != RECORD_FILE]


def scores_of(capsys, argv):
    assert score_main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_mir_st500_test_folder_transcribes_then_scores(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "MIR-ST500", "mir_st500", num_train=1, num_test=2,
                         song_duration_s=6.0, seed=4)
    test_ids = corpus["splits"]["test"]
    out = tmp_path / "notes"
    assert transcribe_main([str(tmp_path / "MIR-ST500" / "wav16kHz" / "test"),
                            "--out-dir", str(out), "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert "2 other audio file(s) in them skipped (accomp.wav)" in err
    # One output per song, named by the annotation key; the accompaniment is not transcribed.
    assert sorted(outputs(out)) == sorted(f"{i}.json" for i in test_ids)
    result, err = scores_of(capsys, [corpus["annotations"], str(out)])
    assert sorted(result["songs"]) == sorted(test_ids)
    assert result["missing"]["reference_only"] == corpus["splits"]["train"]
    assert "only in the reference" in err
    references = read_note_collection(corpus["annotations"])
    for song in test_ids:  # the same numbers as scoring each file by itself
        expected = score_song(references[song], read_notes(out / f"{song}.json"))
        assert result["songs"][song] == pytest.approx(expected)
        assert expected["COn_f1"] > 0.5  # real transcriptions of the vocals, not of accomp.wav


def test_n20emv2_data_folder_with_noisy_mixtures_transcribes_then_scores(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "N20EMv2", "n20emv2", num_train=1, num_test=1,
                         song_duration_s=6.0, seed=5)
    [train_id], [test_id] = corpus["splits"]["train"], corpus["splits"]["test"]
    data = tmp_path / "N20EMv2" / "data"
    noisy = data / test_id / "noise_data" / "white" / "SNR_0dB.wav"
    noisy.parent.mkdir(parents=True)
    sf.write(noisy, np.random.default_rng(0).normal(0, 0.1, 16000 * 6), 16000)
    out = tmp_path / "notes"
    assert transcribe_main([str(data), "--out-dir", str(out), "--format", "json"]) == 0
    err = capsys.readouterr().err
    assert "3 other audio file(s) in them skipped (SNR_0dB.wav, accomp.wav)" in err
    assert sorted(outputs(out)) == sorted([f"{train_id}.json", f"{test_id}.json"])
    result, err = scores_of(capsys, [corpus["annotations"], str(out), "--split", "test"])
    assert list(result["songs"]) == [test_id]
    assert result["missing"] == {"reference_only": [], "estimate_only": [train_id]}
    reference = read_note_collection(corpus["annotations"], split="test")[test_id]
    assert result["songs"][test_id] == pytest.approx(
        score_song(reference, read_notes(out / f"{test_id}.json")))
    # A file named directly is always transcribed, whatever the folder holds.
    assert transcribe_main([str(noisy), "--out-dir", str(out), "--format", "json"]) == 0
    assert (out / "SNR_0dB.json").is_file()


def _open_temporaries(pid, folder):
    """Files under `folder` the process holds open (deleted ones included)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_run_leaves_no_temporary_file(tmp_path, how):
    """A 44.1 kHz stereo file is converted to a 16 kHz copy that lives while the file is
    transcribed; a signal then must leave neither the copy nor a half-written output."""
    rng = np.random.default_rng(0)
    t = np.arange(44100 * 240) / 44100
    wav = 0.3 * np.sin(2 * np.pi * 220 * t) * (rng.random(len(t)) > 0.001)
    sf.write(tmp_path / "song.wav", np.stack([wav, wav], axis=1), 44100)
    temp, out = tmp_path / "tmp", tmp_path / "out"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "svt.cli.transcribe", str(tmp_path / "song.wav"),
         "--out-dir", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.time() + 120
    while not _open_temporaries(process.pid, temp):
        assert process.poll() is None and time.time() < deadline, "no conversion copy seen"
        time.sleep(0.02)
    process.send_signal(how)
    _, err = process.communicate(timeout=60)
    assert os.listdir(temp) == []  # the 16 kHz copy never had a name to leave behind
    assert not out.exists() or outputs(out) == []
    if how == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
    else:
        assert process.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[how]
        assert "svt-transcribe: interrupted" in err and "Traceback" not in err


def test_names_differing_only_in_case_clash_where_the_out_dir_ignores_case(tmp_path, capsys,
                                                                           monkeypatch):
    from svt.inference import files as library

    assert not library.folds_case(tmp_path)  # Linux file systems tell `A` from `a`
    assert os.listdir(tmp_path) == []  # the probe is gone
    monkeypatch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setattr(library, "folds_case", lambda folder: True)  # as on macOS or Windows
    for name in ("Song.wav", "song.wav"):
        sf.write(tmp_path / name, np.zeros(16000), 16000)
    assert transcribe_main([str(tmp_path / "Song.wav"), str(tmp_path / "song.wav"),
                            "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Song.wav" in err and "would all be written as song.*" in err
    assert os.listdir(tmp_path / "out") == []


def test_skip_existing_goes_on_where_an_interrupted_run_stopped(tmp_path, capsys):
    from svt.synthetic.singing import generate_melody, render_singing

    rng = np.random.default_rng(2)
    for name in ("a", "b", "c"):
        sf.write(tmp_path / f"{name}.wav", render_singing(generate_melody(rng, 3.0), 16000,
                                                          rng=rng, duration_s=3.0), 16000)
    out = tmp_path / "out"
    inputs = [str(tmp_path / f"{name}.wav") for name in "abc"]
    assert transcribe_main([*inputs, "--out-dir", str(out)]) == 0
    before = {name: (out / name).stat().st_mtime_ns for name in outputs(out)}
    # As a run stopped inside c's outputs leaves them: the JSON, written last, is missing;
    # b's MIDI output is missing as well.
    (out / "c.json").unlink()
    (out / "b.mid").unlink()
    capsys.readouterr()
    assert transcribe_main([*inputs, "--out-dir", str(out), "--skip-existing"]) == 0
    stdout = capsys.readouterr().out
    assert "--skip-existing: 1 of 3 file(s) already have their outputs" in stdout
    assert "2 of 2 file(s) transcribed" in stdout and "a.wav:" not in stdout
    after = {name: (out / name).stat().st_mtime_ns for name in outputs(out)}
    assert set(after) == set(before)
    assert all(after[n] == before[n] for n in ("a.json", "a.csv", "a.mid"))
    # Asking for more outputs than a finished input has transcribes it again.
    assert transcribe_main([inputs[0], "--out-dir", str(out), "--skip-existing",
                            "--save-frames"]) == 0
    assert (out / "a.npz").is_file()


def test_files_svt_did_not_write_are_never_replaced_silently(tmp_path, capsys, monkeypatch):
    """Transcribing a folder into itself, next to the user's own song.json / song.mid: the run
    stops before loading the model; --overwrite replaces them; files svt wrote are replaced."""
    from svt.inference import files as library

    folder = tmp_path / "myset"
    folder.mkdir()
    sf.write(folder / "song.wav", np.zeros(16000), 16000)
    (folder / "song.json").write_text("[[1, 1.5, 55]]")
    (folder / "song.mid").write_bytes(b"the user's reference")
    with monkeypatch.context() as patch:
        patch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
        assert transcribe_main([str(folder), "--out-dir", str(folder)]) == 2
        assert transcribe_main([str(folder), "--out-dir", str(folder), "--skip-existing"]) == 2
    err = capsys.readouterr().err
    assert "2 output(s) would replace files that svt-transcribe did not write" in err
    assert str(folder / "song.json") in err and "--overwrite" in err
    assert (folder / "song.mid").read_bytes() == b"the user's reference"
    assert transcribe_main([str(folder), "--out-dir", str(folder), "--overwrite"]) == 0
    assert (folder / "song.mid").read_bytes() != b"the user's reference"
    # What svt wrote itself it replaces on the next run without being asked.
    assert transcribe_main([str(folder), "--out-dir", str(folder)]) == 0


def test_an_empty_input_is_refused_not_the_current_folder(tmp_path, capsys, monkeypatch):
    from svt.inference import files as library

    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "here.wav", np.zeros(16000), 16000)
    monkeypatch.setattr(library, "resolve_model", lambda *a, **k: pytest.fail("model loaded"))
    assert transcribe_main(["", "--out-dir", str(tmp_path / "out")]) == 2
    assert "an input is an empty string" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_reference_folder_of_another_song_is_not_scored(tmp_path, capsys):
    from svt.synthetic.singing import generate_melody, render_singing

    rng = np.random.default_rng(9)
    notes = generate_melody(rng, 3.0)
    sf.write(tmp_path / "base.wav", render_singing(notes, 16000, rng=rng, duration_s=3.0), 16000)
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "other_song.json").write_text(json.dumps(notes.tolist()))
    assert transcribe_main([str(tmp_path / "base.wav"), "--reference", str(refs),
                            "--out-dir", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "COnPOff F1" not in captured.out
    assert "no reference notes for: base" in captured.err
    # A single reference file goes with a single input whatever its name.
    assert transcribe_main([str(tmp_path / "base.wav"), "--reference",
                            str(refs / "other_song.json"), "--out-dir", str(tmp_path / "o")]) == 0
    assert "COnPOff F1" in capsys.readouterr().out
