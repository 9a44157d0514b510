"""Note files that read but look wrong: units, milliseconds and ambiguous text formats warn, naming
the file and the remedy; `svt-score` prints the warnings on stderr and still scores (exit 0)."""
import json
import warnings

import numpy as np
import pytest
from mir_eval.util import hz_to_midi, midi_to_hz

from svt.cli.score import main as score_main
from svt.notes.formats import NoteFileWarning, detect_format, read_notes, write_notes_midi


def bass_line(n=40, seed=0):
    """A bass melody E2..G3 (MIDI 40..55, 82..196 Hz), onsets within 20 s."""
    rng = np.random.default_rng(seed)
    onsets = np.round(np.arange(n) * 0.45 + rng.uniform(0, 0.05, n), 3)
    offsets = np.round(onsets + rng.uniform(0.15, 0.4, n), 3)
    # A walking bass mostly E2..C3 with leaps up to G3: median ~117 Hz.
    pattern = [40.0, 43, 45, 47, 48, 45, 43, 52, 55, 47]
    return onsets, offsets, np.tile(pattern, n // len(pattern) + 1)[:n]


def write_columns(path, a, b, c, fmt="{:.6f}"):
    path.write_text("".join(f"{x:.3f}\t{y:.3f}\t{fmt.format(z)}\n" for x, y, z in zip(a, b, c)))
    return path


def no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


@pytest.fixture
def bass_hz_file(tmp_path):
    onsets, offsets, midi = bass_line()
    path = write_columns(tmp_path / "bass.txt", onsets, offsets, midi_to_hz(midi))
    hz = np.loadtxt(path)[:, 2]
    # The case the median rule got wrong: a Hz column whose median is a valid MIDI number.
    assert 82 <= hz.min() and hz.max() <= 200 and np.median(hz) <= 127.5
    return path, hz


def test_bass_line_in_hz_is_read_as_hz_with_an_ambiguity_warning(bass_hz_file):
    path, hz = bass_hz_file
    with pytest.warns(NoteFileWarning, match="cannot tell for sure") as record:
        notes = read_notes(path)
    message = str(record[0].message)
    assert str(path) in message and "read it as Hz" in message
    assert "--format mirex" in message and "--format ssvd" in message
    assert len(record) == 1
    np.testing.assert_allclose(np.sort(notes[:, 2]), np.sort(hz_to_midi(hz)), rtol=0, atol=1e-9)
    # Told explicitly, the same notes and no warning.
    forced = no_warnings(read_notes, path, "mirex")
    np.testing.assert_array_equal(forced, notes)


@pytest.mark.parametrize("fmt", ["ismir2014", "ssvd"])
def test_hz_read_as_midi_warns_without_detection_warning(bass_hz_file, fmt):
    path, _ = bass_hz_file
    with pytest.warns(NoteFileWarning) as record:
        read_notes(path, fmt)
    messages = [str(w.message) for w in record]
    assert not any("cannot tell" in m for m in messages)
    hz_warnings = [m for m in messages if "look like frequencies in Hz" in m]
    assert len(hz_warnings) == 1
    assert str(path) in hz_warnings[0] and "--format mirex" in hz_warnings[0]


def test_text_files_with_hz_in_a_midi_column_warn(tmp_path):
    # ISMIR2014 layout (onset duration pitch) and SSVD layout (onset offset pitch), pitch in Hz.
    ismir = tmp_path / "child.GroundTruth.txt"
    ismir.write_text("0.5 0.5 261.63\n1.25 0.75 293.66\n3.0 0.75 196.0\n")
    with pytest.warns(NoteFileWarning, match=r"child.GroundTruth.txt: .*median is 261.6.*Hz"):
        read_notes(ismir, "ismir2014")
    ssvd = tmp_path / "1011.txt"
    ssvd.write_text("0.13\t0.25\t440.0\r\n0.35\t0.64\t392.0\r\n0.73\t0.97\t349.2\r\n")
    with pytest.warns(NoteFileWarning, match=r"1011.txt: .*100% of the values above 127"):
        read_notes(ssvd, "ssvd")


def test_json_and_csv_with_hz_pitches_warn_with_the_conversion(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([[0.5, 1.0, 261.63], [1.25, 2.0, 293.66]]))
    with pytest.warns(NoteFileWarning, match=r"a.json: notes: .*69 \+ 12 \* log2") as record:
        read_notes(tmp_path / "a.json")
    assert "--format mirex" not in str(record[0].message)  # no text format to switch to
    (tmp_path / "b.csv").write_text("onset,offset,pitch\n0.5,1.0,440\n1.25,2.0,392\n")
    with pytest.warns(NoteFileWarning, match="b.csv: the pitch column is read as MIDI"):
        read_notes(tmp_path / "b.csv")


def test_midi_numbers_forced_as_mirex_warn(tmp_path):
    rng = np.random.default_rng(1)
    onsets = np.arange(30) * 0.5
    path = write_columns(tmp_path / "m.txt", onsets, onsets + 0.3, rng.integers(40, 81, 30),
                         fmt="{:d}")
    assert no_warnings(detect_format, path) == "ssvd"  # detected: MIDI, clear, no warning
    with pytest.warns(NoteFileWarning, match=r"m.txt: the third column is read as frequencies "
                                             r"in Hz.*look like MIDI note numbers.*--format ssvd"):
        read_notes(path, "mirex")


def test_millisecond_times_warn(tmp_path):
    path = tmp_path / "ms.txt"
    path.write_text("130\t250\t51.06\n350\t640\t47.79\n730\t970\t48.49\n")
    with pytest.warns(NoteFileWarning, match=r"ms.txt: the note times look like milliseconds "
                                             r"\(the median note lasts 240 s\).*divide .* by 1000"):
        read_notes(path)
    # Short notes at whole-number times in the thousands: milliseconds too.
    (tmp_path / "ms.json").write_text(json.dumps([[1000, 1012, 60], [1020, 1031, 62],
                                                  [1040, 1049, 64]]))
    with pytest.warns(NoteFileWarning, match=r"ms.json: notes: .*whole numbers .* reach 1040 s"):
        read_notes(tmp_path / "ms.json")


def test_clean_files_warn_nothing(tmp_path):
    notes = np.array([[0.5, 1.0, 60.0], [1.25, 2.0, 62.0], [3.0, 3.75, 55.0]])
    (tmp_path / "a.txt").write_text("0.5\t1.0\t261.625565\n1.25\t2.0\t293.664768\n"
                                    "3.0\t3.75\t196.0\n")
    (tmp_path / "b.txt").write_text("0.5 0.5 60\n1.25 0.75 62\n3.0 0.75 55\n")  # ISMIR2014
    (tmp_path / "c.txt").write_text("0.13\t0.25\t51.06\r\n0.35\t0.64\t47.79\r\n"
                                    "0.73\t0.97\t48.49\r\n")
    (tmp_path / "d.json").write_text(json.dumps(notes.tolist()))
    (tmp_path / "e.csv").write_text("onset,offset,pitch\n0.5,1.0,60\n1.25,2.0,62\n")
    (tmp_path / "f.notes.Corrected").write_text("-12.5\n0.5 0.5 59.87 0.02\n1.25 0.75 62.1 0.03\n")
    write_notes_midi(tmp_path / "g.mid", notes)
    # A high (soprano) line in MIDI and one long note at whole seconds: still nothing to say.
    (tmp_path / "h.txt").write_text("10 11 72\n12 13.5 76\n14 15 81\n")
    (tmp_path / "i.json").write_text(json.dumps([[0, 12, 60]]))
    expected = {"a.txt": "mirex", "b.txt": "ismir2014", "c.txt": "ssvd", "h.txt": "ssvd"}
    for path in sorted(tmp_path.iterdir()):
        if path.name in expected:
            assert no_warnings(detect_format, path) == expected[path.name]
        no_warnings(read_notes, path)


def test_svt_score_prints_each_warning_once_and_exits_0(bass_hz_file, tmp_path, capsys):
    path, hz = bass_hz_file
    est = write_columns(tmp_path / "est.txt", *np.loadtxt(path).T)
    assert score_main([str(path), str(est), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["songs"]["bass"]["COnPOff_f1"] == 1.0  # read as Hz both sides
    lines = [line for line in captured.err.splitlines() if line.startswith("svt-score: warning: ")]
    assert len(lines) == 2  # once per file, although detection and reading both look at it
    assert any(str(path) in line and "cannot tell" in line for line in lines)
    assert any(str(est) in line and "cannot tell" in line for line in lines)
    # With --format the user has decided: no warning at all.
    assert score_main([str(path), str(est), "--format", "mirex"]) == 0
    assert capsys.readouterr().err == ""


def test_svt_score_warns_about_a_folder_of_millisecond_files(tmp_path, capsys):
    (tmp_path / "ref").mkdir(), (tmp_path / "est").mkdir()
    (tmp_path / "ref" / "s.json").write_text(json.dumps([[0.13, 0.25, 51], [0.35, 0.64, 48]]))
    (tmp_path / "est" / "s.json").write_text(json.dumps([[130, 250, 51], [350, 640, 48]]))
    assert score_main([str(tmp_path / "ref"), str(tmp_path / "est")]) == 0
    err = capsys.readouterr().err
    assert f"svt-score: warning: {tmp_path / 'est' / 's.json'}: notes: the note times look like " \
           "milliseconds" in err
    assert str(tmp_path / "ref") not in err


def test_svt_score_prints_warnings_before_an_error(tmp_path, capsys):
    # A millisecond reference against a broken estimate: the error stops scoring (exit 2), and the
    # warning about the reference still reaches the user, first.
    (tmp_path / "ref.json").write_text(json.dumps([[130, 250, 51], [350, 640, 48]]))
    (tmp_path / "est.json").write_text(json.dumps([[0.1, 0.0, 51]]))
    assert score_main([str(tmp_path / "ref.json"), str(tmp_path / "est.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"svt-score: warning: {tmp_path / 'ref.json'}: notes: the note times")
    assert err[1].startswith("svt-score: error: ") and "offset <= onset" in err[1]


def test_offsets_or_durations_guess_warns_only_when_both_readings_fit(tmp_path):
    """`0.1 0.5 60 / 0.7 0.9 62` is SSVD notes [0.1, 0.5], [0.7, 0.9] or ISMIR2014 notes
    [0.1, 0.6], [0.7, 1.6]: both follow one another, so the guess is said; a real SSVD file, whose
    offsets read as durations would overlap the next notes, is read without a word."""
    both = tmp_path / "both.txt"
    both.write_text("0.1 0.5 60\n0.7 0.9 62\n")
    with pytest.warns(NoteFileWarning, match="second column holds offsets .* or durations"):
        notes = read_notes(both)
    np.testing.assert_allclose(notes, [[0.1, 0.5, 60], [0.7, 0.9, 62]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(read_notes(both, "ismir2014"), [[0.1, 0.6, 60], [0.7, 1.6, 62]])
        ssvd = tmp_path / "ssvd.txt"
        ssvd.write_text("0.50\t1.00\t60.3\r\n1.20\t1.80\t62.1\r\n2.00\t2.40\t64.0\r\n")
        assert detect_format(ssvd) == "ssvd"
