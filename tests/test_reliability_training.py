"""Second pass over preparation and training (issue 21): the dataset folder behind a symbolic
link, freshness from content instead of times, non-finite training, resuming with other options,
`$` and over-long song ids, and a damaged brain.ckpt."""
import json
import logging
import os
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer
from test_prepare import make_mir, write_wav
from test_recipes import assets, tiny_args  # noqa: F401 (fixture)

import svt.datasets.songs as songs_module
from svt.data.utterances import PrepareError, audio_dataset, read_csv
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.notes.labels import notes_to_frames
from svt.training.brain import TrainingDivergedError, TranscriptionBrain
from svt.training.checkpoints import CheckpointLoadError, CompleteCheckpointer
from svt.training.experiment import check_outputs_outside_inputs, run_recipe
from svt.training.options import OptionError, check_options
from svt.training.run_settings import RUN_SETTINGS_FILE, RunSettingsError

ROOT = Path(__file__).resolve().parents[1]
MIR_YAML = ROOT / "MIR-ST500" / "hparams" / "train_audio_ssl.yaml"


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


def small_mir(root):
    return make_mir(root, {"1": ("train", 3.0), "2": ("train", 3.0), "3": ("test", 3.0)})


# ------------------------------------------------------------------- 1. symbolic links

def test_prepare_folder_through_a_symlink_into_the_dataset_is_refused(tmp_path):
    data = small_mir(tmp_path / "MIR")
    before = files_in(data)
    link = tmp_path / "link"
    link.symlink_to(data / "wav16kHz")
    with pytest.raises(PrepareError, match=r"prepare_folder .*link/prep is inside the data folder "
                                           r".*through a symbolic link"):
        prepare_mir_st500(data, link / "prep", num_valid=1, progress=False)
    # The data folder itself reached through a link: the same rule.
    data_link = tmp_path / "data_link"
    data_link.symlink_to(data)
    with pytest.raises(PrepareError, match="is inside the data folder"):
        prepare_mir_st500(data_link, data / "prep", num_valid=1, progress=False)
    assert files_in(data) == before


def test_output_folder_inside_the_dataset_is_refused(tmp_path):
    data = small_mir(tmp_path / "MIR")
    link = tmp_path / "link"
    link.symlink_to(data / "wav16kHz")
    for key in ("output_folder", "bundle_folder", "prepare_folder"):
        hparams = {"data_folder": str(data), key: str(link / "run")}
        with pytest.raises(OptionError, match=rf"--{key} .* is inside the data folder .*"
                                              r"\(--data_folder\); svt never writes into a"):
            check_outputs_outside_inputs(hparams)
    check_outputs_outside_inputs({"data_folder": str(data), "output_folder": str(tmp_path / "r")})


# ------------------------------------------------------------------- 2. freshness from content

def test_changed_annotations_with_an_older_time_are_prepared_again(tmp_path, monkeypatch):
    data = small_mir(tmp_path / "MIR")
    save = tmp_path / "prep"
    written = []
    real_save = songs_module.save_labels
    monkeypatch.setattr(songs_module, "save_labels", lambda path, labels: (
        written.append(Path(path).name), real_save(path, labels)))

    def run():
        written.clear()
        return prepare_mir_st500(data, save, num_valid=1, progress=False)

    run()
    assert sorted(written) == ["1.npy", "2.npy", "3.npy"]
    # New notes for song 3, copied in with an old time (tar, cp -p, rsync -t).
    annotations = json.loads((data / "Annotations.json").read_text())
    annotations["3"] = [[0.5, 1.5, 70.0]]
    (data / "Annotations.json").write_text(json.dumps(annotations))
    os.utime(data / "Annotations.json", (1_000_000_000, 1_000_000_000))
    run()
    assert written == ["3.npy"]
    labels = np.load(save / "labels/mir_st500/3.npy")
    np.testing.assert_array_equal(labels, notes_to_frames(np.array([[0.5, 1.5, 70.0]]),
                                                          len(labels), 49.8))
    # Replaced audio with an old time: that song again.
    write_wav(data / "wav16kHz/train/1/vocals.wav", 4.0, freq=330.0)
    os.utime(data / "wav16kHz/train/1/vocals.wav", (1_000_000_000, 1_000_000_000))
    run()
    assert written == ["1.npy"]
    # A folder prepared before the records existed still works: prepared again once.
    for record in (save / "labels/mir_st500").glob("*.inputs.json"):
        record.unlink()
    run()
    assert sorted(written) == ["1.npy", "2.npy", "3.npy"]
    run()
    assert written == []


