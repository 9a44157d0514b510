"""Data preparation (svt.datasets, svt.audio) and the recipes' prepare.py command lines."""

import csv
import importlib.util
import json
import logging
import os
import runpy
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import svt.datasets.songs as songs_module
from svt.audio import AudioError, audio_info, read_audio, to_16k_mono, write_audio
from svt.data.utterances import (
    CSV_COLUMNS,
    PrepareError,
    merge_csvs,
    split_utterances,
    utterance_slice,
)
from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.mir_st500 import holdout_split, prepare_mir_st500
from svt.datasets.n20emv2 import prepare_n20emv2_audio
from svt.datasets.separation import separate_vocals
from svt.datasets.tonas import prepare_tonas
from svt.notes.labels import notes_to_frames, num_label_frames

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


# ---------------------------------------------------------------------------- helpers

def tone(duration, rate=SR, channels=1, freq=440.0, amp=0.5):
    t = np.arange(int(round(duration * rate))) / rate
    wav = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wav if channels == 1 else np.stack([wav] * channels, axis=1)


def write_wav(path, duration, rate=SR, channels=1, freq=440.0):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(duration, rate, channels, freq), rate, subtype="PCM_16")
    return path


def melody(duration):
    """A few notes inside `duration` seconds (one every second)."""
    return [[t + 0.2, t + 0.7, 60 + (i % 5)] for i, t in enumerate(np.arange(0, duration - 0.7))]


def make_mir(root, songs):
    """MIR-ST500 layout; `songs = {id: (split, duration[, notes])}`."""
    root = Path(root)
    annotations = {}
    for song, (split, duration, *notes) in songs.items():
        write_wav(root / "wav16kHz" / split / song / "vocals.wav", duration)
        annotations[song] = notes[0] if notes else melody(duration)
    (root / "Annotations.json").write_text(json.dumps(annotations))
    return root


def read_rows(path):
    text = Path(path).read_text()
    assert "\r" not in text
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_labels(row, frame_rate=49.8):
    """The saved labels equal notes_to_frames of the saved notes over the audio's label frames."""
    notes = json.loads(Path(row["song_anno"]).read_text())
    num_frames = num_label_frames(audio_info(row["wav"])[1], SR, frame_rate)
    expected = notes_to_frames(notes, num_frames, frame_rate)
    np.testing.assert_array_equal(np.load(row["frame_anno"]), expected)


def tree(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns)
                  for p in Path(folder).rglob("*"))


def cli(relative):
    return runpy.run_path(str(ROOT / relative), run_name="prepare_cli")["main"]


# ---------------------------------------------------------------------------- utterances

@pytest.mark.parametrize("duration, expected", [
    (2.4, [(1, 1, 0, 2.4)]),                          # < D/2: one utterance (original: dropped)
    (2.5, [(1, 1, 0, 2.5)]),                          # round(0.5) = 0 -> fixed to one
    (7.5, [(1, 2, 0, 5), (2, 2, 5, 2.5)]),            # round(1.5) = 2: last is D/2
    (10.0, [(1, 2, 0, 5), (2, 2, 5, 5)]),
    (12.5, [(1, 2, 0, 5), (2, 2, 5, 7.5)]),           # round(2.5) = 2 (banker's): last is 1.5 D
    (17.5, [(1, 4, 0, 5), (2, 4, 5, 5), (3, 4, 10, 5), (4, 4, 15, 2.5)]),  # round(3.5) = 4
    (0.0, []),
])
def test_split_utterances_hand_computed(duration, expected):
    got = split_utterances(duration, 5)
    assert [(k, n) for k, n, _, _ in got] == [(k, n) for k, n, _, _ in expected]
    for (_, _, start, length), (_, _, start_e, length_e) in zip(got, expected):
        assert start == pytest.approx(start_e) and length == pytest.approx(length_e)


