"""Lip videos (svt.data.video): validation, partial reads, the AV-HuBERT preprocessing, the video
dataset, and the N20EMv2 video preparation (svt.datasets.n20emv2.prepare_n20emv2_video)."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import svt.datasets.songs as songs_module
from svt.data.utterances import PrepareError
from svt.data.video import (
    CROP,
    MEAN,
    STD,
    VIDEO_FPS,
    VideoError,
    VideoTransform,
    load_video_utterance,
    read_video_slice,
    validate_video,
    video_dataset,
    video_info,
)
from svt.datasets.n20emv2 import VIDEO_CSV_COLUMNS, prepare_n20emv2_video
from svt.notes.labels import notes_to_frames
from svt.synthetic import singing as synth

SR = 16000


# ---------------------------------------------------------------------------- helpers

def save_npy(path, array):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return path


def ramps(height=96, width=96):
    """Frame 0: value = column index, frame 1: value = row index (identifies crop offsets)."""
    x = np.broadcast_to(np.arange(width, dtype=np.uint8), (height, width))
    y = np.broadcast_to(np.arange(height, dtype=np.uint8)[:, None], (height, width))
    return np.stack([x, y])


def normalised(values):
    """The original's float64 arithmetic, then float32."""
    return ((np.asarray(values) / 255.0 - MEAN) / STD).astype(np.float32)


def read_rows(path):
    text = Path(path).read_text()
    assert "\r" not in text
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def make_n20(root, entries, size=96):
    """N20EMv2 layout; `entries = {name: (split, audio_s or None, video_frames or None)}`."""
    root = Path(root)
    annotations = {}
    for i, (name, (split, audio_s, frames)) in enumerate(entries.items()):
        folder = root / "data" / name
        folder.mkdir(parents=True, exist_ok=True)
        if audio_s is not None:
            t = np.arange(int(round(audio_s * SR))) / SR
            sf.write(str(folder / "vocals.wav"), 0.3 * np.sin(2 * np.pi * 440 * t), SR,
                     subtype="PCM_16")
        if frames is not None:
            rng = np.random.default_rng(i)
            save_npy(folder / "video_50fps.npy",
                     rng.integers(0, 256, (frames, size, size), dtype=np.uint8))
        length = (frames / 50) if frames is not None else audio_s
        notes = [[t + 0.2, t + 0.7, 60 + j % 5] for j, t in enumerate(np.arange(0, length - 0.7))]
        annotations[name] = {"midi": notes, "split": split}
    (root / "annotations.json").write_text(json.dumps(annotations))
    return root


# ---------------------------------------------------------------------------- transforms

def test_constants():
    assert (VIDEO_FPS, CROP, MEAN, STD) == (50, 88, 0.421, 0.165)


def test_eval_transform_centre_crop_hand_computed():
    out = VideoTransform(train=False)(ramps())
    assert out.dtype == np.float32 and out.shape == (2, 88, 88)
    # 96 px: offset int(round(96 - 88) / 2) = 4 on both axes -> columns/rows 4..91.
    np.testing.assert_array_equal(out[0], np.broadcast_to(normalised(np.arange(4, 92)), (88, 88)))
    np.testing.assert_array_equal(out[1], normalised(np.arange(4, 92))[:, None].repeat(88, 1))
    # Odd margins: H = 99 -> int(11 / 2) = 5 (AV-HuBERT floors), W = 97 -> int(9 / 2) = 4.
    out = VideoTransform(train=False)(ramps(99, 97))
    assert out[0, 0, 0] == normalised(4) and out[0, 0, -1] == normalised(91)
    assert out[1, 0, 0] == normalised(5) and out[1, -1, 0] == normalised(92)
    assert VideoTransform(train=False).crop_offsets(99, 97) == (5, 4)


def test_normalisation_constants():
    frames = np.array([[[0, 255], [128, 51]]], dtype=np.uint8)
    out = VideoTransform(train=False, crop=2)(frames)
    expected = np.array([[(0 / 255 - 0.421) / 0.165, (255 / 255 - 0.421) / 0.165],
                         [(128 / 255 - 0.421) / 0.165, (51 / 255 - 0.421) / 0.165]])
    np.testing.assert_array_equal(out[0], expected.astype(np.float32))
    assert out[0, 0, 0] == pytest.approx(-2.551515, abs=1e-6)


