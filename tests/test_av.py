"""The audio-visual stage: noisy feature extraction from a trained audio recipe, AV CSVs,
RCA training and the audio-only control, on a tiny synthetic corpus."""

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from svt.data.features import (
    FeatureError,
    av_dataset,
    feature_path,
    load_features,
    prepare_av_csvs,
)
from svt.datasets.musan import condition_name, prepare_musan, synthesize_noisy_songs
from svt.notes.scoring import METRIC_KEYS
from svt.synthetic.musan import make_fake_musan
from svt.synthetic.singing import make_corpus
from svt.synthetic.tiny_models import build_tiny_ssl_model
from svt.training.features import NoTrainedModelError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_audio(tmp_path_factory, run_experiment):
    """A tiny N20EMv2 audio recipe run (N20EMv2 only), plus accompaniment noise at -10 dB."""
    root = tmp_path_factory.mktemp("av")
    make_corpus(root / "n20", layout="n20emv2", num_train=2, num_valid=1, num_test=1,
                song_duration_s=9, seed=4, with_video=True)
    make_fake_musan(root / "musan", seed=0, num_speech=6, num_music=2, num_free_sound=4,
                    num_sound_bible=2)
    prepare_musan(root / "musan", root / "musan_prepared", num_babble={"train": 2, "valid": 1,
                                                                      "test": 1},
                  speakers_per_babble=3, progress=False)
    synthesize_noisy_songs(root / "n20", root / "musan_prepared", noise_types=("accomp",),
                           snrs=(-10,), progress=False)
    build_tiny_ssl_model(root / "encoder", feat_extract_norm="layer")
    args = ["--data_folder", root / "n20", "--mix_train", "False", "--ssl_source",
            root / "encoder", "--ssl_name", "tiny", "--number_of_epochs", 1,
            "--linear_prob_epochs", 1, "--num_workers", 0, "--batch_size", 4,
            "--output_folder", root / "audio_run", "--prepare_folder", root / "data",
            "--bundle_folder", root / "audio_run" / "model", "--device", "cpu"]
    run_experiment("N20EMv2/audio_only", "train_audio_ssl.yaml", *args)
    return root, args


def test_extraction_refuses_without_a_trained_model(trained_audio, tmp_path, run_experiment):
    root, args = trained_audio
    args = list(args)
    args[args.index("--output_folder") + 1] = tmp_path / "untrained"
    with pytest.raises(NoTrainedModelError, match="train the recipe first"):
        run_experiment("N20EMv2/audio_only", "train_audio_ssl.yaml", *args, "--extract_features",
                       "True")


