"""Bad input to the recipes' experiment.py: a clear error before anything is built, prepared or
trained (options, folders, bundles, devices), preparation errors whose printed remedy works, one
line on stderr instead of a traceback, and resuming after a kill while a checkpoint was saved."""
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from speechbrain.utils.checkpoints import Checkpointer
from test_recipes import assets, tiny_args, write_ismir2014  # noqa: F401 (fixture)

import svt.training.experiment as experiment
from svt.audio import AudioError
from svt.data.utterances import PrepareError
from svt.training.checkpoints import STAGING_PREFIX
from svt.training.experiment import run_recipe, user_message
from svt.training.options import OptionError

ROOT = Path(__file__).resolve().parents[1]
MIR_YAML = ROOT / "MIR-ST500" / "hparams" / "train_audio_ssl.yaml"


def mir_args(assets, out, *extra, epochs=1, **options):  # noqa: F811 (the fixture's name)
    return [str(MIR_YAML), "--data_folder", str(assets / "mir"),
            *map(str, tiny_args(assets, out, epochs=epochs, **options)), *map(str, extra)]


@pytest.fixture
def never_built(monkeypatch):
    """The YAML must not be loaded (its objects built): the check has to come first."""
    def fail(*args, **kwargs):
        raise AssertionError("the hparams YAML was loaded before the bad option was reported")
    monkeypatch.setattr(experiment, "load_hyperpyyaml", fail)


@pytest.fixture
def stopped_with(run_experiment):
    """`stopped_with(argv, recipe="MIR-ST500")`: the OptionError message the recipe's main stops
    with."""
    def stopped(argv, recipe="MIR-ST500") -> str:
        with pytest.raises(OptionError) as err:
            run_experiment.main(recipe)(argv)
        return str(err.value)
    return stopped


# ------------------------------------------------------------------------------- options

def test_unknown_selection_metric_is_refused_up_front(assets, tmp_path, never_built, stopped_with):
    message = stopped_with(mir_args(assets, tmp_path, selection_metric="foo"))
    assert message.startswith("--selection_metric: 'foo' is not one of loss, COnPOff_f1")
    # In the YAML itself: the message names the file.
    yaml_file = tmp_path / "custom.yaml"
    yaml_file.write_text(MIR_YAML.read_text().replace("selection_metric: loss",
                                                      "selection_metric: COnPOff"))
    argv = mir_args(assets, tmp_path)
    message = stopped_with([str(yaml_file), *argv[1:]])
    assert message.startswith(f"selection_metric in {yaml_file}: 'COnPOff' is not one of loss, "
                              "COnPOff_f1")
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, expected", [
    ("number_of_epochs", "-3", "-3 is out of range; it must be at least 1"),
    ("batch_size", "0", "0 is out of range; it must be at least 1"),
    ("lr", "-0.001", "-0.001 is out of range; it must be greater than 0"),
    ("onset_threshold", "1.0", "1.0 is out of range; it must be in (0, 1)"),
    ("num_workers", "-1", "-1 is out of range; it must be at least 0"),
    ("lr", ".nan", "nan is out of range; it must be greater than 0"),
])
def test_numbers_out_of_range_are_refused_up_front(assets, tmp_path, never_built, option, value,
                                                   expected, stopped_with):
    assert stopped_with(mir_args(assets, tmp_path, **{option: value})) == f"--{option}: {expected}"


@pytest.mark.parametrize("option, value, expected, shown", [
    ("number_of_epochs", "abc", "expected a whole number, like the default 10 in", "'abc'"),
    ("lr", "xyz", "expected a number, like the default 0.0003 in", "'xyz'"),
    ("batch_size", "1.5", "expected a whole number, like the default 8 in", "1.5"),
    ("freeze_encoder", "yes", "expected True or False, like the default False in", "'yes'"),
])
def test_wrong_typed_override_names_option_type_and_value(assets, tmp_path, never_built, option,
                                                          value, expected, shown, stopped_with):
    message = stopped_with(mir_args(assets, tmp_path, **{option: value}))
    assert message == f"--{option}: {expected} {MIR_YAML}; got {shown}"


