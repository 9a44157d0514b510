"""What every recipe's `experiment.py` does, so recipe folders stay thin: parse the command line,
load the YAML, prepare the data (on the main process only), train, export the inference bundle,
and test on every test set."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main

from svt.data.utterances import audio_dataset, csv_folder
from svt.inference.bundle import export_bundle, load_bundle, read_manifest
from svt.training.brain import SELECTION_KEYS, TranscriptionBrain

logger = logging.getLogger(__name__)


def encoder_output_size(encoder) -> int:
    """Feature size of an encoder (used in YAML to size the head)."""
    return int(encoder.output_size)


def load_experiment(argv=None):
    """`(hparams, run_opts)` from `experiment.py hparams.yaml --key value ...`; creates the output
    folder (saving the YAML and overrides there) and initialises DDP under torchrun."""
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    return hparams, run_opts


def prepare_on_main(function, **kwargs):
    """Run a data-preparation function once (main process), others wait for it."""
    run_on_main(function, kwargs=kwargs)


def bundle_settings(hparams) -> dict:
    modality = hparams.get("modality", "audio")
    video = {"video_norm": hparams.get("video_norm", "dataset")} if modality == "video" else {}
    return {
        "modality": modality,
        **video,  # the input normalisation inference must repeat
        "frame_rate": hparams["frame_rate"],
        "sample_rate": hparams.get("sample_rate", 16000),
        "dur_threshold": hparams["dur_threshold"],
        "onset_threshold": hparams["onset_threshold"],
        "offset_threshold": hparams["offset_threshold"],
        "trained_with": {k: hparams.get(k) for k in (
            "ssl_source", "number_of_epochs", "linear_prob_epochs", "selection_metric", "seed")},
    }


def existing_test_sets(test_csvs: dict) -> dict:
    """Test sets whose CSV exists; the optional ones (TONAS, ISMIR2014) may be absent."""
    present = {name: csv for name, csv in test_csvs.items() if Path(csv).is_file()}
    for name in sorted(set(test_csvs) - set(present)):
        logger.info("test set %s not prepared (no %s); skipping it", name, test_csvs[name])
    return present


def make_dataset(hparams, csv_path, train=False):
    """The utterance dataset of a CSV for the recipe's modality (`modality: audio | video`);
    training sets are sorted as `sorting` says and, for video, randomly cropped and flipped."""
    dur, frame_rate = hparams["dur_threshold"], hparams["frame_rate"]
    sorting = hparams.get("sorting") if train else None
    if hparams.get("modality", "audio") == "video":
        from svt.data.video import video_dataset

        return video_dataset(csv_path, dur, frame_rate, train=train, sorting=sorting,
                             seed=hparams.get("seed", 0),
                             per_clip_norm=hparams.get("video_norm", "dataset") == "per_clip")
    return audio_dataset(csv_path, dur, frame_rate, sorting=sorting,
                         wav_for_song=noisy_audio_reader(hparams))


def noisy_audio_reader(hparams):
    """With `noise_type` / `snr_db` set (audio-visual stage), N20EMv2 songs are read from their
    noisy mixtures `data/<song>/noise_data/<type>/SNR_<snr>dB.wav` instead of the clean vocals."""
    noise_type = hparams.get("noise_type")
    if not noise_type or noise_type == "clean":
        return None
    from svt.datasets.musan import noisy_wav_path

    root, snr = hparams["data_folder"], hparams["snr_db"]

    def wav_for_song(dataset, song):
        path = noisy_wav_path(root, song, noise_type, snr)
        if dataset != "n20emv2":
            raise ValueError(f"noisy input exists for N20EMv2 songs only, not {dataset}/{song}")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: noisy mixture missing; make it with "
                                    "N20EMv2/audio_visual/synthesize_noise.py")
        return str(path)

    return wav_for_song


def build_brain(hparams, run_opts):
    return TranscriptionBrain(
        modules={"encoder": hparams["encoder"], "head": hparams["head"]},
        hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])


def train_and_test(hparams, run_opts, train_csv=None, valid_csv=None, test_csvs=None):
    """Train with the Brain's schedule, export the bundle, and evaluate every test set.

    Returns `{test_set: statistics}`.
    """
    train_csv = train_csv or hparams["train_csv"]
    valid_csv = valid_csv or hparams["valid_csv"]
    test_csvs = existing_test_sets(test_csvs or hparams["test_csvs"])
    train_set = make_dataset(hparams, train_csv, train=True)
    valid_set = make_dataset(hparams, valid_csv)
    train_opts = dict(hparams["train_dataloader_opts"])
    if hparams.get("sorting") == "random":
        train_opts["shuffle"] = True

    brain = build_brain(hparams, run_opts)
    brain.fit(hparams["epoch_counter"], train_set, valid_set, train_loader_kwargs=train_opts,
              valid_loader_kwargs=hparams["valid_dataloader_opts"])

    key = hparams["selection_metric"]
    brain.on_evaluate_start(**{f"{SELECTION_KEYS[key]}_key": key})
    if if_main_process():
        export_bundle(hparams["bundle_folder"], hparams["encoder"], hparams["head"],
                      bundle_settings(hparams))
        logger.info("inference bundle written to %s", hparams["bundle_folder"])

    results = {}
    for name, csv_path in test_csvs.items():
        results[name] = brain.evaluate_test_set(name, make_dataset(hparams, csv_path),
                                                hparams["test_dataloader_opts"])
    return results


def evaluate_bundle(hparams, run_opts, test_csvs: dict):
    """Evaluate an exported model (`hparams["model"]`: a bundle or a recipe output folder) on
    prepared test sets, with the bundle's own frame rate, utterance length and thresholds.

    Returns `{test_set: statistics}`.
    """
    model = load_bundle(hparams["model"])
    settings = model.settings
    brain_hparams = dict(hparams)
    for key in ("frame_rate", "dur_threshold", "onset_threshold", "offset_threshold"):
        if hparams.get(key) is None:
            brain_hparams[key] = settings[key]
    brain_hparams.update(encoder=model.encoder, head=model.head)
    brain = TranscriptionBrain(modules={"encoder": model.encoder, "head": model.head},
                               hparams=brain_hparams, run_opts=run_opts)
    dur, frame_rate = brain_hparams["dur_threshold"], brain_hparams["frame_rate"]
    return {name: brain.evaluate_test_set(name, audio_dataset(csv_path, dur, frame_rate),
                                          hparams["test_dataloader_opts"])
            for name, csv_path in existing_test_sets(test_csvs).items()}


def evaluate_dataset(prepare_function, argv=None):
    """An evaluation-only recipe (TONAS, ISMIR2014): prepare the dataset with the model's own frame
    rate and utterance length, then evaluate the model (`--model`) on it."""
    hparams, run_opts = load_experiment(argv)
    manifest = read_manifest(hparams["model"])
    dur = hparams.get("dur_threshold") or manifest["dur_threshold"]
    frame_rate = hparams.get("frame_rate") or manifest["frame_rate"]
    prepare_on_main(prepare_function, data_folder=hparams["data_folder"],
                    save_folder=hparams["prepare_folder"], dur_threshold=dur,
                    frame_rate=frame_rate)
    name = hparams["dataset_name"]
    csv_path = csv_folder(hparams["prepare_folder"], dur) / f"{name}.csv"
    return evaluate_bundle(hparams, run_opts, {name: csv_path})


def extract_features(hparams, run_opts, csvs: dict, name: str):
    """Write per-song encoder features of the trained model (selected checkpoint) for every CSV
    in `csvs` (train, valid and test songs alike) under `hparams["features_folder"]`. A recipe
    without a trained checkpoint is an error: extraction never trains."""
    from svt.training.features import extract_song_features, recover_trained_model

    brain = build_brain(hparams, run_opts)
    recover_trained_model(brain, hparams["selection_metric"])
    written = []
    for split, csv_path in csvs.items():
        logger.info("extracting %s features of %s", name, split)
        written += extract_song_features(brain, make_dataset(hparams, csv_path),
                                         hparams["test_dataloader_opts"],
                                         hparams["features_folder"], name)
    return written


def train_fusion(hparams, run_opts):
    """The audio-visual stage: RCA fusion + head on extracted features under one noise condition
    (matched for train, valid and test), tested on N20EMv2 test and valid.

    Returns `{test_set: statistics}`."""
    from svt.data.features import av_dataset, prepare_av_csvs
    from svt.datasets.musan import condition_name
    from svt.datasets.n20emv2 import prepare_n20emv2_audio
    from svt.training.fusion import FusionBrain, initialise_head_from_bundle

    dur = hparams["dur_threshold"]
    audio_csvs = {}
    run_on_main(lambda: audio_csvs.update(prepare_n20emv2_audio(
        hparams["data_folder"], hparams["prepare_folder"], dur_threshold=dur,
        frame_rate=hparams["frame_rate"])))
    if not audio_csvs:  # other processes: the main one has prepared them
        folder = csv_folder(hparams["prepare_folder"], dur)
        audio_csvs = {f"n20em_{s}": folder / f"n20em_{s}.csv" for s in ("train", "valid", "test")}
    audio_name = condition_name(hparams["noise_type"], hparams["snr_db"]) + "_feats"
    splits = {s: audio_csvs[f"n20em_{s}"] for s in ("train", "valid", "test")}
    av_csvs = prepare_av_csvs(splits, hparams["features_folder"],
                              Path(hparams["output_folder"]) / "csv", dur, audio_name=audio_name)

    def dataset(split, train=False):
        return av_dataset(av_csvs[split], dur, audio_name=audio_name,
                          zero_video=hparams["zero_video"],
                          sorting=hparams.get("sorting") if train else None)

    brain = FusionBrain(modules={"fusion": hparams["fusion"], "head": hparams["head"]},
                        hparams=hparams, run_opts=run_opts, checkpointer=hparams["checkpointer"])
    if hparams.get("init_head_from") and not hparams["checkpointer"].list_checkpoints():
        # Only for a fresh run: resuming must keep the recovered head (the original reloaded the
        # pre-trained head after recovery, undoing the training).
        initialise_head_from_bundle(hparams["head"], hparams["init_head_from"])
    brain.fit(hparams["epoch_counter"], dataset("train", train=True), dataset("valid"),
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    export_audio_visual_bundle(brain, hparams)
    return {name: brain.evaluate_test_set(name, dataset(split), hparams["test_dataloader_opts"])
            for name, split in (("n20em_test", "test"), ("n20em_valid", "valid"))}


def export_audio_visual_bundle(brain, hparams):
    """With `audio_bundle` and `video_bundle` (the models whose features the fusion was trained
    on), write the selected checkpoint as an audio-visual inference bundle to `bundle_folder`."""
    from svt.inference.bundle import export_av_bundle

    if hparams["zero_video"]:
        return None  # the audio-only control is no audio-visual model
    missing = [k for k in ("audio_bundle", "video_bundle") if not hparams.get(k)]
    if missing:
        logger.info("no audio-visual inference bundle: set %s to export one", " and ".join(missing))
        return None
    key = hparams["selection_metric"]
    brain.on_evaluate_start(**{f"{SELECTION_KEYS[key]}_key": key})
    if not if_main_process():
        return None
    settings = {key: hparams[key] for key in ("dur_threshold", "onset_threshold",
                                              "offset_threshold")}
    settings["trained_with"] = {k: hparams.get(k) for k in (
        "noise_type", "snr_db", "number_of_epochs", "selection_metric", "seed")}
    folder = export_av_bundle(hparams["bundle_folder"], hparams["audio_bundle"],
                              hparams["video_bundle"], hparams["fusion"], hparams["head"],
                              settings)
    logger.info("audio-visual inference bundle written to %s", folder)
    return folder