# ------------------------------------------------------------------- 5. names

def test_dollar_in_song_id_and_data_folder_reads_back(tmp_path):
    data = make_mir(tmp_path / "data$v2" / "MIR", {"a$b": ("train", 3.0), "2": ("train", 3.0),
                                                   "$HOME": ("test", 3.0)})
    csvs = prepare_mir_st500(data, tmp_path / "prep$x", num_valid=1, progress=False)
    songs = []
    for name in ("mir_st500_train", "mir_st500_valid", "mir_st500_test"):
        dataset = audio_dataset(csvs[name], 5, 49.8)
        for item in dataset:
            songs.append(item["song_key"])
            assert "$" in item["song_anno"] and Path(item["song_anno"]).is_file()
            assert item["labels"].shape[1] == 4 and len(item["sig"]) > 0
    assert sorted(songs) == ["mir_st500/$HOME", "mir_st500/2", "mir_st500/a$b"]


def test_song_id_too_long_for_a_file_name(tmp_path):
    long_id = "x" * 240
    data = make_mir(tmp_path / "MIR", {long_id: ("train", 3.0), "2": ("train", 3.0),
                                       "3": ("test", 3.0)})
    csvs = prepare_mir_st500(data, tmp_path / "prep", num_valid=1, progress=False)
    header = read_csv(csvs["mir_st500_train"])[0]
    all_rows = [dict(zip(header, r)) for name in csvs for r in read_csv(csvs[name])[1]]
    (row,) = [r for r in all_rows if r["song"] == long_id]
    assert len(Path(row["frame_anno"]).name) < 255 and Path(row["frame_anno"]).is_file()
    assert row["ID"] == f"mir_st500_{long_id}_1"
    item = next(iter(audio_dataset(csvs["mir_st500_train"], 5, 49.8)))
    assert item["labels"].shape[1] == 4


def test_truncated_brain_ckpt_is_one_line_naming_the_file(tmp_path, caplog):
    holder = types.SimpleNamespace(step=3, avg_train_loss=0.5, optimizer_step=3)
    checkpointer = CompleteCheckpointer(tmp_path / "save")
    checkpointer.add_recoverable("brain", holder, custom_save_hook=sb.core.Brain._save,
                                 custom_load_hook=sb.core.Brain._recover)
    saved = checkpointer.save_checkpoint()
    assert Checkpointer(tmp_path / "save").list_checkpoints()
    brain_file = saved.path / "brain.ckpt"
    for damaged in ("avg_tr", "avg_train_loss: 0.5\n", "[1, 2"):
        brain_file.write_text(damaged)
        with caplog.at_level(logging.WARNING):
            assert checkpointer.list_checkpoints() == []
        assert "brain.ckpt is truncated or damaged" in caplog.text
        with pytest.raises(CheckpointLoadError) as err:
            checkpointer.load_checkpoint(saved)
        message = str(err.value)
        assert "\n" not in message and str(saved.path) in message
        assert "brain.ckpt is truncated or damaged" in message
        checkpointer._reported.clear()
        caplog.clear()


# ------------------------------------------------------------------- 3. non-finite training