def test_utterance_slice():
    # 5-s utterances: 249 label frames at 49.8 fps, 250 at 50 fps, 80000 samples at 16 kHz.
    assert utterance_slice(1, 3, 49.8, 5, 620) == (0, 249)
    assert utterance_slice(2, 3, 49.8, 5, 620) == (249, 498)
    assert utterance_slice(3, 3, 49.8, 5, 620) == (498, 620)  # the last one runs to the end
    assert utterance_slice(2, 3, 50, 5, 700) == (250, 500)
    assert utterance_slice(2, 3, SR, 5, 300000) == (80000, 160000)
    assert utterance_slice(1, 1, SR, 5, 1234) == (0, 1234)
    assert all(utterance_slice(k, 201, 49.8, 5, 10**6)[0] == 249 * (k - 1) for k in range(1, 201))
    with pytest.raises(ValueError, match="utter_id"):
        utterance_slice(4, 3, 49.8, 5, 620)


# ---------------------------------------------------------------------------- audio

def test_audio_io(tmp_path):
    path = write_wav(tmp_path / "a.wav", 1.0)
    assert audio_info(path) == (SR, SR, 1)
    full = read_audio(path)
    assert full.dtype == np.float32 and full.shape == (SR,)
    np.testing.assert_array_equal(read_audio(path, start=1000, stop=3000), full[1000:3000])
    out = tmp_path / "sub" / "b.wav"
    write_audio(out, full * 3, SR)  # clipped, not wrapped
    assert sf.info(str(out)).subtype == "PCM_16" and read_audio(out).max() == pytest.approx(1, 1e-3)
    assert [p.name for p in out.parent.iterdir()] == ["b.wav"]  # no temporary file left

    with pytest.raises(AudioError, match="missing.wav: no such audio file"):
        audio_info(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match=r"junk.wav: cannot read .*Convert it"):
        read_audio(tmp_path / "junk.wav")


def test_stereo_44k_is_converted_to_16k_mono(tmp_path):
    src = write_wav(tmp_path / "in.wav", 3.0, rate=44100, channels=2)
    wav = read_audio(src)
    assert wav.shape == (48000,)
    dst = to_16k_mono(src, tmp_path / "out.wav")
    assert audio_info(dst) == (SR, 48000, 1)
    spectrum = np.abs(np.fft.rfft(read_audio(dst)))
    assert np.argmax(spectrum) * SR / 48000 == pytest.approx(440, abs=2)
    assert np.abs(read_audio(dst)[SR:2 * SR]).max() == pytest.approx(0.5, abs=0.02)


# ---------------------------------------------------------------------------- MIR-ST500

MIR_SONGS = {"1": ("train", 7.5), "2": ("train", 12.5), "3": ("train", 2.4), "4": ("train", 10.0),
             "5": ("train", 6.0), "10": ("train", 5.5), "11": ("test", 17.5), "12": ("test", 4.0)}