def test_nested_and_bare_overrides(assets, tmp_path, never_built, stopped_with):
    message = stopped_with(mir_args(assets, tmp_path, "--tolerances", "{onset_tolerance: abc}"))
    assert message.startswith("--tolerances.onset_tolerance: expected a number") and \
        message.endswith("got 'abc'")
    message = stopped_with(mir_args(assets, tmp_path, "--lr"))  # a value-less non-flag option
    assert message.startswith("--lr: expected a number") and message.endswith("got nothing (null)")


def test_unknown_override_suggests_the_close_key(assets, tmp_path, never_built, stopped_with):
    message = stopped_with(mir_args(assets, tmp_path, "--numbr_of_epochs", 3))
    assert message.startswith("unknown option --numbr_of_epochs:")
    assert "did you mean --number_of_epochs" in message
    # SpeechBrain's own options are suggested too (a misspelt --device is no YAML key either).
    assert "did you mean --device?" in stopped_with(mir_args(assets, tmp_path, "--devcie", "cpu"))


def test_missing_placeholder_or_hparams_file(tmp_path, never_built, stopped_with):
    message = stopped_with([str(MIR_YAML), "--output_folder", str(tmp_path / "run")])
    assert message.startswith("--data_folder is required (MIR-ST500 root: Annotations.json")
    message = stopped_with([str(tmp_path / "train.yaml"), "--data_folder", str(tmp_path)])
    assert message.startswith(f"hparams file {tmp_path / 'train.yaml'} not found")


# --------------------------------------------------------------------- preparation remedies

def test_printed_skip_invalid_remedy_gets_past_the_error(assets, tmp_path, run_experiment):
    data = tmp_path / "MIR-ST500"
    shutil.copytree(assets / "mir", data)
    (data / "wav16kHz" / "test" / "6" / "vocals.wav").unlink()
    argv = [str(MIR_YAML), "--data_folder", str(data),
            *map(str, tiny_args(assets, tmp_path, epochs=1))]
    main = run_experiment.main("MIR-ST500")
    with pytest.raises(PrepareError) as err:
        main(argv)
    message = str(err.value)
    assert "song '6': missing" in message and "--skip_invalid" in message
    # The remedy as printed: the bare flag.
    results = main([*argv, "--skip_invalid"])
    scored = (tmp_path / "run" / "scores_mir_st500_test.csv").read_text().splitlines()
    assert set(results) == {"mir_st500_test"} and [line.split(",")[0] for line in scored[1:]] == \
        ["mir_st500/5"]

    # The evaluation recipes take it too (ISMIR2014 on the bundle just trained).
    songs = json.loads((assets / "mir" / "Annotations.json").read_text())
    write_ismir2014(tmp_path / "ISMIR2014", assets / "mir", {s: songs[s] for s in ("5", "6")})
    (tmp_path / "ISMIR2014" / "male6.wav").unlink()
    evaluate = run_experiment.main("ISMIR2014")
    eval_argv = [str(ROOT / "ISMIR2014" / "hparams" / "evaluate.yaml"), "--data_folder",
                 str(tmp_path / "ISMIR2014"), "--model", str(tmp_path / "run"),
                 "--output_folder", str(tmp_path / "eval"), "--prepare_folder",
                 str(tmp_path / "eval_data"), "--device", "cpu", "--num_workers", "0"]
    with pytest.raises(PrepareError, match=r"(?s)male6.GroundTruth.txt has no audio.*--skip_invalid"):
        evaluate(eval_argv)
    assert set(evaluate([*eval_argv, "--skip_invalid", "True"])) == {"ismir2014"}


# --------------------------------------------------------------------- one line, no traceback

def test_bad_data_folder_is_one_line_and_status_2(assets, tmp_path, capsys, never_built,
                                                  run_experiment):
    main = run_experiment.main("MIR-ST500")
    argv = mir_args(assets, tmp_path)
    argv[argv.index("--data_folder") + 1] = str(tmp_path / "nowhere")
    assert run_recipe(main, "MIR-ST500", argv) == 2
    err = capsys.readouterr().err
    assert err == (f"MIR-ST500: error: --data_folder: {tmp_path / 'nowhere'} does not exist; pass "
                   "the dataset's root folder\n")


