import json

import mido
import numpy as np
import pytest

from svt.notes.formats import (
    NoteFileError,
    detect_format,
    read_note_collection,
    read_note_folder,
    read_notes,
    song_id,
    write_notes_csv,
    write_notes_json,
    write_notes_midi,
)

NOTES = np.array([[0.5, 1.0, 60.0], [1.25, 2.0, 62.0], [3.0, 3.75, 55.0]])


def test_json_list_and_dict_formats(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(NOTES[::-1].tolist()))  # unsorted on disk
    np.testing.assert_allclose(read_notes(tmp_path / "a.json"), NOTES)
    (tmp_path / "Annotations.json").write_text(json.dumps({"1": NOTES.tolist(), "2": [[0, 1, 70]]}))
    songs = read_note_collection(tmp_path / "Annotations.json")
    assert list(songs) == ["1", "2"]
    np.testing.assert_allclose(songs["1"], NOTES)
    with pytest.raises(NoteFileError, match="holds several songs"):
        read_notes(tmp_path / "Annotations.json")


def test_n20emv2_annotations_with_split(tmp_path):
    ann = {"s1": {"midi": NOTES.tolist(), "split": "train", "lyrics": "x"},
           "s2": {"midi": [[0, 1, 70]], "split": "test"}}
    (tmp_path / "annotations.json").write_text(json.dumps(ann))
    assert list(read_note_collection(tmp_path / "annotations.json")) == ["s1", "s2"]
    assert list(read_note_collection(tmp_path / "annotations.json", split="test")) == ["s2"]
    (tmp_path / "broken.json").write_text(json.dumps({"s1": {"notes": []}}))
    with pytest.raises(NoteFileError, match="broken.json: entry 's1' has no \"midi\""):
        read_note_collection(tmp_path / "broken.json")


def test_mirex_text_in_hz(tmp_path):
    text = "# comment\n0.5\t1.0\t261.6255653\n1.25,2.0,293.6647679\n\n3.0 3.75 195.997718\n"
    (tmp_path / "x.txt").write_text(text)
    assert detect_format(tmp_path / "x.txt") == "mirex"
    np.testing.assert_allclose(read_notes(tmp_path / "x.txt"), NOTES, atol=1e-6)


def test_ismir2014_onset_duration_midi(tmp_path):
    (tmp_path / "child1.GroundTruth.txt").write_text("0.5 0.5 60\n1.25 0.75 62\n3.0 0.75 55\n")
    assert detect_format(tmp_path / "child1.GroundTruth.txt") == "ismir2014"
    assert song_id(tmp_path / "child1.GroundTruth.txt") == "child1"
    np.testing.assert_allclose(read_notes(tmp_path / "child1.GroundTruth.txt"), NOTES)


def test_tonas_notes_corrected(tmp_path):
    path = tmp_path / "01-D_AMairena.notes.Corrected"
    path.write_text("-12.5\n0.5 0.5 59.87 0.02\n1.25 0.75 62.1 0.03\n3.0 0.75 55.0 0.01\n")
    assert detect_format(path) == "tonas" and song_id(path) == "01-D_AMairena"
    notes = read_notes(path)
    np.testing.assert_allclose(notes, [[0.5, 1.0, 59.87], [1.25, 2.0, 62.1], [3.0, 3.75, 55.0]])
    path.write_text("tuning\n0.5 0.5 59.87 0.02\n")
    with pytest.raises(NoteFileError, match="line 1: expected the tuning deviation"):
        read_notes(path)
    # Without its tuning line the first note must not vanish as the "tuning": a clear error.
    path.write_text("0.5 0.5 59.87 0.02\n1.25 0.75 62.1 0.03\n")
    with pytest.raises(NoteFileError, match="one number alone on the line.*add the tuning line"):
        read_notes(path)