def test_train_transform_is_seeded_and_in_bounds():
    clip = np.concatenate([ramps(), ramps()[:1]])  # 3 frames: x, y, x
    reference = np.random.default_rng(7)  # the draws, in order: top, left, flip
    transform = VideoTransform(train=True, rng=np.random.default_rng(7))
    tops, lefts, flips = [], [], []
    for _ in range(300):
        top, left = int(reference.integers(0, 9)), int(reference.integers(0, 9))
        flip = reference.random() < 0.5
        out = transform(clip)
        assert out.shape == (3, 88, 88) and out.dtype == np.float32
        cols = np.arange(left, left + 88)[::-1 if flip else 1]
        np.testing.assert_array_equal(out[0], np.broadcast_to(normalised(cols), (88, 88)))
        np.testing.assert_array_equal(out[1, :, 0], normalised(np.arange(top, top + 88)))
        np.testing.assert_array_equal(out[2], out[0])  # one crop and flip for the whole clip
        tops.append(top), lefts.append(left), flips.append(flip)
    assert set(tops) == set(lefts) == set(range(9))  # both ends of [0, H-88] are reachable
    assert 0.4 < np.mean(flips) < 0.6
    a = VideoTransform(train=True, rng=3)(clip)
    b = VideoTransform(train=True, rng=3)(clip)
    np.testing.assert_array_equal(a, b)


def test_transform_rejects_bad_input():
    with pytest.raises(VideoError, match="uint8"):
        VideoTransform(train=False)(ramps().astype(np.float32))
    with pytest.raises(VideoError, match="smaller than the 88x88 crop"):
        VideoTransform(train=True, rng=0)(ramps(87, 96))


# ---------------------------------------------------------------------------- files

def test_partial_read_and_utterances(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (620, 88, 90), dtype=np.uint8)
    path = save_npy(tmp_path / "v.npy", video)
    assert video_info(path) == (620, 88, 90, np.dtype(np.uint8))
    part = read_video_slice(path, 17, 41)
    assert type(part) is np.ndarray and part.dtype == np.uint8  # a copy, not the memory map
    np.testing.assert_array_equal(part, video[17:41])
    np.testing.assert_array_equal(read_video_slice(path), video)
    # Same rule as the audio/labels: 250 frames per 5-s utterance, the last one to the end.
    for k, (start, stop) in enumerate([(0, 250), (250, 500), (500, 620)], 1):
        np.testing.assert_array_equal(load_video_utterance(path, k, 3, 5), video[start:stop])
    np.testing.assert_array_equal(load_video_utterance(path, 2, 2, 2.5, fps=50),
                                  video[125:])


@pytest.mark.parametrize("make, match", [
    (lambda p: p, "no such video file"),
    (lambda p: (p.write_text("not numpy"), p)[1], "cannot read this file as a numpy .npy"),
    (lambda p: (np.savez(p.with_suffix(".npz"), a=np.zeros((3, 96, 96), np.uint8)),
                p.with_suffix(".npz"))[1], "npz archive"),
    (lambda p: save_npy(p, np.zeros((3, 96, 96, 3), np.uint8)), r"shape \(3, 96, 96, 3\)"),
    (lambda p: save_npy(p, np.zeros((96, 96), np.uint8)), r"shape \(96, 96\)"),
    (lambda p: save_npy(p, np.zeros((3, 96, 96), np.float32)), "dtype float32; expected uint8"),
    (lambda p: save_npy(p, np.zeros((0, 96, 96), np.uint8)), "holds no frames"),
    (lambda p: save_npy(p, np.zeros((3, 64, 96), np.uint8)), "64x96 pixels.*at least 88x88"),
])
def test_validation_errors(tmp_path, make, match):
    path = make(tmp_path / "video_50fps.npy")
    with pytest.raises(VideoError, match=match) as err:
        validate_video(path)
    assert str(path) in str(err.value)


def test_validation_length_tolerance(tmp_path):
    path = save_npy(tmp_path / "v.npy", np.zeros((100, 88, 88), np.uint8))
    assert validate_video(path, expected_frames=105) == (100, 88, 88, np.dtype(np.uint8))
    assert validate_video(path, expected_frames=95)[0] == 100
    with pytest.raises(VideoError, match=r"100 frames but the audio lasts 106 frames \(-6"):
        validate_video(path, expected_frames=106)
    with pytest.raises(VideoError, match="tolerance of 2"):
        validate_video(path, expected_frames=97, tolerance_frames=2)