def test_wrong_layout_through_the_command_line(assets, tmp_path):
    """The real `python experiment.py` process: exit status 2, `<recipe>: error:`, no
    traceback (the N20EMv2 folder given to the MIR-ST500 recipe)."""
    argv = mir_args(assets, tmp_path)
    argv[argv.index("--data_folder") + 1] = str(assets / "n20")
    proc = subprocess.run([sys.executable, str(ROOT / "MIR-ST500" / "experiment.py"), *argv],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        f"MIR-ST500: error: mir_st500: annotation file {assets / 'n20' / 'Annotations.json'} not "
        "found; expected the layout <data_folder>/Annotations.json + "
        "<data_folder>/wav16kHz/{train,test}/<id>/vocals.wav")


def test_programming_errors_keep_their_traceback():
    def broken(argv):
        raise TypeError("a bug")

    def no_file_named(argv):
        raise OSError("an OS error about no file")

    with pytest.raises(TypeError, match="a bug"):
        run_recipe(broken, "X", [])
    with pytest.raises(OSError, match="no file"):
        run_recipe(no_file_named, "X", [])


def test_error_from_a_dataloader_worker_keeps_only_its_message():
    from torch._utils import ExceptionWrapper
    try:
        raise AudioError("song.wav: cannot read this file")
    except AudioError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(AudioError) as err:
        wrapped.reraise()
    assert "Original Traceback" in str(err.value)
    assert user_message(err.value) == "song.wav: cannot read this file"


# --------------------------------------------------------------------------- neighbours

def test_device_typos(assets, tmp_path, never_built, stopped_with):
    message = stopped_with(mir_args(assets, tmp_path, device="gpu"))
    assert message == "--device 'gpu' is not a device; use auto, cpu, cuda, cuda:N or mps"
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    message = stopped_with(mir_args(assets, tmp_path, device=f"cuda:{count}"))
    assert message.startswith(f"--device cuda:{count}: ")
    assert ("use --device cpu" if count == 0 else f"has {count} CUDA GPU(s)") in message


@pytest.mark.parametrize("recipe", ["TONAS", "ISMIR2014", "SSVD"])
def test_evaluation_recipes_refuse_a_missing_model_up_front(recipe, tmp_path, never_built,
                                                            stopped_with):
    message = stopped_with([str(ROOT / recipe / "hparams" / "evaluate.yaml"), "--data_folder",
                            str(tmp_path), "--model", str(tmp_path / "no_model"),
                            "--output_folder", str(tmp_path / "eval")], recipe=recipe)
    assert message.startswith(f"--model: {tmp_path / 'no_model'}: no model bundle here")


def test_missing_test_set_folder_stops_before_any_preparation(assets, tmp_path, never_built,
                                                              stopped_with):
    message = stopped_with(mir_args(assets, tmp_path, tonas_folder=tmp_path / "TONAS"))
    assert message == f"--tonas_folder: {tmp_path / 'TONAS'} does not exist; pass the dataset's " \
                      "root folder"
    assert not (tmp_path / "data").exists()


def test_fixed_choices_of_other_recipes(tmp_path, never_built, stopped_with):
    av_yaml = ROOT / "N20EMv2" / "audio_visual" / "hparams" / "train_rca.yaml"
    message = stopped_with([str(av_yaml), "--data_folder", str(tmp_path), "--noise_type",
                            "acomp", "--snr_db", "-10"], recipe="N20EMv2/audio_visual")
    assert message.startswith("--noise_type: 'acomp' is not one of null, clean, accomp, babble")
    message = stopped_with([str(av_yaml), "--data_folder", str(tmp_path), "--system", "AVX"],
                           recipe="N20EMv2/audio_visual")
    assert message.startswith("--system: 'AVX' is not one of AV, A")


# --------------------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def trained(assets, tmp_path_factory, run_experiment):  # noqa: F811
    """A MIR-ST500 run trained for one epoch (copy it before changing it)."""
    out = tmp_path_factory.mktemp("trained")
    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, out, epochs=1))
    return out


