"""Bad input to the data preparations and the prepare.py command lines: out-of-range settings,
preparation folders that cannot be written, duplicate annotation keys, pitches in Hz, too few
training songs, and two recordings that would get one song name."""
import json

import pytest
from test_prepare import cli, make_mir, melody, write_wav

from svt.data.utterances import PrepareError
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.datasets.ssvd import prepare_ssvd
from svt.datasets.tonas import prepare_tonas


def small_mir(tmp_path):
    return make_mir(tmp_path / "MIR", {"1": ("train", 5.0), "2": ("train", 5.0),
                                       "7": ("test", 5.0)})


@pytest.mark.parametrize("option, value", [
    ("--label_frame_rate", "0"), ("--label_frame_rate", "-49.8"), ("--label_frame_rate", "nan"),
    ("--label_frame_rate", "inf"), ("--label_frame_rate", "1e7"), ("--frame_rate", "0"),
    ("--dur_threshold", "0"),
    ("--dur_threshold", "-5"), ("--dur_threshold", "nan"), ("--dur_threshold", "1e7"),
])
def test_cli_settings_out_of_range(tmp_path, capsys, option, value):
    data = small_mir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        cli("MIR-ST500/prepare.py")(["--data_folder", str(data), "--prepare_folder",
                                      str(tmp_path / "out"), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "is out of range" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs", [dict(label_frame_rate=0),
                                    dict(label_frame_rate=float("nan")),
                                    dict(label_frame_rate=1e7), dict(dur_threshold=-1),
                                    dict(dur_threshold=float("inf"))])
def test_prepare_functions_check_the_same_ranges(tmp_path, kwargs):
    data = small_mir(tmp_path)
    with pytest.raises(PrepareError, match="is out of range"):
        prepare_mir_st500(data, tmp_path / "out", **kwargs)
    with pytest.raises(PrepareError, match="is out of range"):
        prepare_tonas(data, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_prepare_folder_that_is_a_file_or_cannot_be_made(tmp_path, capsys):
    data = small_mir(tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for save in (a_file, a_file / "below"):
        assert cli("MIR-ST500/prepare.py")(["--data_folder", str(data), "--prepare_folder",
                                            str(save)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: --prepare_folder {save}: {a_file} is a file, not a folder")
    assert a_file.read_text() == "x"


def test_former_flag_spellings_still_work(tmp_path, capsys):
    """--save_folder and --frame_rate (the top-level README's names) are the same options as
    --prepare_folder and --label_frame_rate, hidden from --help."""
    data = small_mir(tmp_path)
    out = tmp_path / "out"
    assert cli("MIR-ST500/prepare.py")(["--data_folder", str(data), "--save_folder", str(out),
                                        "--frame_rate", "50", "--num_valid", "1"]) == 0
    settings = json.loads((out / "labels/mir_st500/_settings.json").read_text())
    assert settings["frame_rate"] == 50.0
    with pytest.raises(SystemExit):
        cli("MIR-ST500/prepare.py")(["--help"])
    shown = capsys.readouterr().out
    assert "--prepare_folder" in shown and "--label_frame_rate" in shown
    assert "--save_folder" not in shown and "--frame_rate" not in shown.replace(
        "--label_frame_rate", "")


def test_prepare_musan_out_that_is_a_file(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "musan").mkdir()
    main = cli("N20EMv2/audio_visual/prepare_musan.py")
    assert main(["--musan", str(tmp_path / "musan"), "--out", str(a_file)]) == 1
    assert capsys.readouterr().err.startswith(f"error: --out {a_file}: {a_file} is a file")


def test_duplicate_annotation_keys_are_refused(tmp_path):
    data = small_mir(tmp_path)
    notes = json.dumps(melody(5.0))
    text = (data / "Annotations.json").read_text()
    (data / "Annotations.json").write_text(text[:-1] + f', "1": {notes}}}')
    with pytest.raises(PrepareError) as err:
        prepare_mir_st500(data, tmp_path / "out")
    assert str(err.value).startswith(f"mir_st500: {data / 'Annotations.json'}: the key '1' "
                                     "appears twice")


def test_pitches_in_hz_are_a_problem_per_song(tmp_path, caplog):
    data = small_mir(tmp_path)
    annotations = json.loads((data / "Annotations.json").read_text())
    annotations["2"] = [[on, off, 440.0 * 2 ** ((p - 69) / 12)] for on, off, p in annotations["2"]]
    (data / "Annotations.json").write_text(json.dumps(annotations))
    with pytest.raises(PrepareError, match=r"song '2': invalid notes: .* the pitches look like "
                                           "Hz"):
        prepare_mir_st500(data, tmp_path / "out")
    # Above 127 is no MIDI note either, whatever the median.
    annotations["2"] = [[0.5, 1.0, 60.0], [1.0, 1.5, 60.0], [1.5, 2.0, 200.0]]
    (data / "Annotations.json").write_text(json.dumps(annotations))
    with pytest.raises(PrepareError, match="the pitches look like Hz"):
        prepare_mir_st500(data, tmp_path / "out")
    # --skip_invalid skips that song, with a warning saying why.
    with pytest.raises(PrepareError, match="at least 2 training songs are needed"):
        prepare_mir_st500(data, tmp_path / "out", strict=False)
    assert "look like Hz" in caplog.text


def test_one_training_song_advice_agrees_with_the_check(tmp_path):
    data = make_mir(tmp_path / "MIR", {"1": ("train", 5.0), "7": ("test", 5.0)})
    with pytest.raises(PrepareError) as err:
        prepare_mir_st500(data, tmp_path / "out")
    assert "at least 2 training songs are needed" in str(err.value)
    assert "between 0 and 0" not in str(err.value)
    data = make_mir(tmp_path / "MIR3", {"1": ("train", 5.0), "2": ("train", 5.0),
                                        "7": ("test", 5.0)})
    with pytest.raises(PrepareError, match="choose num_valid between 1 and 1"):
        prepare_mir_st500(data, tmp_path / "out3", num_valid=2)


def write_ssvd_song(folder, name, suffix=".wav"):
    write_wav(folder / f"{name}{suffix}", 4.0)
    rows = [f"{a}\t{b}\t{p}" for a, b, p in melody(4.0)]
    (folder / f"{name}.txt").write_text("\n".join(rows) + "\n")


def test_two_recordings_with_one_song_name(tmp_path, caplog):
    data = tmp_path / "SSVD"
    write_ssvd_song(data, "a")
    write_wav(data / "a.flac", 4.0)  # a.wav and a.flac beside a.txt
    write_ssvd_song(data, "b")
    with pytest.raises(PrepareError) as err:
        prepare_ssvd(data, tmp_path / "out")
    message = str(err.value)
    assert "two recordings map to song name 'root_a'" in message
    assert "1 problem(s)" in message  # not also "a.txt has no audio"
    # `x/c.wav` (named x_c, as another c.wav exists) next to a root `x_c.wav`.
    data2 = tmp_path / "SSVD2"
    write_ssvd_song(data2, "c")
    write_ssvd_song(data2 / "x", "c")
    write_ssvd_song(data2, "x_c")
    write_ssvd_song(data2, "d")
    with pytest.raises(PrepareError, match="two recordings map to song name 'x_c'"):
        prepare_ssvd(data2, tmp_path / "out2")
    csvs = prepare_ssvd(data2, tmp_path / "out3", strict=False)
    assert "two recordings map to song name 'x_c'" in caplog.text
    assert csvs["ssvd"].read_text().count("ssvd_d_") == 1
