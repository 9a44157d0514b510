"""The N20EMv2 video-only recipe end to end with a tiny AV-HuBERT (fabricated fairseq-style
checkpoint), bundle export/reload, and video feature extraction for all splits."""

import json

import numpy as np
import pytest

from svt.data.features import feature_path, load_features
from svt.inference.bundle import BundleError, load_bundle
from svt.models.avhubert import AVHubertVideoEncoder
from svt.notes.scoring import METRIC_KEYS
from svt.synthetic.fairseq_checkpoints import save_fairseq_style_checkpoint
from svt.synthetic.singing import make_corpus
from svt.synthetic.tiny_models import tiny_config


@pytest.fixture(scope="module")
def video_run(tmp_path_factory, run_experiment):
    root = tmp_path_factory.mktemp("video")
    make_corpus(root / "n20", layout="n20emv2", num_train=2, num_valid=1, num_test=1,
                song_duration_s=7, seed=6, with_video=True)
    config = tiny_config()
    save_fairseq_style_checkpoint(AVHubertVideoEncoder(config), config, root / "tiny.pt")
    args = ["--data_folder", root / "n20", "--avhubert_checkpoint", root / "tiny.pt",
            "--number_of_epochs", 1, "--linear_prob_epochs", 1, "--num_workers", 0,
            "--batch_size", 2, "--eval_batch_size", 2, "--output_folder", root / "run",
            "--prepare_folder", root / "data", "--bundle_folder", root / "run" / "model",
            "--device", "cpu"]
    results = run_experiment("N20EMv2/video_only", "train_video_ssl.yaml", *args)
    return root, args, results


def test_video_recipe_end_to_end(video_run):
    root, _, results = video_run
    assert set(results) == {"n20em_video_test", "n20em_video_valid"}
    assert set(METRIC_KEYS) <= set(results["n20em_video_test"])
    log = (root / "run" / "train_log.txt").read_text()
    assert "epoch: 1," in log and "test set: n20em_video_test" in log
    model = load_bundle(root / "run" / "model")
    assert model.settings["modality"] == "video" and model.frame_rate == 50
    assert isinstance(model.encoder, AVHubertVideoEncoder)
    with pytest.raises(BundleError, match="is a video-only model, but an audio-only model"):
        load_bundle(root / "run" / "model", modality="audio")


def test_video_features_for_every_split(video_run, run_experiment):
    root, args, _ = video_run
    run_experiment("N20EMv2/video_only", "train_video_ssl.yaml", *args, "--extract_features",
                   "True")
    annotations = json.loads((root / "n20" / "annotations.json").read_text())
    for song in annotations:
        # named after the video model (the checkpoint tiny.pt)
        feats = load_features(feature_path(root / "data" / "features", f"n20emv2/{song}",
                                           "tiny/video_feats"))
        video = np.load(root / "n20" / "data" / song / "video_50fps.npy", mmap_mode="r")
        assert feats.shape == (len(video), tiny_config().encoder_embed_dim)
        assert feats.dtype == np.float16 and np.isfinite(feats).all()