def copy_of(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "exp")
    out = tmp_path / "exp"
    (first,) = Checkpointer(out / "run" / "save").list_checkpoints()
    return out, first.path


def fake_newer_checkpoint(first, name, seconds_later):
    """A copy of checkpoint `first`, newer by its meta, as SpeechBrain leaves a killed save."""
    fake = first.with_name(f"CKPT+{name}")
    shutil.copytree(first, fake)
    meta = yaml.safe_load((first / "CKPT.yaml").read_text())
    meta["unixtime"] += seconds_later
    (fake / "CKPT.yaml").write_text(yaml.dump(meta))
    return fake


def epochs_logged(out):
    log = (out / "run" / "train_log.txt").read_text()
    return [log.count(f"epoch: {n},") for n in (1, 2)]


def test_resume_skips_checkpoints_left_incomplete(assets, trained, tmp_path, run_experiment):
    out, first = copy_of(trained, tmp_path)
    truncated = fake_newer_checkpoint(first, "truncated", 100)
    head = truncated / "head.ckpt"
    head.write_bytes(head.read_bytes()[: head.stat().st_size // 2])
    missing = fake_newer_checkpoint(first, "missing", 200)
    (missing / "encoder.ckpt").unlink()

    results = run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                             *tiny_args(assets, out, epochs=2))
    assert set(results) == {"mir_st500_test"}
    assert epochs_logged(out) == [1, 1]  # epoch 1 kept, epoch 2 trained once
    log = (out / "run" / "log.txt").read_text()
    assert f"skipping the checkpoint {truncated}: head.ckpt is truncated or damaged" in log
    assert f"skipping the checkpoint {missing}: no encoder.ckpt" in log
    assert f"Loading a checkpoint from {first}\n" in log


def test_kill_while_saving_leaves_no_listed_half_checkpoint(assets, trained, tmp_path,
                                                            monkeypatch, run_experiment):
    out, first = copy_of(trained, tmp_path)
    save_dir = out / "run" / "save"
    listed_at_kill = []
    real_save = torch.save

    def killed_while_writing_the_head(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)) or Path(f).name != "head.ckpt":
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        Path(f).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        # What SpeechBrain itself lists at the moment of the kill.
        listed_at_kill.extend(c.path for c in Checkpointer(save_dir).list_checkpoints())
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed_while_writing_the_head)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                       *tiny_args(assets, out, epochs=2))
    monkeypatch.setattr(torch, "save", real_save)
    assert listed_at_kill == [first]
    # A real kill leaves its staging folder behind: the next save removes it.
    stale = save_dir / f"{STAGING_PREFIX}CKPT+2000-01-01+00-00-00+00"
    shutil.copytree(first, stale)

    run_experiment("MIR-ST500", "train_audio_ssl.yaml", "--data_folder", assets / "mir",
                   *tiny_args(assets, out, epochs=2))
    assert epochs_logged(out) == [1, 2]  # the killed run logged epoch 2 before saving it
    assert not stale.exists()
    (last,) = Checkpointer(save_dir).list_checkpoints()
    assert last.path != first and not any(p.name.startswith(".") for p in save_dir.iterdir())


def test_checkpoint_that_cannot_be_loaded_names_its_folder(assets, trained, tmp_path, capsys,
                                                           run_experiment):
    out, first = copy_of(trained, tmp_path)
    # Intact as a file, but not this model's head (an option changed since it was saved).
    torch.save({"w.weight": torch.zeros(3, 3)}, first / "head.ckpt")
    argv = mir_args(assets, out, epochs=2)
    assert run_recipe(run_experiment.main("MIR-ST500"), "MIR-ST500", argv) == 2
    err = capsys.readouterr().err
    err = err[err.index("MIR-ST500: error: "):].strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"MIR-ST500: error: cannot load the checkpoint {first} (RuntimeError: ")
    assert "size mismatch for w.weight" in err
    assert err.endswith("If the folder is damaged, delete it to resume from the checkpoint "
                            "before it; if the model or its options changed since it was saved, "
                            "train into a new output_folder")


