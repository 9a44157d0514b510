"""Every audio recipe end to end on a tiny synthetic corpus with a tiny encoder saved locally:
prepare -> train -> evaluate -> bundle; resuming; evaluation-only recipes on a bundle; DDP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from svt.data.utterances import audio_dataset
from svt.inference.bundle import load_bundle
from svt.notes.formats import read_notes
from svt.notes.scoring import METRIC_KEYS
from svt.synthetic.singing import make_corpus
from svt.synthetic.tiny_models import build_tiny_ssl_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("assets")
    make_corpus(root / "mir", layout="mir_st500", num_train=4, num_test=2, song_duration_s=11,
                seed=1)
    make_corpus(root / "n20", layout="n20emv2", num_train=2, num_valid=1, num_test=1,
                song_duration_s=9, seed=2)
    build_tiny_ssl_model(root / "encoder", model_type="wav2vec2")
    # Layer-norm feature encoders get attention masks and are padding-invariant (group-norm
    # ones, like wav2vec2-base, see the padding by design).
    build_tiny_ssl_model(root / "encoder_layer_norm", model_type="wav2vec2",
                         feat_extract_norm="layer")
    return root


def tiny_args(assets, out, epochs=2, **extra):
    args = {"ssl_source": assets / "encoder", "ssl_name": "tiny", "number_of_epochs": epochs,
            "linear_prob_epochs": 1, "num_workers": 0, "batch_size": 4, "eval_batch_size": 3,
            "output_folder": out / "run", "prepare_folder": out / "data",
            "bundle_folder": out / "run" / "model", "device": "cpu", **extra}
    return [x for k, v in args.items() for x in (f"--{k}", v)]


def test_mir_st500_recipe_end_to_end_and_resume(assets, tmp_path, run_experiment):
    results = run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder",
                             assets / "mir", *tiny_args(assets, tmp_path, epochs=1))
    run = tmp_path / "run"
    assert set(results) == {"mir_st500_test"}
    stats = results["mir_st500_test"]
    assert set(METRIC_KEYS) <= set(stats) and np.isfinite(stats["loss"])
    # Per-song outputs: notes (JSON + MIDI) and metrics.
    songs = json.loads((assets / "mir" / "Annotations.json").read_text())
    test_ids = sorted(p.name for p in (assets / "mir" / "wav16kHz" / "test").iterdir())
    for song in test_ids:
        notes = read_notes(run / "predictions" / "mir_st500_test" / f"mir_st500__{song}.json")
        assert notes.shape[1] == 3
        assert (run / "predictions" / "mir_st500_test" / f"mir_st500__{song}.mid").is_file()
    lines = (run / "scores_mir_st500_test.csv").read_text().splitlines()
    assert lines[0].startswith("song,num_ref,num_est,COnPOff_precision")
    assert len(lines) == 1 + len(test_ids)
    assert int(lines[1].split(",")[1]) == len(songs[test_ids[0]])
    log = (run / "train_log.txt").read_text()
    assert log.count("epoch: 1,") == 1

    # "Interrupted" after epoch 1: a second run with 2 epochs resumes at epoch 2.
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=2))
    log = (run / "train_log.txt").read_text()
    assert log.count("epoch: 1,") == 1 and log.count("epoch: 2,") == 1

    # The bundle reproduces the recipe's own predictions without the YAML.
    model = load_bundle(run / "model")
    assert model.label_frame_rate == 49.8 and model.frame_rate == 50.0
    assert model.settings["onset_threshold"] == 0.4
    wav, sr = sf.read(assets / "mir" / "wav16kHz" / "test" / test_ids[0] / "vocals.wav",
                      dtype="float32")
    frames = model.predict_frames(wav)
    assert len(frames[0]) == model.encoder.num_frames(len(wav))


def test_selected_checkpoint_is_the_one_exported(assets, tmp_path, run_experiment):
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=2, selection_metric="COnPOff_f1"))
    from speechbrain.utils.checkpoints import Checkpointer
    ckpt = Checkpointer(tmp_path / "run" / "save").find_checkpoint(max_key="COnPOff_f1")
    head = torch.load(ckpt.paramfiles["head"], weights_only=True)
    bundle = torch.load(tmp_path / "run" / "model" / "weights.pt", weights_only=True)
    torch.testing.assert_close(bundle["head.w.weight"], head["w.weight"])


def test_any_eval_batch_size_gives_the_same_scores(assets, tmp_path, run_experiment):
    # Same trained model, evaluated with batch size 1 and 3: identical song predictions.
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=1, eval_batch_size=1,
                              ssl_source=assets / "encoder_layer_norm"))
    first = (tmp_path / "run" / "scores_mir_st500_test.csv").read_text()
    notes1 = sorted((tmp_path / "run" / "predictions").rglob("*.json"))
    texts1 = [p.read_text() for p in notes1]
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=1, eval_batch_size=3,
                              ssl_source=assets / "encoder_layer_norm"))
    assert [p.read_text() for p in notes1] == texts1
    assert (tmp_path / "run" / "scores_mir_st500_test.csv").read_text() == first


def write_tonas(folder, corpus, annotations):
    """TONAS's own distribution: 44.1 kHz wav + .notes.Corrected (tuning line, onset, duration,
    fractional MIDI, energy) in subfolders."""
    for i, (song, notes) in enumerate(annotations.items()):
        wav, sr = sf.read(corpus / "wav16kHz" / "test" / song / "vocals.wav", dtype="float32")
        import librosa
        wav44 = librosa.resample(wav, orig_sr=sr, target_sr=44100)
        sub = folder / ("Deblas" if i % 2 else "Martinetes1")
        sub.mkdir(parents=True, exist_ok=True)
        sf.write(sub / f"{i:02d}-song{song}.wav", wav44, 44100)
        rows = [f"{a:.4f} {b - a:.4f} {p + 0.13:.3f} 0.01" for a, b, p in notes]
        (sub / f"{i:02d}-song{song}.notes.Corrected").write_text("-7.2\n" + "\n".join(rows) + "\n")


def write_ismir2014(folder, corpus, annotations):
    folder.mkdir(parents=True, exist_ok=True)
    for song, notes in annotations.items():
        wav, sr = sf.read(corpus / "wav16kHz" / "test" / song / "vocals.wav", dtype="float32")
        sf.write(folder / f"male{song}.wav", wav, sr)
        rows = [f"{a:.4f},{b - a:.4f},{p}" for a, b, p in notes]
        (folder / f"male{song}.GroundTruth.txt").write_text("\n".join(rows) + "\n")


def test_evaluation_recipes_on_a_bundle(assets, tmp_path, run_experiment):
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=1))
    bundle = tmp_path / "run"
    songs = json.loads((assets / "mir" / "Annotations.json").read_text())
    test_ids = sorted(p.name for p in (assets / "mir" / "wav16kHz" / "test").iterdir())
    test_songs = {s: songs[s] for s in test_ids}
    write_tonas(tmp_path / "TONAS", assets / "mir", test_songs)
    write_ismir2014(tmp_path / "ISMIR2014", assets / "mir", test_songs)
    for recipe, data in (("TONAS", tmp_path / "TONAS"), ("ISMIR2014", tmp_path / "ISMIR2014")):
        name = recipe.lower()
        results = run_experiment(recipe, "evaluate.yaml", "--data_folder", data, "--model", bundle,
                                 "--output_folder", tmp_path / f"{name}_eval",
                                 "--prepare_folder", tmp_path / f"{name}_data",
                                 "--device", "cpu", "--num_workers", 0)
        assert set(results) == {name}
        summary = json.loads((tmp_path / f"{name}_eval" / f"summary_{name}.json").read_text())
        assert set(METRIC_KEYS) <= set(summary)
        scores = (tmp_path / f"{name}_eval" / f"scores_{name}.csv").read_text().splitlines()
        assert len(scores) == 1 + len(test_ids)


def test_song_without_predicted_notes_scores_zero(assets, tmp_path, run_experiment):
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=1))
    # A bundle whose onset output never fires.
    bundle = tmp_path / "silent"
    shutil.copytree(tmp_path / "run" / "model", bundle)
    weights = torch.load(bundle / "weights.pt", weights_only=True)
    weights["head.w.bias"][0] = -1e4
    torch.save(weights, bundle / "weights.pt")
    write_ismir2014(tmp_path / "ISMIR2014", assets / "mir",
                    {"5": json.loads((assets / "mir" / "Annotations.json").read_text())["5"]})
    results = run_experiment("ISMIR2014", "evaluate.yaml", "--data_folder",
                             tmp_path / "ISMIR2014", "--model", bundle,
                             "--output_folder", tmp_path / "eval", "--prepare_folder",
                             tmp_path / "data", "--device", "cpu", "--num_workers", 0)
    assert all(results["ismir2014"][k] == 0.0 for k in METRIC_KEYS)
    assert read_notes(tmp_path / "eval" / "predictions" / "ismir2014" /
                      "ismir2014__male5.json").shape == (0, 3)


def test_n20emv2_audio_recipe_with_mix_train(assets, tmp_path, run_experiment):
    results = run_experiment("N20EMv2/audio_only", "train_audio_ssl.yaml", "--data_folder",
                             assets / "n20", "--mir_st500_folder", assets / "mir",
                             *tiny_args(assets, tmp_path, epochs=1))
    assert set(results) == {"n20em_test", "n20em_valid", "mir_st500_test"}
    mix = (tmp_path / "data" / "dur_5s" / "mix_train.csv").read_text().splitlines()
    datasets = {line.split(",")[2] for line in mix[1:]}
    assert datasets == {"mir_st500", "n20emv2"}
    log = (tmp_path / "run" / "train_log.txt").read_text()
    assert "valid COff_f1" in log and "test set: n20em_test" in log
    with pytest.raises(SystemExit, match="mir_st500_folder"):
        run_experiment("N20EMv2/audio_only", "train_audio_ssl.yaml", "--data_folder",
                       assets / "n20", *tiny_args(assets, tmp_path / "x", epochs=1))


def test_partial_reads_equal_whole_file_slices(assets, tmp_path):
    from svt.datasets.mir_st500 import prepare_mir_st500
    csvs = prepare_mir_st500(assets / "mir", tmp_path / "data", progress=False)
    dataset = audio_dataset(csvs["mir_st500_train"], 5, 49.8)
    item = dataset[1]  # second (last) utterance of the first 11-s song: 5 s .. end
    assert item["utter_index"] == 2 and item["utter_count"] == 2
    wav_path = assets / "mir" / "wav16kHz" / "train" / "1" / "vocals.wav"
    whole, _ = sf.read(wav_path, dtype="float32")
    np.testing.assert_array_equal(item["sig"].numpy(), whole[80000:])
    first = dataset[0]
    np.testing.assert_array_equal(first["sig"].numpy(), whole[:80000])
    labels = np.load(tmp_path / "data" / "labels" / "mir_st500" / "1.npy")
    np.testing.assert_array_equal(item["labels"].numpy(), labels[249:])
    np.testing.assert_array_equal(first["labels"].numpy(), labels[:249])


def test_torchrun_two_processes_gloo(assets, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29533", str(ROOT / "MIR-ST500" / "experiment.py"),
           str(ROOT / "MIR-ST500" / "hparams" / "train_audio_ssl.yaml"),
           "--data_folder", str(assets / "mir"), "--distributed_backend", "gloo",
           *map(str, tiny_args(assets, tmp_path, epochs=1))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = (tmp_path / "run" / "train_log.txt").read_text()
    assert log.count("epoch: 1,") == 1 and "test set: mir_st500_test" in log
    assert (tmp_path / "run" / "model" / "weights.pt").is_file()


def test_head_and_loss_weight_are_swapped_by_yaml_overrides_only(assets, tmp_path, run_experiment):
    """A different head (MLP instead of linear) and another loss weight, by overrides alone: the
    recipe trains it, the checkpoint and the bundle hold it, and the bundle reloads it."""
    # A sequence of constructor arguments: HyperPyYAML merges a mapping override into the
    # original's arguments (keeping its class), but a sequence replaces the whole object.
    head_override = ("!new:svt.models.head.MLPHead [!apply:svt.training.experiment."
                     "encoder_output_size [!ref <encoder>], 24, 2]")
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, tmp_path, epochs=1, onset_pos_weight=3.0),
                   "--head", head_override)
    run = tmp_path / "run"
    hyperparams = (run / "hyperparams.yaml").read_text()
    assert "svt.models.head.MLPHead" in hyperparams and "onset_pos_weight: 3.0" in hyperparams
    manifest = json.loads((run / "model" / "svt_bundle.json").read_text())
    assert manifest["head_type"] == "mlp"
    assert manifest["head_config"]["hidden_size"] == 24
    assert manifest["head_config"]["num_layers"] == 2
    model = load_bundle(run / "model")
    assert type(model.head).__name__ == "MLPHead"
    weights = torch.load(run / "model" / "weights.pt", weights_only=True)
    # 2 hidden layers + the output layer, each a weight and a bias; no linear `w` head.
    assert sorted(k for k in weights if k.startswith("head.")) == [
        "head.layers.0.bias", "head.layers.0.weight", "head.layers.3.bias",
        "head.layers.3.weight", "head.layers.6.bias", "head.layers.6.weight"]
    features = model.encoder(torch.zeros(1, 16000))
    assert model.head(features).shape[-1] == 20