def test_mir_st500_end_to_end(tmp_path):
    data = make_mir(tmp_path / "MIR-ST500", MIR_SONGS)
    before = tree(data)
    save = tmp_path / "prep"
    csvs = prepare_mir_st500(data, save, num_valid=2, progress=False)
    assert tree(data) == before  # nothing written into the dataset
    assert set(csvs) == {"mir_st500_train", "mir_st500_valid", "mir_st500_test"}
    assert all(p == save.resolve() / "dur_5s" / f"{name}.csv" for name, p in csvs.items())

    rows = {name: read_rows(p) for name, p in csvs.items()}
    with open(csvs["mir_st500_train"]) as f:
        assert f.readline().strip().split(",") == CSV_COLUMNS
    songs = {name: sorted({r["song"] for r in table}, key=int) for name, table in rows.items()}
    train_ids = ["1", "2", "3", "4", "5", "10"]
    expected_train, expected_valid = holdout_split(train_ids, 2, 1986)
    assert songs["mir_st500_valid"] == expected_valid and len(expected_valid) == 2
    assert songs["mir_st500_train"] == expected_train
    assert not set(expected_train) & set(expected_valid)
    assert songs["mir_st500_test"] == ["11", "12"]

    all_rows = [r for table in rows.values() for r in table]
    by_song = {}
    for r in all_rows:
        by_song.setdefault(r["song"], []).append(r)
        assert r["ID"] == f"mir_st500_{r['song']}_{r['utter_id']}" and r["dataset"] == "mir_st500"
        assert all(os.path.isabs(r[c]) for c in ("wav", "frame_anno", "song_anno"))
        assert r["wav"] == str(data.resolve() / "wav16kHz" / MIR_SONGS[r["song"]][0] / r["song"]
                               / "vocals.wav")  # 16 kHz mono: used in place
        assert r["frame_anno"] == str(save.resolve() / "labels" / "mir_st500" / f"{r['song']}.npy")
    durations = {song: [float(r["duration"]) for r in rs] for song, rs in by_song.items()}
    assert durations == {"1": [5, 2.5], "2": [5, 7.5], "3": [2.4], "4": [5, 5], "5": [6.0],
                         "10": [5.5], "11": [5, 5, 5, 2.5], "12": [4.0]}
    assert [r["utter_id"] + "/" + r["utter_num"] for r in by_song["11"]] == \
        ["1/4", "2/4", "3/4", "4/4"]
    for song, rs in by_song.items():
        check_labels(rs[0])
        assert json.loads(Path(rs[0]["song_anno"]).read_text()) == melody(MIR_SONGS[song][1])

    # The hold-out depends only on the song names and the seed.
    again = prepare_mir_st500(data, tmp_path / "prep2", num_valid=2, progress=False)
    assert {r["song"] for r in read_rows(again["mir_st500_valid"])} == set(expected_valid)
    names = [str(i) for i in range(1, 401)]
    train, valid = holdout_split(list(reversed(names)), 20, 1986)
    assert (train, valid) == holdout_split(names, 20, 1986)
    assert valid != holdout_split(names, 20, 7)[1] and len(train) + len(valid) == 400
    # Default: 5 % of the training songs, at least one.
    default = prepare_mir_st500(data, tmp_path / "prep3", progress=False)
    assert len({r["song"] for r in read_rows(default["mir_st500_valid"])}) == 1


def test_mir_st500_converts_stereo_44k(tmp_path, caplog):
    data = make_mir(tmp_path / "MIR", {"1": ("train", 6.0), "2": ("train", 5.0),
                                       "3": ("test", 5.0)})
    write_wav(data / "wav16kHz/train/1/vocals.wav", 6.0, rate=44100, channels=2)
    with caplog.at_level(logging.INFO, logger="svt"):
        csvs = prepare_mir_st500(data, tmp_path / "prep", num_valid=1, valid_seed=3,
                                 progress=False)
    assert "to 16 kHz mono" in caplog.text
    row = next(r for name in csvs for r in read_rows(csvs[name]) if r["song"] == "1")
    assert row["wav"] == str((tmp_path / "prep/audio16k/mir_st500/1.wav").resolve())
    assert audio_info(row["wav"]) == (SR, 6 * SR, 1)
    check_labels(row)