def test_csv_with_header(tmp_path):
    (tmp_path / "n.csv").write_text("pitch,onset,offset,velocity\n60,0.5,1.0,90\n62,1.25,2,80\n"
                                    "55,3,3.75,70\n")
    np.testing.assert_allclose(read_notes(tmp_path / "n.csv"), NOTES)
    (tmp_path / "bad.csv").write_text("start,end,hz\n0,1,440\n")
    with pytest.raises(NoteFileError, match=r"bad.csv: line 1: no pitch \(MIDI\) column"):
        read_notes(tmp_path / "bad.csv")
    (tmp_path / "bad2.csv").write_text("onset,offset,pitch\n0,1,60\n0,x,60\n")
    with pytest.raises(NoteFileError, match="bad2.csv: line 3"):
        read_notes(tmp_path / "bad2.csv")


def test_text_errors_name_file_and_line(tmp_path):
    (tmp_path / "e.txt").write_text("0 1 440\n2 1 440\n")
    with pytest.raises(NoteFileError, match=r"e.txt: line 2: .* offset <= onset"):
        read_notes(tmp_path / "e.txt")
    (tmp_path / "f.txt").write_text("0 1 440\n1 two 440\n")
    with pytest.raises(NoteFileError, match="f.txt: line 2: expected numbers"):
        read_notes(tmp_path / "f.txt")
    (tmp_path / "g.json").write_text("[[0, 1, 60], [1, 2]]")
    with pytest.raises(NoteFileError, match=r"g.json: notes: note 1 is \[1, 2\]"):
        read_notes(tmp_path / "g.json")
    (tmp_path / "h.json").write_text("[[0, 1, 60],")
    with pytest.raises(NoteFileError, match="h.json: line 1: invalid JSON"):
        read_notes(tmp_path / "h.json")


def test_midi_round_trip(tmp_path):
    write_notes_midi(tmp_path / "n.mid", NOTES)
    np.testing.assert_allclose(read_notes(tmp_path / "n.mid"), NOTES, atol=1e-3)
    # Mido (an independent reader) sees the same timing through its own tempo handling.
    ons = []
    now = 0.0
    for msg in mido.MidiFile(tmp_path / "n.mid"):
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons.append((round(now, 3), msg.note))
    assert ons == [(0.5, 60), (1.25, 62), (3.0, 55)]


def test_midi_with_tempo_change_and_two_tracks(tmp_path):
    mid = mido.MidiFile(type=1, ticks_per_beat=100)
    tempo_track, melody, drums = mido.MidiTrack(), mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [tempo_track, melody, drums]
    # 0.5 s per beat for the first 200 ticks (1 s), then 0.25 s per beat.
    tempo_track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    tempo_track.append(mido.MetaMessage("set_tempo", tempo=250000, time=200))
    melody.append(mido.Message("note_on", note=64, velocity=80, time=100))  # 0.5 s
    melody.append(mido.Message("note_on", note=64, velocity=0, time=200))  # tick 300: 1.25 s
    drums.append(mido.Message("note_on", channel=9, note=36, velocity=80, time=0))
    drums.append(mido.Message("note_off", channel=9, note=36, velocity=0, time=10))
    mid.save(tmp_path / "t.mid")
    np.testing.assert_allclose(read_notes(tmp_path / "t.mid"), [[0.5, 1.25, 64]])


def test_folder_reading_prefers_json(tmp_path):
    write_notes_json(tmp_path / "s.json", NOTES)
    write_notes_csv(tmp_path / "s.csv", NOTES[:1])
    write_notes_midi(tmp_path / "s.mid", NOTES[:2])
    (tmp_path / "s.png").write_bytes(b"not notes")
    songs = read_note_folder(tmp_path)
    assert list(songs) == ["s"]
    np.testing.assert_allclose(songs["s"], NOTES)
    np.testing.assert_allclose(read_notes(tmp_path / "s.csv"), NOTES[:1])


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat
    write_notes_json(tmp_path / "p.json", NOTES)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "p.json").stat().st_mode) == 0o666 & ~umask


