"""The shipped model's recipe end to end on a tiny generated corpus, the SSVD evaluation recipe on
its bundle, and the shipped model itself behind `svt.transcribe` / `svt-transcribe`."""

import json

import numpy as np
import pytest
import torch

import svt
from svt.cli import transcribe as transcribe_cli
from svt.inference.bundle import load_bundle, read_manifest
from svt.inference.transcribe import DEFAULT_MODEL
from svt.notes.formats import read_notes
from svt.notes.scoring import METRIC_KEYS
from svt.synthetic.recorded_singing import make_recorded_corpus


def test_recipe_trains_exports_and_evaluates(tmp_path, run_experiment):
    real = make_recorded_corpus(tmp_path / "real_like", 2, seed=99, duration_range=(5.0, 6.0),
                                progress=False)
    results = run_experiment(
        "SingingTranscriber", "train_pitch_network.yaml",
        "--num_train_songs", 3, "--num_valid_songs", 2, "--song_seconds", "[5.0, 7.0]",
        "--voice_bank_share", 0,  # CI has no Debian voices (tests/test_recorded_voices.py)
        "--number_of_epochs", 1, "--hidden_size", 16, "--num_layers", 1, "--batch_size", 4,
        "--corpus_folder", tmp_path / "corpus", "--prepare_folder", tmp_path / "data",
        "--output_folder", tmp_path / "run", "--ssvd_folder", real,
        "--package_model_folder", tmp_path / "package_model", "--device", "cpu",
        # FCPE distilled on a corpus of its own (2 + 1 songs) into a tiny network, in 6 steps.
        "--distill_pitch_network", True, "--distill_corpus_folder", tmp_path / "distill_corpus", "--distill_num_train_songs", 2,
        "--distill_num_valid_songs", 1, "--distill_voice_bank_share", 0, "--distill_dim", 8,
        "--distill_num_layers", 1, "--distill_steps", 6, "--distill_batch_size", 2,
        "--distill_crop_frames", 50, "--distill_warmup_steps", 2,
        # with unlabelled recordings (the two real-like songs, in 5-s pieces) in the draws
        "--distill_recordings", real)
    assert set(results) == {"synthetic_valid", "ssvd"}
    for stats in results.values():
        assert set(METRIC_KEYS) <= set(stats)
    # The model trained with FCPE is kept beside the one that runs the compact network, and so
    # are its scores, under their own names.
    fcpe_results = json.loads((tmp_path / "run" / "results_fcpe.json").read_text())
    assert set(fcpe_results) == {"fcpe_synthetic_valid", "fcpe_ssvd"}
    assert (tmp_path / "run" / "scores_fcpe_ssvd.csv").is_file()
    assert (tmp_path / "run" / "scores_ssvd.csv").is_file()
    fcpe_manifest = read_manifest(tmp_path / "run" / "model_fcpe")
    assert "compact_pitch_network" not in fcpe_manifest["encoder_config"]
    manifest = read_manifest(tmp_path / "run" / "model")
    assert manifest["encoder_type"] == "pitch_network"
    assert manifest["encoder_config"]["compact_pitch_network"] == {
        "dim": 8, "num_layers": 1, "expansion": 2, "kernel_size": 31}
    distilled = manifest["trained_with"]["pitch_network_distillation"]
    assert distilled["steps"] == 6 and distilled["seed"] == 2026
    assert distilled["corpus"].startswith("svt.synthetic.recorded_singing, 2 songs")
    assert 0 <= distilled["held_out_agreement"]["voicing_agreement"] <= 1
    import soundfile as sf

    # 5-6 s songs: one 5-s piece each, and a second when more than 1 s is left.
    pieces = sum(1 + (sf.info(p).frames / sf.info(p).samplerate - 5.0 >= 1.0)
                 for p in sorted(real.glob("*.wav")))
    assert distilled["recordings"] == {"folder": str(real), "pieces": pieces, "share": 0.3}
    assert manifest["label_frame_rate"] == 100.0
    assert manifest["trained_with"]["wall_time_s"] >= 0
    assert manifest["decoder"] == "pitch" and manifest["onset_delay"] == 0.02
    # The two models share the trained context network and head; only the salience differs.
    fcpe_model, model = load_bundle(tmp_path / "run" / "model_fcpe"), load_bundle(
        tmp_path / "run" / "model")
    for name, tensor in fcpe_model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    # What the frozen pitch network computed for the training and validation utterances, and
    # for the distillation corpus's and the recordings' pieces, is kept: at least one file per
    # song (3 + 2 + 2 + 1) and one per piece.
    features = tmp_path / "data" / "pitch_network_features"
    assert len(list(features.glob("*.npy"))) >= 8 + pieces
    assert len(list(features.glob("recording_*.npy"))) == pieces
    assert (tmp_path / "run" / "save" / "pitch_distillation.pt").is_file()
    # The copy for the package is the exported bundle, byte for byte.
    for name in ("weights.pt", "svt_bundle.json"):
        assert (tmp_path / "package_model" / name).read_bytes() == \
            (tmp_path / "run" / "model" / name).read_bytes()

    # The evaluation recipe for the SSVD layout on that bundle.
    evaluated = run_experiment("SSVD", "evaluate.yaml", "--data_folder", real,
                               "--model", tmp_path / "run" / "model",
                               "--output_folder", tmp_path / "ssvd_eval",
                               "--prepare_folder", tmp_path / "ssvd_data",
                               "--device", "cpu", "--num_workers", 0)
    assert set(evaluated) == {"ssvd"}
    scores = (tmp_path / "ssvd_eval" / "scores_ssvd.csv").read_text().splitlines()
    assert len(scores) == 1 + 2


def test_shipped_model_is_small_and_complete():
    files = [p for p in DEFAULT_MODEL.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"svt_bundle.json", "weights.pt", "svt_encoder.json"}
    assert sum(p.stat().st_size for p in files) <= 25 * 2 ** 20
    manifest = read_manifest(DEFAULT_MODEL)
    assert manifest["encoder_type"] == "pitch_network"
    load_bundle(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def sung_song(tmp_path_factory):
    folder = make_recorded_corpus(tmp_path_factory.mktemp("song"), 1, seed=123,
                                  duration_range=(10.0, 10.5), progress=False)
    return folder / "song00000.wav", read_notes(folder / "song00000.txt")


def test_default_model_transcribes_with_sung_pitch(sung_song):
    wav, reference = sung_song
    notes = svt.transcribe(wav)  # no model: the shipped one
    assert len(notes) > 0
    assert np.abs(notes[:, 2] - np.round(notes[:, 2])).max() > 0.05  # fractional pitches
    scores = svt.score_song(reference, notes)
    assert scores["COn_f1"] > 0.5, scores


def test_cli_needs_no_model_argument(sung_song, tmp_path, capsys):
    wav, _ = sung_song
    assert transcribe_cli.main([str(wav), "--out-dir", str(tmp_path / "notes")]) == 0
    notes = read_notes(tmp_path / "notes" / "song00000.json")
    np.testing.assert_allclose(notes, svt.transcribe(wav), atol=1e-6)
    # The MIDI file keeps the sung pitch as a bend on the nearest note.
    np.testing.assert_allclose(read_notes(tmp_path / "notes" / "song00000.mid")[:, 2],
                               notes[:, 2], atol=1e-3)