def test_resumable(tmp_path, caplog, monkeypatch):
    data = make_mir(tmp_path / "MIR", {"1": ("train", 6.0), "2": ("train", 5.0),
                                       "3": ("test", 5.0)})
    write_wav(data / "wav16kHz/train/2/vocals.wav", 5.0, rate=22050)
    save = tmp_path / "prep"
    written = []  # (kind, file name) of every label file and converted audio written
    real_save, real_convert = songs_module.save_labels, songs_module.to_16k_mono
    monkeypatch.setattr(songs_module, "save_labels",
                        lambda path, labels: (written.append(Path(path).name),
                                              real_save(path, labels)))
    monkeypatch.setattr(songs_module, "to_16k_mono",
                        lambda src, dst: (written.append(Path(dst).name), real_convert(src, dst)))

    def run(**kwargs):
        written.clear()
        return prepare_mir_st500(data, save, num_valid=1, progress=False, **kwargs)

    run()
    assert sorted(written) == ["1.npy", "2.npy", "2.wav", "3.npy"]
    with caplog.at_level(logging.INFO, logger="svt"):
        run()
    assert "3 up to date" in caplog.text and written == []

    (save / "labels/mir_st500/3.npy").unlink()  # as if interrupted before song 3
    run()
    assert written == ["3.npy"]
    run(overwrite=True)
    assert sorted(written) == ["1.npy", "2.npy", "2.wav", "3.npy"]

    csvs = run(label_frame_rate=50)  # a new frame rate relabels every song, the audio stays
    assert sorted(written) == ["1.npy", "2.npy", "3.npy"]
    for name in csvs:
        for row in read_rows(csvs[name]):
            check_labels(row, frame_rate=50)
    run(label_frame_rate=50)
    assert written == []

    def touch(path):  # make `path` newer than every output, which are newer than other inputs
        now = time.time()
        for p in list(data.rglob("*")) + list(save.rglob("*")):
            os.utime(p, (now - 1000, now - 1000) if p.is_relative_to(data) else (now - 500,) * 2)
        os.utime(path, (now - 100, now - 100))

    # Freshness comes from content, not times: a newer file with the same content changes
    # nothing; changed notes redo that song only, changed audio that song's audio and labels.
    touch(data / "Annotations.json")
    touch(data / "wav16kHz/train/2/vocals.wav")
    run(label_frame_rate=50)
    assert written == []
    annotations = json.loads((data / "Annotations.json").read_text())
    annotations["3"][0][2] += 1
    (data / "Annotations.json").write_text(json.dumps(annotations))
    run(label_frame_rate=50)
    assert written == ["3.npy"]
    write_wav(data / "wav16kHz/train/2/vocals.wav", 5.0, rate=22050, freq=330.0)
    run(label_frame_rate=50)
    assert sorted(written) == ["2.npy", "2.wav"]


# ---------------------------------------------------------------------------- malformed inputs

def good_mir(tmp_path):
    return make_mir(tmp_path / "MIR", {"1": ("train", 5.0), "2": ("train", 5.0),
                                       "7": ("test", 5.0)})


def edit_annotations(data, song, notes):
    annotations = json.loads((data / "Annotations.json").read_text())
    if notes is None:
        del annotations[song]
    else:
        annotations[song] = notes
    (data / "Annotations.json").write_text(json.dumps(annotations))


def break_missing_vocals(data):
    (data / "wav16kHz/test/7/vocals.wav").rename(data / "wav16kHz/test/7/Vocal.wav")
    return r"song '7': missing .*7/vocals.wav \(the folder holds Vocal.wav\); put the song's vocals"


def break_annotation_without_audio(data):
    edit_annotations(data, "9", melody(3))
    return r"song '9': annotated in .*Annotations.json but has no audio folder", {"1", "2", "7"}


def break_audio_without_annotation(data):
    edit_annotations(data, "7", None)
    return r"song '7': audio folder .*test/7 has no entry in .*Annotations.json"


def break_empty_notes(data):
    edit_annotations(data, "7", [])
    return r"song '7': the note list in .*Annotations.json is empty"


def break_notes_past_end(data):
    edit_annotations(data, "7", [[1.0, 2.0, 60], [5.5, 6.2, 62]])
    return r"song '7': annotation/audio mismatch: notes in .*Annotations.json end at 6.20 s " \
           r"but the audio .*7/vocals.wav lasts only 5.00 s"


def break_invalid_notes(data):
    edit_annotations(data, "7", [[1.0, 0.5, 60]])
    return r"song '7': invalid notes: .*Annotations.json: song '7': note row 0 .* offset <= onset"


def break_unreadable_audio(data):
    (data / "wav16kHz/test/7/vocals.wav").write_bytes(b"RIFF garbage")
    return r"song '7': .*7/vocals.wav: cannot read this audio file"