def test_sigterm_stops_a_recipe_through_its_cleanup(tmp_path, capsys):
    """A scheduler's SIGTERM (a time limit) ends the recipe like Ctrl-C: the finally clauses that
    remove half-written files run, and the message says how to resume."""
    import os
    import signal
    import time

    from svt.fileio import atomic_path
    from svt.training.experiment import run_recipe

    def main(argv):
        with atomic_path(tmp_path / "labels.json") as tmp:
            tmp.write_text("half of it")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler interrupts this
        pytest.fail("SIGTERM did not stop the recipe")

    assert run_recipe(main, "MIR-ST500", []) == 143
    assert os.listdir(tmp_path) == []
    assert "MIR-ST500: interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back


# ------------------------------------------------------------------ outputs and nested options

ST_YAML = ROOT / "SingingTranscriber" / "hparams" / "train_pitch_network.yaml"


def test_bundle_folder_holding_the_users_files_is_refused_up_front(assets, tmp_path,
                                                                    never_built, stopped_with):
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    message = stopped_with(mir_args(assets, tmp_path, bundle_folder=mine))
    assert message.startswith(f"--bundle_folder: {mine}: an existing folder that is not an svt "
                              "model bundle")
    assert (mine / "thesis.txt").read_text() == "years of work"
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()
    # The run's own output folder, or the dataset, as the bundle folder: refused too.
    message = stopped_with(mir_args(assets, tmp_path, bundle_folder=tmp_path / "new",
                                    output_folder=tmp_path / "new" / "run"))
    assert message.startswith(f"--bundle_folder: {tmp_path / 'new'}:") and "inside it" in message
    message = stopped_with(mir_args(assets, tmp_path, bundle_folder=assets / "mir"))
    assert message.startswith("--bundle_folder:")
    assert (assets / "mir" / "Annotations.json").is_file()


def test_package_model_folder_is_never_deleted_blindly(tmp_path, never_built, stopped_with):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep")
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--package_model_folder", str(mine)], recipe="SingingTranscriber")
    assert message.startswith(f"--package_model_folder: {mine}: an existing folder")
    assert (mine / "thesis.txt").read_text() == "keep"
    source = (ROOT / "SingingTranscriber" / "experiment.py").read_text()
    assert "rmtree" not in source and "staged_bundle_folder" in source


@pytest.mark.parametrize("value, expected", [
    ("{onset_tolerance: -1}", "--tolerances.onset_tolerance: -1 is out of range; it must be "
                              "greater than 0"),
    ("{pitch_tolerance: 0}", "--tolerances.pitch_tolerance: 0 is out of range; it must be "
                             "greater than 0"),
    ("{offset_ratio: -0.2}", "--tolerances.offset_ratio: -0.2 is out of range"),
    ("{offset_min_tolerance: -0.05}", "--tolerances.offset_min_tolerance: -0.05 is out of "
                                      "range; it must be at least 0"),
])
def test_nested_tolerances_are_range_checked(assets, tmp_path, never_built, value, expected,
                                             stopped_with):
    assert stopped_with(mir_args(assets, tmp_path, "--tolerances", value)).startswith(expected)


@pytest.mark.parametrize("option, value, expected", [
    ("sample_rate", "8000", "--sample_rate: 8000 is not one of 16000"),
    ("label_frame_rate", "1e6", "--label_frame_rate: 1000000.0 is out of range; it must be in "
                                "(0, 1000.0]"),
])
def test_sample_rate_and_huge_label_rate_refused(assets, tmp_path, never_built, option, value,
                                                 expected, stopped_with):
    assert stopped_with(mir_args(assets, tmp_path, **{option: value})).startswith(expected)
    assert not (tmp_path / "data").exists()