def test_features_round_trip_and_av_training(trained_audio, tmp_path, run_experiment):
    root, args = trained_audio
    features = root / "data" / "features"
    for extra in ([], ["--noise_type", "accomp", "--snr_db", -10]):
        run_experiment("N20EMv2/audio_only", "train_audio_ssl.yaml", *args, "--extract_features",
                       "True", *extra)
    annotations = json.loads((root / "n20" / "annotations.json").read_text())
    assert len(annotations) == 4
    for song in annotations:  # every split, training songs included
        # Feature files are named after the model that wrote them (ssl_name "tiny").
        clean = load_features(feature_path(features, f"n20emv2/{song}", "tiny/clean_feats"))
        noisy = load_features(feature_path(features, f"n20emv2/{song}",
                                           "tiny/" + condition_name("accomp", -10) + "_feats"))
        labels = np.load(root / "data" / "labels" / "n20emv2" / f"{song}.npy")
        assert clean.dtype == np.float16 and clean.shape == noisy.shape
        assert abs(clean.shape[0] - len(labels)) <= 3  # 249 feature frames per 5-s utterance
        assert not np.allclose(clean, noisy)  # the noise changed the input
        # Video features stand in here (the video recipe has its own tests): 50 rows per second,
        # 12 values a row, so the fusion projects them to the audio's 32 (`--video_size`).
        video = np.random.default_rng(0).standard_normal(
            (int(round(clean.shape[0] / 49.8 * 50)), 12)).astype(np.float16)
        np.save(feature_path(features, f"n20emv2/{song}", "tiny/video_feats"), video)

    # The extracted features equal the trained encoder run on the song's utterances.
    from svt.data.utterances import audio_dataset
    from svt.inference.bundle import load_bundle
    model = load_bundle(root / "audio_run" / "model")
    test_song = next(s for s, e in annotations.items() if e["split"] == "test")
    dataset = audio_dataset(root / "data" / "dur_5s" / "n20em_test.csv", 5, 49.8)
    with torch.no_grad():
        parts = [model.encoder(dataset[i]["sig"][None])[0].numpy() for i in range(len(dataset))
                 if dataset[i]["song_key"] == f"n20emv2/{test_song}"]
    np.testing.assert_allclose(load_features(feature_path(features, f"n20emv2/{test_song}",
                                                          "tiny/clean_feats")),
                               np.concatenate(parts), atol=2e-2)

    common = ["--data_folder", root / "n20", "--prepare_folder", root / "data",
              "--audio_model", "tiny", "--video_model", "tiny",
              "--noise_type", "accomp", "--snr_db", -10, "--number_of_epochs", 1,
              "--d_model", 32, "--video_size", 12, "--nhead", 2, "--d_ffn", 64,
              "--num_workers", 0, "--batch_size", 4, "--eval_batch_size", 2, "--device", "cpu",
              "--init_head_from", root / "audio_run" / "model"]
    for system in ("AV", "A"):
        out = tmp_path / system
        results = run_experiment("N20EMv2/audio_visual", "train_rca.yaml", *common, "--system",
                                 system, "--output_folder", out)
        assert set(results) == {"n20em_test", "n20em_valid"}
        assert set(METRIC_KEYS) <= set(results["n20em_test"])
        assert (out / "summary_n20em_test.json").is_file()
        assert list((out / "predictions" / "n20em_test").glob("*.json"))


def test_av_dataset_alignment_and_missing_features(trained_audio, tmp_path):
    root, _ = trained_audio
    features = tmp_path / "features"
    song_key = "n20emv2/x"
    np.save(feature_path(features, song_key, "clean_feats").parent.mkdir(parents=True) or
            feature_path(features, song_key, "clean_feats"),
            np.arange(300 * 4, dtype=np.float16).reshape(300, 4) % 7)
    np.save(feature_path(features, song_key, "video_feats"),
            np.ones((297, 4), dtype=np.float16))  # a little shorter than 300 / 49.8 * 50
    labels = tmp_path / "x.npy"
    np.save(labels, np.zeros((300, 4), dtype=np.int64))
    audio_csv = tmp_path / "a.csv"
    audio_csv.write_text("ID,song,dataset,duration,wav,utter_id,utter_num,frame_anno,song_anno\n"
                         f"n20emv2_x_1,x,n20emv2,6.02,none.wav,1,1,{labels},notes.json\n")
    csvs = prepare_av_csvs({"test": audio_csv}, features, tmp_path / "prep", 5)
    item = av_dataset(csvs["test"], 5)[0]
    assert item["audio_feats"].shape == item["video_feats"].shape == (300, 4)
    assert (item["video_feats"][297:] == 0).all() and (item["video_feats"][:297] == 1).all()
    assert item["labels"].shape == (300, 4)
    zero = av_dataset(csvs["test"], 5, zero_video=True)[0]
    assert (zero["video_feats"] == 0).all()
    (feature_path(features, song_key, "video_feats")).unlink()
    with pytest.raises(FeatureError, match="video_feats.npy: features missing"):
        prepare_av_csvs({"test": audio_csv}, features, tmp_path / "prep", 5)


@pytest.fixture(scope="module")
def trained_video(trained_audio, tmp_path_factory, run_experiment):
    """A tiny video recipe run (random-init tiny AV-HuBERT, 1 epoch) on the same corpus."""
    from svt.models.avhubert import AVHubertVideoEncoder
    from svt.synthetic.fairseq_checkpoints import save_fairseq_style_checkpoint
    from svt.synthetic.tiny_models import tiny_config
    root, _ = trained_audio
    folder = tmp_path_factory.mktemp("video")
    config = tiny_config()
    save_fairseq_style_checkpoint(AVHubertVideoEncoder(config), config, folder / "tiny.pt")
    video_args = ["--data_folder", root / "n20", "--avhubert_checkpoint", folder / "tiny.pt",
                  "--number_of_epochs", 1, "--linear_prob_epochs", 1, "--num_workers", 0,
                  "--batch_size", 2, "--eval_batch_size", 2, "--output_folder",
                  folder / "video_run", "--prepare_folder", root / "data", "--bundle_folder",
                  folder / "video_run" / "model", "--device", "cpu", "--video_norm", "per_clip"]
    run_experiment("N20EMv2/video_only", "train_video_ssl.yaml", *video_args)
    return video_args, folder / "video_run" / "model", config