def break_mixture_only(data):
    (data / "wav16kHz/test/7/vocals.wav").rename(data / "wav16kHz/test/7/Mixture.wav")
    return r"song '7': missing .*vocals.wav; the folder has the mixture Mixture.wav\. vocals are " \
           r"required.*pip install demucs.*--separate"


@pytest.mark.parametrize("breaker", [
    break_missing_vocals, break_annotation_without_audio, break_audio_without_annotation,
    break_empty_notes, break_notes_past_end, break_invalid_notes, break_unreadable_audio,
    break_mixture_only])
def test_malformed_input_errors(tmp_path, caplog, breaker):
    data = good_mir(tmp_path)
    pattern = breaker(data)
    pattern, kept = pattern if isinstance(pattern, tuple) else (pattern, {"1", "2"})
    with pytest.raises(PrepareError, match=pattern) as err:
        prepare_mir_st500(data, tmp_path / "prep", num_valid=1, progress=False)
    assert "mir_st500" in str(err.value) and "--skip_invalid" in str(err.value)
    assert not (tmp_path / "prep").exists()  # checked before anything is written
    # strict=False: the song is skipped with a warning, the others are prepared.
    with caplog.at_level(logging.WARNING, logger="svt"):
        csvs = prepare_mir_st500(data, tmp_path / "prep", num_valid=1, strict=False,
                                 progress=False)
    assert "skipping mir_st500 song" in caplog.text
    songs = {r["song"] for name in csvs for r in read_rows(csvs[name])}
    assert songs == kept


def test_more_malformed_inputs(tmp_path):
    data = good_mir(tmp_path)
    with pytest.raises(PrepareError, match="prepare_folder .* is inside the data folder"):
        prepare_mir_st500(data, data / "prep", progress=False)
    with pytest.raises(PrepareError, match="cannot hold out 2 of 2 training songs"):
        prepare_mir_st500(data, tmp_path / "prep", num_valid=2, progress=False)
    with pytest.raises(PrepareError, match="data folder .*nowhere does not exist"):
        prepare_mir_st500(tmp_path / "nowhere", tmp_path / "prep", progress=False)
    (data / "Annotations.json").rename(data / "other.json")
    with pytest.raises(PrepareError, match=r"Annotations.json not found; expected the layout"):
        prepare_mir_st500(data, tmp_path / "prep", progress=False)
    (data / "other.json").rename(data / "Annotations.json")

    # Only a mixture, separation requested, demucs not installed: say what to do.
    (data / "wav16kHz/test/7/vocals.wav").rename(data / "wav16kHz/test/7/Mixture.wav")
    if importlib.util.find_spec("demucs") is not None:
        pytest.skip("demucs is installed")
    with pytest.raises(PrepareError, match=r"only a mixture \(7\).*pip install demucs.*"
                                           r"<song>/vocals.wav yourself"):
        prepare_mir_st500(data, tmp_path / "prep", separate=True, progress=False)
    with pytest.raises(PrepareError, match=r"Mixture.wav: cannot separate .*pip install demucs"):
        separate_vocals(data / "wav16kHz/test/7/Mixture.wav", tmp_path / "v.wav")

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("ID,duration\nx_1,5.0\n")
    b.write_text("ID,wav\ny_1,p.wav\n")
    with pytest.raises(PrepareError, match=r"b.csv has the columns \['ID', 'wav'\] but .*a.csv"):
        merge_csvs(tmp_path / "m.csv", [a, b])
    with pytest.raises(PrepareError, match="ID 'x_1' appears in both"):
        merge_csvs(tmp_path / "m.csv", [a, a])


# ---------------------------------------------------------------------------- TONAS, ISMIR2014

def write_tonas_notes(path, notes):
    rows = ["-12.5"] + [f"{on:.4f}, {off - on:.4f}, {midi + 0.3:.4f}, 0.05"
                        for on, off, midi in notes]
    Path(path).write_text("\n".join(rows) + "\n")