def test_recorded_voices_missing_stop_the_recipe_before_anything(tmp_path, never_built,
                                                                  stopped_with, run_experiment,
                                                                  monkeypatch):
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--voice_bank_share", "0.5", "--voice_bank_folder",
                            str(tmp_path / "nowhere")], recipe="SingingTranscriber")
    assert message.startswith("--voice_bank_share: 0.5 needs the recorded voices: no gcin-voice "
                              f"syllables found in {tmp_path / 'nowhere'}")
    assert "apt-get install gcin-voice" in message and "--voice_bank_share 0" in message
    assert not (tmp_path / "run").exists()
    # Festival's voices: Festival and each voice must be installed (their syllables are sung
    # when the corpus is made); speakers must be a list of known names.
    import svt.synthetic.festival_voices as festival_voices

    monkeypatch.setattr(festival_voices.shutil, "which", lambda name: None)
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--voice_bank_share", "0.5", "--voice_bank_speakers", "[kal, lp]"],
                           recipe="SingingTranscriber")
    assert message == ("--voice_bank_share: 0.5 needs the recorded voices: Festival's text2wave "
                       "is not installed; `apt-get install festival festvox-kallpc16k "
                       "festvox-italp16k` (Debian main) installs it with the voices asked for "
                       "(or set --voice_bank_share 0)")
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--voice_bank_share", "0.5", "--voice_bank_speakers", "[]"],
                        recipe="SingingTranscriber") == (
        "--voice_bank_speakers: [] is not a list of speaker names; give e.g. [female] or "
        "[female, kal, lp]")
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--voice_bank_share", "0.5", "--voice_bank_speakers", "[kate]"],
                        recipe="SingingTranscriber").startswith(
        "--voice_bank_share: 0.5 needs the recorded voices: unknown speakers ['kate']; choose "
        "from ['female', 'kal', 'ked', 'lp', 'male', 'pc']")
    assert not (tmp_path / "run").exists()
    # The distillation corpus's recorded voices are checked as early, unless it is not made.
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--voice_bank_share", "0", "--distill_voice_bank_share", "0.5",
                            "--voice_bank_folder", str(tmp_path / "nowhere"),
                            "--distill_corpus_style", "legato"], recipe="SingingTranscriber")
    assert message.startswith("--distill_corpus_style: 'legato' is not one of")
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--voice_bank_share", "0", "--distill_voice_bank_share", "0.5",
                            "--voice_bank_folder", str(tmp_path / "nowhere"),
                            "--distill_pitch_network", "True"], recipe="SingingTranscriber")
    assert message.startswith("--distill_voice_bank_share: 0.5 needs the recorded voices: no "
                              "gcin-voice syllables found")
    assert "--distill_voice_bank_share 0" in message
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--distill_steps", "0"], recipe="SingingTranscriber").startswith(
        "--distill_steps: 0 is out of range")
    # The unlabelled recordings to distil on: a folder that holds audio, a share below 1.
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--distill_recordings", str(tmp_path / "nowhere")],
                        recipe="SingingTranscriber") == (
        f"--distill_recordings: {tmp_path / 'nowhere'} does not exist; pass a folder of your "
        "recordings")
    (tmp_path / "no_audio").mkdir()
    (tmp_path / "no_audio" / "notes.txt").write_text("0.1 0.5 60\n")
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--voice_bank_share", "0", "--distill_voice_bank_share", "0",
                            "--distill_pitch_network", "True",
                            "--distill_recordings", str(tmp_path / "no_audio")],
                           recipe="SingingTranscriber")
    assert message.startswith(f"--distill_recordings: {tmp_path / 'no_audio'}: no audio files")
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--distill_recordings_share", "1"], recipe="SingingTranscriber"
                        ).startswith("--distill_recordings_share: 1 is out of range")
    # Options whose default is null take null or a whole number.
    for key, value in (("corpus_workers", "1.5"), ("corpus_workers", "two"),
                       ("lookahead_frames", "0.5")):
        assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                             f"--{key}", value], recipe="SingingTranscriber"
                            ).startswith(f"--{key}: expected a whole number or null (the default "
                                         "in ")
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--corpus_workers", "0"], recipe="SingingTranscriber"
                        ).startswith("--corpus_workers: 0 is out of range")
    # The pitch network's stride: 1 to 4 frames, and not with a distilled network.
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--pitch_stride", "5"], recipe="SingingTranscriber"
                        ).startswith("--pitch_stride: 5 is out of range")
    assert stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                         "--voice_bank_share", "0", "--distill_voice_bank_share", "0",
                         "--distill_pitch_network", "True", "--pitch_stride", "2"],
                        recipe="SingingTranscriber") == (
        "--pitch_stride: 2 reads one mel frame in 2, but a distilled pitch network "
        "(--distill_pitch_network True) is trained on every frame; use --pitch_stride 1 with "
        "distillation")
    # Without distillation the options pass (and the YAML is loaded: never_built's failure).
    with pytest.raises(AssertionError, match="YAML was loaded"):
        run_experiment.main("SingingTranscriber")(
            [str(ST_YAML), "--output_folder", str(tmp_path / "run"), "--voice_bank_share", "0",
             "--distill_voice_bank_share", "0.5", "--voice_bank_folder",
             str(tmp_path / "nowhere"), "--distill_pitch_network", "False"])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["[30.0, 12.0]", "[0.0, 5.0]", "[5.0]", "[-3, 4]"])
