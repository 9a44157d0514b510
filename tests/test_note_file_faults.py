"""Faulty or unusual note files at the reading boundary: overlapping / unsorted `onset offset midi`
text, MIDI files with several channels or hanging notes, byte-order marks, repeated JSON keys, a
mistyped --split and absurd times each read right or fail with a message naming the file and the
remedy (`svt-score` exit 2)."""
import json
import warnings

import mido
import numpy as np
import pytest

from svt.cli.score import main as score_main
from svt.notes.formats import (
    NoteFileError,
    NoteFileWarning,
    detect_format,
    read_midi,
    read_note_collection,
    read_notes,
)
from svt.notes.scoring import score_song

MELODY = [[0.5, 1.0, 60.0], [1.0, 1.5, 64.0], [2.0, 2.5, 67.0]]


def quietly(fn, *args, **kwargs):
    """Call fn with every warning turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def score_json(capsys, *argv):
    assert score_main([*map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def score_error(capsys, *argv):
    assert score_main(list(map(str, argv))) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("svt-score: error: ")
    return err[-1][len("svt-score: error: "):]


# ---------------------------------------------------------- 1. onset offset midi: overlap, order

def test_overlapping_onset_offset_notes_read_as_ssvd(tmp_path, capsys):
    ref, est = tmp_path / "r.txt", tmp_path / "e.txt"
    ref.write_text("0.5 1.0 60\n1.0 1.5 64\n2.0 2.5 67\n")
    est.write_text("0.5 1.0 60\n1.0 1.5 64\n2.0 2.5 67\n2.1 2.3 79\n")  # 79 overlaps 67
    assert quietly(detect_format, est) == "ssvd"
    np.testing.assert_allclose(quietly(read_notes, est), MELODY + [[2.1, 2.3, 79.0]])
    result = score_json(capsys, ref, est)
    assert result["songs"]["r"]["COnPOff_recall"] == 1.0
    assert result["songs"]["r"]["COnPOff_precision"] == 0.75


def test_unsorted_onset_offset_rows_read_as_ssvd_and_sorted(tmp_path):
    path = tmp_path / "u.txt"
    path.write_text("2.0\t2.5\t67\r\n0.5\t1.0\t60\r\n1.0\t1.5\t64\r\n")
    assert quietly(detect_format, path) == "ssvd"
    np.testing.assert_allclose(quietly(read_notes, path), MELODY)


def test_unsorted_rows_that_also_read_as_durations_still_warn(tmp_path):
    # Sorted, 0.1 0.5 / 0.7 0.9 fits both readings (see test_score_warnings): said, read as offsets.
    path = tmp_path / "both.txt"
    path.write_text("0.7 0.9 62\n0.1 0.5 60\n")
    with pytest.warns(NoteFileWarning, match="second column holds offsets .* or durations"):
        notes = read_notes(path)
    np.testing.assert_allclose(notes, [[0.1, 0.5, 60], [0.7, 0.9, 62]])


def test_ismir2014_durations_below_the_onsets_stay_durations(tmp_path):
    path = tmp_path / "child.GroundTruth.txt"
    path.write_text("2.0 0.5 67\n0.5 0.5 60\n1.0 0.5 64\n")  # unsorted ISMIR2014
    assert quietly(detect_format, path) == "ismir2014"
    np.testing.assert_allclose(quietly(read_notes, path), MELODY)


# ------------------------------------------------------------------------------------- 2. MIDI

def _midi(path, *tracks, kind=1):
    """Save a MIDI file (100 ticks per beat at 120 bpm: 200 ticks a second) of tracks given as
    lists of (absolute tick, type, channel, note)."""
    mid = mido.MidiFile(type=kind, ticks_per_beat=100)
    for events in tracks:
        track, now = mido.MidiTrack(), 0
        for tick, kind_, channel, note in sorted(events):
            velocity = 80 if kind_ == "note_on" else 0
            track.append(mido.Message(kind_, channel=channel, note=note, velocity=velocity,
                                      time=tick - now))
            now = tick
        mid.tracks.append(track)
    mid.save(path)
    return path


def _notes(channel, *spans):
    """note_on / note_off events of (start tick, end tick, note) spans on a channel."""
    events = []
    for start, end, note in spans:
        events += [(start, "note_on", channel, note), (end, "note_off", channel, note)]
    return events


MELODY_EVENTS = _notes(0, (100, 200, 60), (200, 300, 64), (400, 500, 67))
CHORD_EVENTS = _notes(1, (0, 400, 48), (0, 400, 52), (400, 600, 55))


def test_notes_on_several_channels_of_one_track_are_an_error(tmp_path, capsys):
    path = _midi(tmp_path / "song.mid", MELODY_EVENTS + CHORD_EVENTS, kind=0)
    with pytest.raises(NoteFileError) as error:
        read_midi(path)
    assert str(error.value) == (
        f"{path}: track 0 holds notes on 2 channels (0, 1, counted from 0), e.g. a melody and its "
        "accompaniment; choose the melody's with --midi-channel N (svt-score) or channel=N "
        "(read_midi)")
    np.testing.assert_allclose(quietly(read_midi, path, channel=0), MELODY)
    np.testing.assert_allclose(read_notes(path, midi_channel=1)[:, 2], [48, 52, 55])
    # svt-score: the same message, then the option chooses.
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(MELODY))
    assert score_error(capsys, ref, path) == str(error.value)
    result = score_json(capsys, ref, path, "--midi-channel", "0")
    assert result["songs"]["ref"]["COnPOff_f1"] == 1.0


def test_several_tracks_name_the_svt_score_option(tmp_path, capsys):
    path = _midi(tmp_path / "two.mid", MELODY_EVENTS, _notes(0, (0, 400, 48)))
    with pytest.raises(NoteFileError) as error:
        read_midi(path)
    assert str(error.value) == (
        f"{path}: 2 tracks hold notes (track 0 (channel 0), track 1 (channel 0)); choose the "
        "melody's with --midi-track N (svt-score) or track=N (read_midi), tracks counted from 0")
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(MELODY))
    assert score_error(capsys, ref, path) == str(error.value)
    assert score_json(capsys, ref, path, "--midi-track", "0")["songs"]["ref"]["COnPOff_f1"] == 1.0
    # A track or channel that holds no notes is said, with the ones that do.
    assert score_error(capsys, ref, path, "--midi-track", "5") == (
        f"{path}: no notes on track 5; notes lie on track 0 (channel 0), track 1 (channel 0)")
    # Out-of-range choices are refused by the parser.
    with pytest.raises(SystemExit):
        score_main([str(ref), str(path), "--midi-channel", "16"])
    assert "expected a MIDI channel number (0..15), got '16'" in capsys.readouterr().err


def test_a_note_without_note_off_is_closed_at_the_track_end_with_a_warning(tmp_path, capsys):
    events = MELODY_EVENTS + [(600, "note_on", 0, 72)]
    # The track ends 200 ticks (1 s) after the hanging note starts.
    path = _midi(tmp_path / "cut.mid", events + [(800, "note_off", 0, 30), (800, "note_on", 0, 30)])
    # (note 30 starts at the very end: it cannot be closed, and is said to be dropped)
    with pytest.warns(NoteFileWarning) as record:
        notes = read_midi(path)
    messages = sorted(str(w.message) for w in record)
    assert messages == [
        f"{path}: MIDI note 30 (track 0, channel 0) starting at 4.000 s has no note-off; dropped, "
        "as the track ends there. Check that the file was written completely",
        f"{path}: MIDI note 72 (track 0, channel 0) starting at 3.000 s has no note-off; closed "
        "at the end of the track (4.000 s). Check that the file was written completely",
    ]
    np.testing.assert_allclose(notes, MELODY + [[3.0, 4.0, 72.0]])
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(MELODY))
    assert score_main([str(ref), str(path)]) == 0
    err = capsys.readouterr().err
    assert f"svt-score: warning: {path}: MIDI note 72 (track 0, channel 0) starting at 3.000 s" \
        in err


def test_garbage_midi_gives_a_reason(tmp_path):
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"garbage")
    with pytest.raises(NoteFileError) as error:
        read_notes(garbage)
    assert str(error.value) == (
        f"{garbage}: not a readable MIDI file (it does not start with the MIDI header 'MThd' "
        "(first bytes b'garb'); it is not a standard MIDI file)")
    truncated = tmp_path / "cut.mid"
    truncated.write_bytes(_midi(tmp_path / "whole.mid", MELODY_EVENTS).read_bytes()[:30])
    with pytest.raises(NoteFileError, match=r"cut.mid: not a readable MIDI file \(the file ends in "
                                            r"the middle of a track or header: it is truncated"):
        read_notes(truncated)


# ------------------------------------------------------------------------------ 3. UTF-8 BOM

BOM = "\ufeff"


@pytest.mark.parametrize("name, text", [
    ("a.csv", "onset,offset,pitch\n0.5,1.0,60\n1.0,1.5,64\n2.0,2.5,67\n"),
    ("b.txt", "0.5 1.0 60\n1.0 1.5 64\n2.0 2.5 67\n"),
    ("c.json", json.dumps(MELODY)),
    ("d.notes.Corrected", "0\n0.5 0.5 60 0.1\n1.0 0.5 64 0.1\n2.0 0.5 67 0.1\n"),
])
def test_a_byte_order_mark_is_skipped(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes((BOM + text).encode("utf-8"))
    np.testing.assert_allclose(quietly(read_notes, path), MELODY)


def test_a_dict_file_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "Annotations.json"
    path.write_bytes((BOM + json.dumps({"1": MELODY})).encode("utf-8"))
    np.testing.assert_allclose(read_note_collection(path)["1"], MELODY)


# ----------------------------------------------------------------------- 4. duplicate JSON keys

def test_a_song_named_twice_in_a_dict_file_is_an_error(tmp_path, capsys):
    path = tmp_path / "Annotations.json"
    path.write_text('{"1": [[0.5, 1.0, 60]], "2": [[0.5, 1.0, 62]], "1": [[3.0, 4.0, 70]]}')
    message = (f"{path}: the key '1' appears twice in one JSON object, and only one of the "
               "entries would be read; remove or rename the repeated entry")
    with pytest.raises(NoteFileError) as error:
        read_note_collection(path)
    assert str(error.value) == message
    assert score_error(capsys, path, path) == message


def test_a_repeated_field_in_an_n20emv2_entry_is_an_error(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('{"s1": {"midi": [[0.5, 1.0, 60]], "split": "train", "split": "test"}}')
    with pytest.raises(NoteFileError, match=r"annotations.json: the key 'split' appears twice"):
        read_note_collection(path, split="test")


# -------------------------------------------------------------------------------- 5. --split

def test_a_mistyped_split_names_the_splits(tmp_path, capsys):
    path = tmp_path / "n20.json"
    path.write_text(json.dumps({"s1": {"midi": MELODY, "split": "train"},
                                "s2": {"midi": MELODY, "split": "test"},
                                "s3": {"midi": MELODY, "split": "test"}}))
    message = f"no entry of {path} has split 'tset'; its splits: test, train"
    assert score_error(capsys, path, path, "--split", "tset") == message
    with pytest.raises(NoteFileError) as error:
        read_note_collection(path, split="tset")
    assert str(error.value) == message
    assert list(read_note_collection(path, split="test")) == ["s2", "s3"]
    assert score_json(capsys, path, path, "--split", "test")["mean"]["COnPOff_f1"] == 1.0


def test_a_split_on_entries_without_splits_is_said(tmp_path):
    path = tmp_path / "n20.json"
    path.write_text(json.dumps({"s1": {"midi": MELODY}}))
    with pytest.raises(NoteFileError, match=r"n20.json: no entry carries a \"split\" field, so "
                                            r"split='test' cannot be applied"):
        read_note_collection(path, split="test")


# --------------------------------------------------------------------------- 6. absurd times

def test_times_near_the_float_limit_are_a_read_error(tmp_path, capsys):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps(MELODY))
    big = tmp_path / "big.json"
    big.write_text("[[0.5, 1.0, 60], [1e308, 1.5e308, 60]]")
    message = (f"{big}: notes: note row 1: [1e+308, 1.5e+308, 60.0] has a time beyond 1e+07 s "
               "(about 116 days), which no recording has; note times must be seconds from the "
               "start of the audio: fix or remove the row")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning on the way
        with pytest.raises(NoteFileError) as error:
            read_notes(big)
        assert str(error.value) == message
        assert score_error(capsys, ref, big) == message


def test_onset_plus_duration_overflow_is_a_read_error(tmp_path):
    # ISMIR2014 rows: 1e308 + 1e308 would be infinity.
    path = tmp_path / "child.GroundTruth.txt"
    path.write_text("0.5 0.5 60\n1e308 1e308 62\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NoteFileError) as error:
            read_notes(path, "ismir2014")
    assert str(error.value).startswith(
        f"{path}: line 2: [1e+308, 1e+308, 62.0] has a time or duration beyond 1e+07 s")


def test_scoring_in_memory_notes_with_absurd_times_is_a_value_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"song \(estimate\): note row 0 \[1e\+300, 2e\+300, "
                                             r"60.0\] has a time beyond 1e\+07 s"):
            score_song(MELODY, [[1e300, 2e300, 60]])
    # Long but plausible times still score.
    assert score_song([[9e6, 9e6 + 1, 60]], [[9e6, 9e6 + 1, 60]])["COnPOff_f1"] == 1.0