def test_tonas_native_layout(tmp_path):
    data = tmp_path / "TONAS"
    layout = {"Deblas/01-D_AMairena": 4.0, "Martinetes1/01-M1_Xa": 6.0, "Martinetes2/01-M1_Xa": 3.0,
              "Martinetes2/02-M2_Yb": 7.0}
    for stem, duration in layout.items():
        write_wav(data / f"{stem}.wav", duration, rate=44100)
        write_tonas_notes(data / f"{stem}.notes.Corrected", melody(duration))
        (data / f"{stem}.f0.Corrected").write_text("0.0 0.0 0.0\n")  # other TONAS files: ignored
    csvs = prepare_tonas(data, tmp_path / "prep", progress=False)
    rows = read_rows(csvs["tonas"])
    songs = {r["song"] for r in rows}
    # A stem present in two folders gets its folder prefixed.
    assert songs == {"01-D_AMairena", "Martinetes1_01-M1_Xa", "Martinetes2_01-M1_Xa",
                     "02-M2_Yb"}
    for r in rows:
        assert r["ID"] == f"tonas_{r['song']}_{r['utter_id']}"
        assert audio_info(r["wav"])[:1] == (SR,) and "audio16k/tonas" in r["wav"]
        notes = json.loads(Path(r["song_anno"]).read_text())
        assert notes[0][2] == pytest.approx(60.3)  # fractional TONAS pitches are kept in the notes
        check_labels(r)
    assert [float(r["duration"]) for r in rows if r["song"] == "02-M2_Yb"] == [7.0]

    (data / "Deblas/01-D_AMairena.notes.Corrected").unlink()
    with pytest.raises(PrepareError, match=r"song '01-D_AMairena': audio .*01-D_AMairena.wav has "
                                           r"no 01-D_AMairena.notes.Corrected beside it"):
        prepare_tonas(data, tmp_path / "prep", progress=False)


def test_tonas_and_ismir_converted_layout(tmp_path):
    for prepare, name in ((prepare_tonas, "tonas"), (prepare_ismir2014, "ismir2014")):
        data = tmp_path / name
        annotations = {"songA": melody(4.0), "songB": melody(6.0)}
        for song in annotations:
            write_wav(data / "wav16kHz" / song / "vocals.wav", 4.0 if song == "songA" else 6.0)
        (data / "Annotations.json").write_text(json.dumps(annotations))
        rows = read_rows(prepare(data, tmp_path / "prep", progress=False)[name])
        assert [(r["ID"], r["duration"]) for r in rows] == \
            [(f"{name}_songA_1", "4.0"), (f"{name}_songB_1", "6.0")]
        for r in rows:
            check_labels(r)


def test_ismir2014_native_layout(tmp_path):
    data = tmp_path / "ISMIR2014"
    # Ground truth beside the audio, in another folder, and a plain .txt; f0 files are ignored.
    write_wav(data / "afemale1.wav", 5.0, rate=44100)
    write_wav(data / "audio/child1.wav", 4.0)
    write_wav(data / "audio/male1.wav", 3.0)
    gt = {data / "afemale1.GroundTruth.txt": melody(5.0), data / "gt/child1.notes": melody(4.0),
          data / "gt/male1.txt": melody(3.0)}
    for path, notes in gt.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{on} {off - on} {midi}\n" for on, off, midi in notes))
    (data / "gt/child1.f0.txt").write_text("0.0 0.0\n")
    (data / "README.txt").write_text("ISMIR2014 singing transcription data set\n")
    rows = read_rows(prepare_ismir2014(data, tmp_path / "prep", progress=False)["ismir2014"])
    assert [r["song"] for r in rows] == ["afemale1", "child1", "male1"]
    for r in rows:
        check_labels(r)
        duration = {"afemale1": 5.0, "child1": 4.0, "male1": 3.0}[r["song"]]
        np.testing.assert_allclose(json.loads(Path(r["song_anno"]).read_text()), melody(duration))

    (data / "gt/child1.notes").unlink()
    write_wav(data / "gt/lost.wav", 1.0)
    (data / "gt/orphan.GroundTruth.txt").write_text("0.1 0.2 60\n")
    with pytest.raises(PrepareError) as err:
        prepare_ismir2014(data, tmp_path / "prep", progress=False)
    message = str(err.value)
    assert "song 'child1': audio" in message and "child1.wav has no ground-truth" in message
    assert "song 'orphan': annotation" in message
    assert "orphan.GroundTruth.txt has no audio" in message
    assert "song 'lost'" in message