SSVD_TEXT = "0.1300\t0.2500\t51.06\r\n0.3500\t0.6400\t47.79\r\n0.7300\t0.9700\t48.49\r\n"


def test_ssvd_notes_crlf_fractional_midi(tmp_path):
    path = tmp_path / "1011.txt"
    path.write_bytes(SSVD_TEXT.encode())
    assert detect_format(path) == "ssvd"
    np.testing.assert_allclose(read_notes(path), [[0.13, 0.25, 51.06], [0.35, 0.64, 47.79],
                                                  [0.73, 0.97, 48.49]])
    # The release's wart: a spurious first note near MIDI 119 is read, not a crash.
    path.write_bytes(("0.0100\t0.0300\t119.20\r\n" + SSVD_TEXT).encode())
    assert read_notes(path).shape == (4, 3)


def test_ssvd_and_ismir2014_told_apart_by_the_second_column(tmp_path):
    # ISMIR2014: onset, *duration*, midi: durations fall below the onsets after the first note.
    (tmp_path / "a.txt").write_text("0.5 0.4 60\n1.0 0.5 62\n2.0 0.3 64\n")
    assert detect_format(tmp_path / "a.txt") == "ismir2014"
    np.testing.assert_allclose(read_notes(tmp_path / "a.txt")[:, 1], [0.9, 1.5, 2.3])
    (tmp_path / "b.txt").write_text("0.5 0.9 60\n1.0 1.5 62\n2.0 2.3 64\n")
    assert detect_format(tmp_path / "b.txt") == "ssvd"
    np.testing.assert_allclose(read_notes(tmp_path / "b.txt")[:, 1], [0.9, 1.5, 2.3])
    np.testing.assert_allclose(read_notes(tmp_path / "b.txt", "ssvd"),
                               read_notes(tmp_path / "a.txt"))


def test_midi_fractional_pitch_as_pitch_bend(tmp_path):
    notes = np.array([[0.1, 0.5, 60.3], [0.5, 0.9, 61.0], [1.0, 1.5, 58.77]])
    write_notes_midi(tmp_path / "f.mid", notes)
    messages = [m for m in mido.MidiFile(tmp_path / "f.mid").tracks[0] if m.type == "pitchwheel"]
    # 0.3 semitone of a +-2 range = 0.15 * 8192; back to 0 for 61; -0.23 -> -942.
    assert [m.pitch for m in messages] == [1229, 0, -942]
    np.testing.assert_allclose(read_notes(tmp_path / "f.mid"), notes, atol=3e-4)
    write_notes_midi(tmp_path / "i.mid", np.round(notes))
    assert not any(m.type == "pitchwheel" for m in mido.MidiFile(tmp_path / "i.mid").tracks[0])


def test_svt_score_reads_an_ssvd_folder(tmp_path, capsys):
    import mir_eval

    from svt.cli.score import main as score_main

    refs, ests = tmp_path / "ssvd", tmp_path / "notes"
    refs.mkdir()
    ests.mkdir()
    (refs / "1011.txt").write_bytes(SSVD_TEXT.encode())
    (refs / "1011.flac").write_bytes(b"")  # audio beside the notes is ignored
    estimate = np.array([[0.14, 0.26, 51.2], [0.36, 0.50, 47.0], [0.74, 0.96, 48.3]])
    write_notes_json(ests / "1011.json", estimate)
    assert score_main([str(refs), str(ests), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    ref = read_notes(refs / "1011.txt")
    expected = mir_eval.transcription.precision_recall_f1_overlap(
        ref[:, :2], mir_eval.util.midi_to_hz(ref[:, 2]), estimate[:, :2],
        mir_eval.util.midi_to_hz(estimate[:, 2]), offset_ratio=None)
    assert result["songs"]["1011"]["COnP_f1"] == pytest.approx(expected[2])
    assert score_main([str(refs / "1011.txt"), str(ests / "1011.json"), "--format", "ssvd"]) == 2