def test_song_seconds_must_be_a_range_of_song_lengths(tmp_path, never_built, value, stopped_with):
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--song_seconds", value], recipe="SingingTranscriber")
    assert message.startswith("--song_seconds:") and "min <= max" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["[0.6, 0.05]", "[-0.1, 0.5]", "[0.05]", "[0.05, 4.0]",
                                   "[0.05, .nan]"])
def test_room_reverb_gain_must_be_a_range_of_reverberation_levels(tmp_path, never_built, value,
                                                                 stopped_with):
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            "--room_reverb_gain", value], recipe="SingingTranscriber")
    assert message.startswith("--room_reverb_gain:") and "0 <= low <= high <= 3.2" in message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, expected", [
    ("pitch_gestures", "1.5", "1.5 is out of range; it must be in [0, 1]"),
    ("voiced_gaps", "-0.2", "-0.2 is out of range; it must be in [0, 1]"),
    ("voiced_gaps", ".nan", "nan is out of range; it must be in [0, 1]"),
])
def test_corpus_shares_out_of_range_are_refused_up_front(tmp_path, never_built, option, value,
                                                         expected, stopped_with):
    message = stopped_with([str(ST_YAML), "--output_folder", str(tmp_path / "run"),
                            f"--{option}", value], recipe="SingingTranscriber")
    assert message == f"--{option}: {expected}"
    assert not (tmp_path / "run").exists()


def test_label_rate_that_the_encoder_does_not_produce(assets, tmp_path, stopped_with):
    # Training: checked once the encoder is built, before any preparation.
    message = stopped_with(mir_args(assets, tmp_path, label_frame_rate=100))
    assert message.startswith("--label_frame_rate: 100 label frames per second give 500 frames "
                              "per 5-s utterance, but the encoder")
    assert not (tmp_path / "data").exists()


def test_evaluation_label_rate_must_match_the_bundle(trained, tmp_path, stopped_with):
    (tmp_path / "dataset").mkdir()  # outputs may not lie inside the data folder
    for recipe in ("TONAS", "SSVD"):
        message = stopped_with([str(ROOT / recipe / "hparams" / "evaluate.yaml"), "--data_folder",
                                str(tmp_path / "dataset"), "--model", str(trained / "run"),
                                "--label_frame_rate", "100", "--prepare_folder",
                                str(tmp_path / "data"), "--output_folder",
                                str(tmp_path / "eval")], recipe=recipe)
        assert message.startswith("--label_frame_rate: 100 label frames per second give 500")
        assert not (tmp_path / "data").exists()


def test_split_without_songs_names_the_csv(assets, tmp_path, capsys, run_experiment):
    data = tmp_path / "mir"
    shutil.copytree(assets / "mir", data)
    shutil.rmtree(data / "wav16kHz" / "test")
    argv = mir_args(assets, tmp_path, "--skip_invalid")
    argv[argv.index("--data_folder") + 1] = str(data)
    assert run_recipe(run_experiment.main("MIR-ST500"), "MIR-ST500", argv) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    csv_path = tmp_path / "data" / "dur_5s" / "mir_st500_test.csv"
    assert err.startswith(f"MIR-ST500: error: no test songs in {csv_path}; splits found: "
                          "mir_st500_train (")
    assert not (tmp_path / "run" / "model").exists()