# ---------------------------------------------------------------------------- N20EMv2

def test_n20emv2_splits_and_mix_train(tmp_path, caplog):
    data = tmp_path / "N20EMv2"
    entries = {"001": ("train", 6.0), "002": ("train", 11.0), "003": ("valid", 5.0),
               "004": ("test", 7.5), "005": ("extra", 5.0)}
    annotations = {}
    for entry, (split, duration) in entries.items():
        write_wav(data / "data" / entry / "vocals.wav", duration)
        annotations[entry] = {"midi": melody(duration), "split": split, "lyrics": "la la"}
    (data / "annotations.json").write_text(json.dumps(annotations))
    # Numeric entry names that collide with MIR-ST500 ids (bug 9.8) stay distinct.
    mir = make_mir(tmp_path / "MIR", {"001": ("train", 5.0), "2": ("train", 5.0),
                                      "3": ("test", 5.0)})
    save = tmp_path / "prep"
    mir_csvs = prepare_mir_st500(mir, save, num_valid=1, progress=False)
    with caplog.at_level(logging.WARNING, logger="svt"):
        csvs = prepare_n20emv2_audio(data, save, mir_st500_train_csv=mir_csvs["mir_st500_train"],
                                     progress=False)
    assert "005 (split='extra')" in caplog.text
    assert set(csvs) == {"n20em_train", "n20em_valid", "n20em_test", "mix_train"}
    songs = {name: [r["song"] for r in read_rows(p)] for name, p in csvs.items()}
    assert songs["n20em_train"] == ["001", "002", "002"]
    assert songs["n20em_valid"] == ["003"] and songs["n20em_test"] == ["004", "004"]
    mix = read_rows(csvs["mix_train"])
    assert mix == read_rows(mir_csvs["mir_st500_train"]) + read_rows(csvs["n20em_train"])
    assert len({r["ID"] for r in mix}) == len(mix)
    assert {r["dataset"] for r in mix} == {"mir_st500", "n20emv2"}
    for r in mix:
        check_labels(r)

    (data / "data/003/vocals.wav").unlink()
    with pytest.raises(PrepareError, match=r"n20emv2 song '003': missing .*003/vocals.wav"):
        prepare_n20emv2_audio(data, save, progress=False)