# ---------------------------------------------------------------------------- preparation

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A synthetic N20EMv2 corpus (3 songs x 8 s with lip videos), prepared."""
    root = tmp_path_factory.mktemp("video")
    corpus = synth.make_corpus(root / "n20", "n20emv2", 1, 1, 1, 8.0, seed=4, with_video=True)
    csvs = prepare_n20emv2_video(corpus["root"], root / "prep", progress=False)
    return corpus, root / "prep", csvs


def test_prepare_n20emv2_video_end_to_end(prepared):
    corpus, save, csvs = prepared
    assert set(csvs) == {"n20em_video_train", "n20em_video_valid", "n20em_video_test"}
    for split, song in [("train", "song_001"), ("valid", "song_002"), ("test", "song_003")]:
        path = csvs[f"n20em_video_{split}"]
        assert path == save.resolve() / "dur_5s" / f"n20em_video_{split}.csv"
        rows = read_rows(path)
        assert list(rows[0]) == VIDEO_CSV_COLUMNS
        # 8 s = 400 frames: round(1.6) = 2 utterances of 250 and 150 frames.
        assert [(r["ID"], r["utter_id"], r["utter_num"], r["duration"]) for r in rows] == [
            (f"n20emv2_{song}_1", "1", "2", "5.0"), (f"n20emv2_{song}_2", "2", "2", "3.0")]
        row = rows[0]
        assert (row["song"], row["dataset"]) == (song, "n20emv2")
        assert row["video"] == corpus["songs"][song]["video"]
        assert row["wav"] == corpus["songs"][song]["vocals"]
        assert row["frame_anno"] == str(save.resolve() / "labels/n20emv2_video" / f"{song}.npy")
        assert row["song_anno"] == str(save.resolve() / "notes/n20emv2_video" / f"{song}.json")
        notes = json.loads(Path(row["song_anno"]).read_text())
        assert notes == json.loads(Path(corpus["annotations"]).read_text())[song]["midi"]
        labels = np.load(row["frame_anno"])
        assert labels.shape == (400, 4) and labels.dtype == np.int64
        np.testing.assert_array_equal(labels, notes_to_frames(notes, 400, 50))
    settings = json.loads((save / "labels/n20emv2_video/_settings.json").read_text())
    assert settings == {"frame_rate": 50.0, "source": "video"}


def test_prepare_n20emv2_video_resumes(tmp_path, monkeypatch, caplog):
    data = make_n20(tmp_path / "N20EMv2", {"a": ("train", None, 400), "b": ("train", 8.0, 400),
                                           "c": ("test", None, 300)})
    save = tmp_path / "prep"
    written = []
    real_save = songs_module.save_labels
    monkeypatch.setattr(songs_module, "save_labels",
                        lambda path, labels: (written.append(Path(path).name),
                                              real_save(path, labels)))

    def run(**kwargs):
        written.clear()
        return prepare_n20emv2_video(data, save, progress=False, **kwargs)

    run()
    assert sorted(written) == ["a.npy", "b.npy", "c.npy"]
    with caplog.at_level(logging.INFO, logger="svt"):
        run()
    assert "3 up to date" in caplog.text and written == []
    (save / "labels/n20emv2_video/b.npy").unlink()
    run()
    assert written == ["b.npy"]
    run(overwrite=True)
    assert len(written) == 3
    save_npy(data / "data/c/video_50fps.npy", np.zeros((310, 96, 96), np.uint8))  # new video
    run()
    assert written == ["c.npy"] and np.load(save / "labels/n20emv2_video/c.npy").shape == (310, 4)
    # A new frame rate relabels every song (b's 8-s audio is 200 frames at 25 fps: needs
    # tolerance). 400 frames at 25 fps = 16 s -> 8 utterances of 2 s = 50 frames each.
    csvs = run(label_frame_rate=25, dur_threshold=2, tolerance_s=10)
    assert len(written) == 3
    rows = [r for r in read_rows(csvs["n20em_video_train"]) if r["song"] == "a"]
    assert len(rows) == 8 and rows[-1]["duration"] == "2.0"
    notes = json.loads(Path(rows[0]["song_anno"]).read_text())
    np.testing.assert_array_equal(np.load(rows[0]["frame_anno"]), notes_to_frames(notes, 400, 25))


def test_prepare_n20emv2_video_problems(tmp_path, caplog):
    data = make_n20(tmp_path / "N20EMv2", {
        "ok": ("train", 6.0, 300),
        "no_audio": ("train", None, 260),          # fine: vocals are optional
        "too_short": ("valid", 6.0, 290),          # 10 frames (0.2 s) shorter than the audio
        "no_video": ("test", 6.0, None),
        "small": ("test", None, 250),
        "extra": ("other", 6.0, 300),              # not a train/valid/test entry: left out
    })
    save_npy(data / "data/small/video_50fps.npy", np.zeros((250, 80, 80), np.uint8))
    save = tmp_path / "prep"
    with pytest.raises(PrepareError) as err:
        prepare_n20emv2_video(data, save, progress=False)
    message = str(err.value)
    assert "3 problem(s)" in message
    assert "song 'too_short'" in message and "290 frames but the audio lasts 300" in message
    assert "song 'no_video'" in message and "no_video/video_50fps.npy: no such video file" \
        in message
    assert "song 'small'" in message and "80x80 pixels" in message
    assert "--skip_invalid" in message

    with caplog.at_level(logging.WARNING, logger="svt"):
        csvs = prepare_n20emv2_video(data, save, strict=False, progress=False)
    assert "skipping n20emv2 song 'too_short'" in caplog.text
    rows = read_rows(csvs["n20em_video_train"])
    assert sorted({r["song"] for r in rows}) == ["no_audio", "ok"]
    assert {r["song"]: r["wav"] for r in rows}["no_audio"] == ""
    assert read_rows(csvs["n20em_video_valid"]) == read_rows(csvs["n20em_video_test"]) == []
    # More tolerance accepts the 0.2-s difference.
    csvs = prepare_n20emv2_video(data, save, strict=False, progress=False, tolerance_s=0.25)
    assert {r["song"] for r in read_rows(csvs["n20em_video_valid"])} == {"too_short"}


def test_prepare_n20emv2_video_notes_past_the_video(tmp_path):
    data = make_n20(tmp_path / "N20EMv2", {"a": ("train", None, 150)})
    ann = json.loads((data / "annotations.json").read_text())
    ann["a"]["midi"].append([9.0, 9.5, 60])
    (data / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(PrepareError, match=r"song 'a': annotation/audio mismatch: notes .* end "
                                           r"at 9.50 s but .*video_50fps.npy lasts only 3.00 s"):
        prepare_n20emv2_video(data, tmp_path / "prep", progress=False)


# ---------------------------------------------------------------------------- dataset

def test_video_dataset_items_align_with_labels(prepared):
    corpus, save, csvs = prepared
    dataset = video_dataset(csvs["n20em_video_train"], 5)
    items = [dataset[i] for i in range(len(dataset))]
    assert [it["id"] for it in items] == ["n20emv2_song_001_1", "n20emv2_song_001_2"]
    raw = np.load(corpus["songs"]["song_001"]["video"])
    labels = np.load(save / "labels/n20emv2_video/song_001.npy")
    for item, (start, stop) in zip(items, [(0, 250), (250, 400)]):
        assert item["video"].dtype.is_floating_point and item["video"].dtype.itemsize == 4
        assert tuple(item["video"].shape) == (stop - start, 88, 88)
        assert tuple(item["labels"].shape) == (stop - start, 4)
        np.testing.assert_array_equal(item["video"].numpy(),
                                      VideoTransform(train=False)(raw[start:stop]))
        np.testing.assert_array_equal(item["labels"].numpy(), labels[start:stop])
        assert item["song_key"] == "n20emv2/song_001" and item["utter_count"] == 2
    assert [it["utter_index"] for it in items] == [1, 2]
    assert items[0]["song_anno"].endswith("notes/n20emv2_video/song_001.json")


def test_video_dataset_training_and_batches(prepared):
    import speechbrain as sb

    _, _, csvs = prepared
    first = [video_dataset(csvs["n20em_video_train"], 5, train=True, seed=11)[0]["video"]
             for _ in range(2)]
    np.testing.assert_array_equal(first[0].numpy(), first[1].numpy())  # same seed, same crop
    dataset = video_dataset(csvs["n20em_video_train"], 5, train=True, seed=11,
                            sorting="ascending")
    assert [dataset[i]["utter_index"] for i in range(2)] == [2, 1]
    loader = sb.dataio.dataloader.make_dataloader(dataset, batch_size=2)
    batch = next(iter(loader))
    videos, lens = batch.video
    assert tuple(videos.shape) == (2, 250, 88, 88)
    np.testing.assert_allclose(lens.numpy(), [150 / 250, 1.0])
    assert tuple(batch.labels[0].shape) == (2, 250, 4)
    with pytest.raises(ValueError, match="sorting"):
        video_dataset(csvs["n20em_video_train"], 5, sorting="sideways")


def test_video_dataset_rejects_audio_csv(tmp_path):
    path = tmp_path / "audio.csv"
    path.write_text("ID,duration,wav\na,1.0,x.wav\n")
    with pytest.raises(ValueError, match="no 'video' column"):
        video_dataset(path, 5)


def test_per_clip_normalisation_option():
    from svt.data.video import VideoTransform
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 96, 96)).astype(np.uint8)
    out = VideoTransform(train=False, per_clip=True)(frames)
    crop = frames[:, 4:92, 4:92].astype(np.float64) / 255.0
    np.testing.assert_allclose(out, (crop - crop.mean()) / crop.std(), atol=1e-5)
    # Brightness and contrast of the clip no longer matter.
    brighter = np.clip(frames.astype(np.int32) // 2 + 60, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(VideoTransform(train=False, per_clip=True)(brighter), out,
                               atol=0.03)