def test_noise_grid_and_report(trained_audio, trained_video, tmp_path):
    """The grid on a tiny corpus: video features from a (tiny) trained video recipe, audio features
    per condition, AV and A per condition, then the table and the figure."""
    import csv

    root, audio_args = trained_audio
    video_args, _, config = trained_video
    av_args = ["--data_folder", root / "n20", "--prepare_folder", root / "data",
               "--audio_model", "tiny", "--video_model", "tiny", "--number_of_epochs", 1,
               "--d_model", 32, "--nhead", 2, "--d_ffn", 64,
               "--num_workers", 0, "--batch_size", 4, "--device", "cpu"]
    grid = runpy.run_path(str(ROOT / "N20EMv2" / "audio_visual" / "run_noise_grid.py"),
                          run_name="x")["main"]

    def joined(items):
        return " ".join(str(x) for x in items)

    # Features of an earlier model are replaced, never reused.
    annotations = json.loads((root / "n20" / "annotations.json").read_text())
    stale = feature_path(root / "data" / "features", f"n20emv2/{next(iter(annotations))}",
                         "tiny/video_feats")
    stale.parent.mkdir(parents=True, exist_ok=True)
    np.save(stale, np.zeros((10, 12), dtype=np.float16))
    out = tmp_path / "grid"
    assert grid(["--output", str(out), "--noise_types", "accomp", "--snrs=-10",
                 "--audio_args", joined(["hparams/train_audio_ssl.yaml", *audio_args]),
                 "--video_args", joined(["hparams/train_video_ssl.yaml", *video_args]),
                 "--av_args", joined(av_args)]) == 0
    with open(out / "noise_table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["system"], r["noise_type"], r["snr_db"]) for r in rows] == [
        ("A", "clean", "clean"), ("A", "accomp", "-10"), ("AV", "clean", "clean"),
        ("AV", "accomp", "-10")]
    assert all(0 <= float(r["COn_f1"]) <= 1 for r in rows)
    assert (out / "noise_test.png").stat().st_size > 1000 and (out / "noise_table.md").is_file()
    assert load_features(stale).shape[1] == config.encoder_embed_dim