def test_synthetic_corpora_and_clis(tmp_path, capsys):
    synth = pytest.importorskip("svt.synthetic.singing")
    mir = synth.make_corpus(tmp_path / "mir", "mir_st500", 4, 0, 1, 8.0, seed=1)
    n20 = synth.make_corpus(tmp_path / "n20", "n20emv2", 2, 1, 1, 8.0, seed=2)
    save = tmp_path / "prep"
    main = cli("N20EMv2/audio_only/prepare.py")
    assert main(["--data_folder", n20["root"], "--mir_st500", mir["root"], "--prepare_folder",
                 str(save), "--num_valid", "1"]) == 0
    printed = capsys.readouterr().out
    for name in ("mir_st500_train", "mir_st500_valid", "mir_st500_test", "n20em_train",
                 "n20em_valid", "n20em_test", "mix_train"):
        assert f"{name}: {save.resolve()}/dur_5s/{name}.csv" in printed
    mix = read_rows(save / "dur_5s/mix_train.csv")
    # mix_train: every MIR-ST500 training song (train + held-out valid, as the original's 400)
    assert {r["song"] for r in mix if r["dataset"] == "mir_st500"} == set(mir["splits"]["train"])
    assert {r["song"] for r in mix if r["dataset"] == "n20emv2"} == set(n20["splits"]["train"])

    assert cli("MIR-ST500/prepare.py")(["--data_folder", mir["root"], "--prepare_folder", str(save),
                                        "--num_valid", "1", "--dur_threshold", "2.5"]) == 0
    assert len(read_rows(save / "dur_2.5s/mir_st500_test.csv")) == 3  # 8 s / 2.5 s
    assert cli("MIR-ST500/prepare.py")(["--data_folder", str(tmp_path / "none"),
                                        "--prepare_folder", str(save)]) == 1
    assert "error: mir_st500: data folder" in capsys.readouterr().err

    tonas = tmp_path / "tonas"
    write_wav(tonas / "Deblas/a.wav", 3.0, rate=44100)
    write_tonas_notes(tonas / "Deblas/a.notes.Corrected", melody(3.0))
    assert cli("TONAS/prepare.py")(["--data_folder", str(tonas), "--prepare_folder",
                                    str(save)]) == 0
    ismir = tmp_path / "ismir"
    write_wav(ismir / "b.wav", 3.0)
    (ismir / "b.GroundTruth.txt").write_text("0.5 0.5 60\n")
    assert cli("ISMIR2014/prepare.py")(["--data_folder", str(ismir), "--prepare_folder",
                                        str(save)]) == 0
    assert "tonas: " in capsys.readouterr().out
    assert [r["ID"] for r in read_rows(save / "dur_5s/ismir2014.csv")] == ["ismir2014_b_1"]


def test_video_prepare_cli(tmp_path, capsys):
    synth = pytest.importorskip("svt.synthetic.singing")
    n20 = synth.make_corpus(tmp_path / "n20", "n20emv2", 1, 1, 0, 6.0, seed=5, with_video=True)
    save = tmp_path / "prep"
    main = cli("N20EMv2/video_only/prepare.py")
    assert main(["--data_folder", n20["root"], "--prepare_folder", str(save)]) == 0
    printed = capsys.readouterr().out
    for split in ("train", "valid", "test"):
        assert f"n20em_video_{split}: {save.resolve()}/dur_5s/n20em_video_{split}.csv" in printed
    rows = read_rows(save / "dur_5s/n20em_video_train.csv")
    assert [(r["ID"], r["duration"]) for r in rows] == [("n20emv2_song_001_1", "6.0")]
    assert np.load(rows[0]["frame_anno"]).shape == (300, 4)  # 50 fps by default
    # The audio CSVs are untouched by (and independent of) the video preparation.
    assert not (save / "dur_5s/n20em_train.csv").exists()
    Path(n20["songs"]["song_002"]["video"]).unlink()
    assert main(["--data_folder", n20["root"], "--prepare_folder", str(save)]) == 1
    assert "song 'song_002'" in capsys.readouterr().err
    assert main(["--data_folder", n20["root"], "--prepare_folder", str(save),
                 "--skip_invalid"]) == 0


def test_annotation_keys_that_are_paths_never_become_paths(tmp_path):
    import json as json_module

    from svt.datasets.songs import song_outputs
    from svt.datasets.mir_st500 import prepare_mir_st500
    from svt.synthetic.singing import make_corpus

    data = tmp_path / "mir"
    make_corpus(str(data), layout="mir_st500", num_train=2, num_test=1, song_duration_s=6, seed=4)
    annotations = json_module.loads((data / "Annotations.json").read_text())
    annotations["../../victim"] = next(iter(annotations.values()))
    (data / "Annotations.json").write_text(json_module.dumps(annotations))
    # The key is reported (it matches no audio folder and names no file) before any writing.
    with pytest.raises(PrepareError, match=r"song '\.\./\.\./victim'"):
        prepare_mir_st500(data, tmp_path / "prep", progress=False)
    assert not (tmp_path / "victim").exists() and not (tmp_path.parent / "victim").exists()
    with pytest.raises(PrepareError, match="would name files outside"):
        song_outputs(tmp_path / "prep", "mir_st500", "../x")
