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