def test_audio_visual_bundle_transcribes_with_the_lip_video(trained_audio, trained_video,
                                                             tmp_path, capsys, run_experiment):
    """The AV recipe exports an inference bundle (audio + video + fusion + head) that
    `svt.transcribe(..., video=)` and `svt-transcribe --video` use."""
    from svt.cli.transcribe import main as cli
    from svt.data.video import VideoError, VideoTransform
    from svt.inference.bundle import BundleError, load_bundle, read_manifest
    from svt.inference.transcribe import transcribe
    from svt.models.audio_visual import AudioVisualModel
    from svt.models.head import frame_predictions

    root, audio_args = trained_audio
    video_args, video_bundle, _ = trained_video
    run_experiment("N20EMv2/audio_only", "train_audio_ssl.yaml", *audio_args,
                   "--extract_features", "True")
    run_experiment("N20EMv2/video_only", "train_video_ssl.yaml", *video_args,
                   "--extract_features", "True")
    out = tmp_path / "av"
    run_experiment("N20EMv2/audio_visual", "train_rca.yaml", "--data_folder", root / "n20",
        "--prepare_folder", root / "data", "--audio_model", "tiny", "--video_model", "tiny",
        "--number_of_epochs", 1, "--d_model", 32,
        "--nhead", 2, "--d_ffn", 64, "--num_workers", 0, "--batch_size", 4, "--device", "cpu",
        "--init_head_from", root / "audio_run" / "model", "--video_bundle", video_bundle,
        "--output_folder", out)
    manifest = read_manifest(out / "model")
    assert manifest["modality"] == "audio_visual" and manifest["video_norm"] == "per_clip"
    model = load_bundle(out / "model")
    assert isinstance(model, AudioVisualModel)
    # The fusion and head are the recipe's selected checkpoint; the encoders are the two bundles'.
    recovered = torch.load(next((out / "save").glob("CKPT*")) / "fusion.ckpt", weights_only=True)
    for key, value in recovered.items():
        torch.testing.assert_close(model.fusion.state_dict()[key], value)
    audio_model = load_bundle(root / "audio_run" / "model")
    for key, value in audio_model.encoder.state_dict().items():
        torch.testing.assert_close(model.encoder.state_dict()[key], value)

    annotations = json.loads((root / "n20" / "annotations.json").read_text())
    song = next(s for s, e in annotations.items() if e["split"] == "test")
    wav_path = root / "n20" / "data" / song / "vocals.wav"
    video_path = root / "n20" / "data" / song / "video_50fps.npy"
    # One chunk covering the whole song = the model run by hand on the whole song.
    notes, frames = transcribe(wav_path, model=model, video=video_path, chunk_seconds=60,
                               context_seconds=0, return_frames=True)
    from svt.audio import read_audio
    num_frames = len(frames[0])  # the audio encoder's frames; the video's first as many go along
    wav = read_audio(wav_path, 16000)[: (num_frames - 1) * 320 + 400]  # what those frames see
    wav = torch.from_numpy(wav)[None]
    clip = VideoTransform(train=False, per_clip=True)(np.load(video_path)[:num_frames])
    with torch.no_grad():
        audio = model.encoder(wav)
        video = model.video_encoder(torch.from_numpy(clip)[None, None])
        expected = frame_predictions(model.head(model.fusion(audio, video)))
    for got, want in zip(frames, expected):
        np.testing.assert_allclose(got, want[0].numpy(), atol=1e-4)
    # Chunked (5 s + 0.5 s context, the default) runs and decodes.
    chunked = transcribe(wav_path, model=model, video=video_path)
    assert chunked.ndim == 2 and chunked.shape[1] == 3

    with pytest.raises(BundleError, match="needs the singer's lip video"):
        transcribe(wav_path, model=model)
    with pytest.raises(BundleError, match="a lip video was given"):
        transcribe(wav_path, model=audio_model, video=video_path)
    with pytest.raises(VideoError, match="frames but the audio lasts"):
        transcribe(wav_path, model=model, video=np.load(video_path)[:-60])

    # The dataset folder as --video: data/<song>/vocals.wav finds data/<song>/video_50fps.npy and
    # is written as <song>.json.
    assert cli([str(wav_path), "--model", str(out / "model"), "--video", str(root / "n20" / "data"),
                "--out-dir", str(tmp_path / "notes"), "--format", "csv"]) == 0
    written = json.loads((tmp_path / "notes" / f"{song}.json").read_text())
    np.testing.assert_allclose(np.array(written).reshape(-1, 3), chunked, atol=1e-9)
    videos = tmp_path / "videos"  # or a folder of <name>.npy
    videos.mkdir()
    (videos / f"{song}.npy").write_bytes(video_path.read_bytes())
    assert cli([str(wav_path), "--model", str(out / "model"), "--video", str(videos),
                "--out-dir", str(tmp_path / "notes2"), "--format", "csv"]) == 0
    assert json.loads((tmp_path / "notes2" / f"{song}.json").read_text()) == written
    other = tmp_path / "other.wav"
    other.write_bytes(wav_path.read_bytes())
    # A missing video is found before any work, not after the other inputs ran.
    assert cli([str(wav_path), str(other), "--model", str(out / "model"), "--video", str(videos),
                "--out-dir", str(tmp_path / "notes3")]) == 2
    err = capsys.readouterr().err
    assert f"{other}: no lip video for it in {videos} (expected other.npy" in err
    assert not (tmp_path / "notes3" / f"{song}.json").exists()
    # A text file passed as a video: no advice to load it "unsafely".
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(VideoError, match="cannot read this file as a numpy .npy array") as info:
        transcribe(wav_path, model=model, video=tmp_path / "text.npy")
    assert "allow_pickle" not in str(info.value) and "trust" not in str(info.value)