@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_max_grad_norm_must_be_a_finite_positive_number(tmp_path, value):
    hparams_file, run_opts, overrides = sb.parse_arguments(
        [str(MIR_YAML), "--data_folder", str(tmp_path), "--max_grad_norm", value])
    with pytest.raises(OptionError, match=r"--max_grad_norm: .* is out of range; it must be "
                                          r"greater than 0"):
        check_options(hparams_file, overrides, run_opts)


def test_nan_loss_stops_training_and_nothing_is_exported(assets, tmp_path, monkeypatch,  # noqa: F811
                                                         capsys, run_experiment):
    real_loss = TranscriptionBrain.training_loss

    def nan_loss(self, logits, batch):
        return real_loss(self, logits, batch) * float("nan")

    monkeypatch.setattr(TranscriptionBrain, "training_loss", nan_loss)
    argv = [str(MIR_YAML), "--data_folder", str(assets / "mir"),
            *map(str, tiny_args(assets, tmp_path, epochs=1))]
    assert run_recipe(run_experiment.main("MIR-ST500"), "MIR-ST500", argv) == 2
    (err,) = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("MIR-ST500: error:")]
    assert err.startswith("MIR-ST500: error: training diverged at epoch 1, step 1: the training "
                          "loss is nan. Likely cause: a learning rate too high (--lr 0.0003, "
                          "--lr_ssl 5e-05)")
    assert not (tmp_path / "run" / "model").exists()
    assert not list((tmp_path / "run" / "save").glob("CKPT*"))


@pytest.fixture(scope="module")
def trained(assets, tmp_path_factory, run_experiment):  # noqa: F811
    """A MIR-ST500 run trained for one epoch (copy it before changing it)."""
    out = tmp_path_factory.mktemp("trained")
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, out, epochs=1))
    return out


def test_selected_checkpoint_with_nan_weights_is_never_exported(assets, trained,  # noqa: F811
                                                                 tmp_path, run_experiment):
    out = tmp_path / "exp"
    shutil.copytree(trained, out)
    shutil.rmtree(out / "run" / "model")
    (ckpt,) = Checkpointer(out / "run" / "save").list_checkpoints()
    head = torch.load(ckpt.path / "head.ckpt", weights_only=True)
    name = next(iter(head))
    head[name] = torch.full_like(head[name], float("nan"))
    torch.save(head, ckpt.path / "head.ckpt")
    with pytest.raises(TrainingDivergedError, match=rf"the selected checkpoint has non-finite "
                                                    rf"\(NaN or infinite\) parameters \(head\."):
        run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                       *tiny_args(assets, out, epochs=1))
    assert not (out / "run" / "model").exists()


# ------------------------------------------------------------------- 4. resuming

def test_resume_with_other_settings_names_them(assets, trained, tmp_path,  # noqa: F811
                                               run_experiment):
    out = tmp_path / "exp"
    shutil.copytree(trained, out)
    recorded = json.loads((out / "run" / RUN_SETTINGS_FILE).read_text())
    assert recorded["dur_threshold"] == 5 and recorded["lr"] == 0.0003
    hyperparams = (out / "run" / "hyperparams.yaml").read_text()
    manifest = (out / "run" / "model" / "svt_bundle.json").read_text()
    with pytest.raises(RunSettingsError) as err:
        run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                       *tiny_args(assets, out, epochs=1), "--lr", 0.9, "--dur_threshold", 3,
                       "--label_frame_rate", 49.6667)
    message = str(err.value)
    assert "--dur_threshold 3 (the run's: 5)" in message
    assert "--label_frame_rate 49.6667 (the run's: 49.8)" in message
    assert "--lr 0.9 (the run's: 0.0003)" in message
    assert "Train into a new --output_folder" in message and "\n" not in message
    # Nothing of the run was touched.
    assert (out / "run" / "hyperparams.yaml").read_text() == hyperparams
    assert (out / "run" / "model" / "svt_bundle.json").read_text() == manifest
    assert not (out / "data" / "dur_3s").exists()
