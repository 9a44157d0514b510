"""What the recipes' `experiment.py` files share outside their Brain: the command line (options
checked before anything is built, `svt.training.options`), the entry point that reports bad input
as one line (`run_recipe`), data preparation on the main process, naming, bundle settings,
test-set evaluation, feature extraction, and the evaluation of an exported bundle (TONAS,
ISMIR2014, SSVD)."""
from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main

from svt.audio import SAMPLE_RATE
from svt.data.utterances import audio_dataset, csv_folder, read_csv
from svt.datasets.layout import folder_inside
from svt.datasets.musan import NoiseError, noisy_wav_path
from svt.errors import SvtUserError
from svt.fileio import Terminated, stop_signals_raise
from svt.inference.bundle import DEFAULT_MODEL, load_bundle
from svt.models.head import ALLOWED_LENGTH_DIFFERENCE
from svt.notes.labels import num_label_frames
from svt.training.brain import TranscriptionBrain
from svt.training.features import extract_song_features, recover_trained_model
from svt.training.options import (
    BUNDLE_TARGETS,
    INPUT_FOLDERS,
    RUN_FOLDERS,
    OptionError,
    check_choices,
    check_options,
)
from svt.training.run_settings import check_run_settings

logger = logging.getLogger(__name__)


def encoder_output_size(encoder) -> int:
    """Feature size of an encoder (used in YAML to size the head)."""
    return int(encoder.output_size)


def model_name(source) -> str:
    """A folder-safe name of a model source (hub id, local folder or checkpoint file): its last
    path component without a checkpoint suffix, so `ssl_name` follows `ssl_source` and two models
    never share an output folder or a feature file."""
    path = Path(str(source).rstrip("/\\"))
    name = (path.stem if path.suffix in (".pt", ".pth", ".ckpt") else path.name) or str(source)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def load_experiment(argv=None):
    """`(hparams, run_opts)` from `experiment.py hparams.yaml --key value ...`; checks the options
    first (OptionError, before any object of the YAML is built), creates the output folder (saving
    the YAML and overrides there) and initialises DDP under torchrun."""
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:] if argv is None else argv)
    overrides = check_options(hparams_file, overrides, run_opts)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file) as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    check_choices(hparams, lambda key: f"{key} (as built from {hparams_file})")
    if hparams.get("modality") == "audio" and hparams.get("encoder") is not None:
        check_label_frame_rate(hparams["encoder"], hparams["label_frame_rate"],
                               hparams["dur_threshold"], "--label_frame_rate")
    check_outputs_outside_inputs(hparams)
    # Before the output folder is written to (its hyperparams.yaml is replaced below): resuming
    # with options the checkpoints were not made with stops here.
    check_run_settings(hparams, write=if_main_process())
    sb.create_experiment_directory(experiment_directory=hparams["output_folder"],
                                   hyperparams_to_save=hparams_file, overrides=overrides)
    return hparams, run_opts


def check_outputs_outside_inputs(hparams) -> None:
    """No folder a run writes (RUN_FOLDERS, BUNDLE_TARGETS: `--output_folder`, `--prepare_folder`,
    ...) lies in a dataset folder it reads (INPUT_FOLDERS), comparing real paths (a symbolic
    link into the dataset is inside it): svt never writes into a dataset. OptionError naming
    both options."""
    def folder(key):
        value = hparams.get(key)
        return value if isinstance(value, (str, Path)) and str(value) else None

    for out_key in (*RUN_FOLDERS, *BUNDLE_TARGETS):
        out = folder(out_key)
        if out is None:
            continue
        for data_key in INPUT_FOLDERS:
            data = folder(data_key)
            if data is None or not Path(data).is_dir():
                continue
            inside = folder_inside(out, data)
            if inside:
                raise OptionError(f"--{out_key} {out} {inside} (--{data_key}); svt never writes "
                                  f"into a dataset, choose a --{out_key} outside it")


def check_label_frame_rate(encoder, label_frame_rate, dur_threshold, option: str) -> None:
    """The labels made at `label_frame_rate` have as many frames per utterance of `dur_threshold`
    seconds as the audio encoder gives (within the loss's ALLOWED_LENGTH_DIFFERENCE), as the Brain
    requires: checked before preparation, which otherwise runs to completion first and the run
    then fails on its first batch ("model output has N frames but the labels have M")."""
    rate = getattr(encoder, "frame_rate", None)
    if rate is None or label_frame_rate is None or dur_threshold is None:
        return  # one output frame per input frame (video), or nothing to compare
    num_samples = int(round(float(dur_threshold) * SAMPLE_RATE))
    produced = int(encoder.num_frames(num_samples))
    labels = num_label_frames(num_samples, SAMPLE_RATE, float(label_frame_rate))
    if abs(produced - labels) > ALLOWED_LENGTH_DIFFERENCE:
        suggested = produced / float(dur_threshold)
        raise OptionError(f"{option}: {label_frame_rate:g} label frames per second give {labels} "
                          f"frames per {float(dur_threshold):g}-s utterance, but the encoder "
                          f"({type(encoder).__name__}, {rate:g} frames/s) produces {produced}; "
                          f"use the model's rate ({suggested:.4g}), or leave it unset")


def run_recipe(main, recipe: str, argv=None) -> int:
    """Run a recipe's `main(argv)` as a command: an error about the user's input (any
    `svt.errors.SvtUserError`, whatever module raised it, or a file the system cannot find or
    open) is printed as `<recipe>: error: ...` on stderr with exit status 2, like argparse's;
    anything else (a bug) keeps its traceback."""
    try:
        with stop_signals_raise():  # a scheduler's SIGTERM runs the clean-up of temporary files too
            main(sys.argv[1:] if argv is None else argv)
    except (KeyboardInterrupt, Terminated) as stop:
        print(f"{recipe}: interrupted; outputs and checkpoints written so far are complete: run "
              "the same command again to resume", file=sys.stderr)
        return getattr(stop, "exit_status", 130)
    except SvtUserError as err:
        print(f"{recipe}: error: {user_message(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        if err.filename is None:
            raise
        print(f"{recipe}: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    _end_process_group()
    return 0


def _end_process_group() -> None:
    """Destroy the DDP process group of a run that ended well. Left to the interpreter's exit,
    gloo's worker threads can still hold tensors while Python is torn down, and a rank then
    aborts ("terminate called without an active exception", SIGABRT; described in
    pytorch/pytorch#179291), failing a finished run. Destroying the group alone still left that
    abort in about one run in ten: `destroy_process_group` only drops torch's own references
    (pytorch/pytorch#96017), and the run's DDP wrappers, kept alive by the Brain's reference
    cycles, held the group until the interpreter's teardown. So the cycles are collected first
    and every rank waits for the others before the group goes. Not after an error: a rank still
    inside a collective would hang."""
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def user_message(err: BaseException) -> str:
    """The message of a user error; one raised in a DataLoader worker arrives wrapped in the
    worker's traceback ("Caught AudioError in DataLoader worker process 0. Original Traceback
    ..."), of which only the original message is kept."""
    message = str(err)
    if "Original Traceback" not in message:
        return message
    cls = type(err)
    for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        if name in message:
            return message.rsplit(name, 1)[1].strip()
    return message


def preparation_kwargs(hparams) -> dict:
    """The arguments every data preparation of a recipe shares: where, the utterance length, the
    label frame rate, and whether songs with bad input stop the run (the default) or are skipped
    with a warning each (`--skip_invalid`, as for prepare.py)."""
    return dict(prepare_folder=hparams["prepare_folder"], dur_threshold=hparams["dur_threshold"],
                label_frame_rate=hparams["label_frame_rate"], strict=not hparams["skip_invalid"])


def prepare_on_main(function, **kwargs):
    """Run a data-preparation function once (main process), others wait for it."""
    run_on_main(function, kwargs=kwargs)


def bundle_settings(hparams) -> dict:
    """What inference must know of a training run: modality, the label frame rate the frame
    predictions were trained at, utterance length and decoding thresholds."""
    video = {"video_norm": hparams["video_norm"]} if hparams["modality"] == "video" else {}
    return {
        "modality": hparams["modality"],
        **video,  # the input normalisation inference must repeat
        "label_frame_rate": hparams["label_frame_rate"],
        "sample_rate": hparams["sample_rate"],
        "dur_threshold": hparams["dur_threshold"],
        "onset_threshold": hparams["onset_threshold"],
        "offset_threshold": hparams["offset_threshold"],
        "decoder": hparams.get("decoder", "paper"),
        "onset_delay": hparams.get("onset_delay", 0.0),
        "trained_with": {k: hparams.get(k) for k in (
            "ssl_source", "number_of_epochs", "linear_prob_epochs", "selection_metric", "seed")},
    }


def existing_test_sets(test_csvs: dict) -> dict:
    """Test sets whose CSV exists; the optional ones (TONAS, ISMIR2014) may be absent."""
    present = {name: csv for name, csv in test_csvs.items() if Path(csv).is_file()}
    for name in sorted(set(test_csvs) - set(present)):
        logger.info("test set %s not prepared (no %s); skipping it", name, test_csvs[name])
    return present


def noisy_audio_reader(hparams):
    """With `noise_type` / `snr_db` set (audio-visual stage), N20EMv2 songs are read from their
    noisy mixtures `data/<song>/noise_data/<type>/SNR_<snr>dB.wav` instead of the clean vocals."""
    noise_type = hparams["noise_type"]
    if not noise_type or noise_type == "clean":
        return None
    root, snr = hparams["data_folder"], hparams["snr_db"]

    def wav_for_song(dataset, song):
        path = noisy_wav_path(root, song, noise_type, snr)
        if dataset != "n20emv2":
            raise NoiseError(f"noisy input exists for N20EMv2 songs only, not {dataset}/{song}; "
                             "--noise_type is for N20EMv2 feature extraction (--extract_features "
                             "True)")
        if not path.is_file():
            raise NoiseError(f"{path}: noisy mixture missing; make it with "
                             "N20EMv2/audio_visual/synthesize_noise.py")
        return str(path)

    return wav_for_song


def check_noisy_mixtures(hparams, csv_paths) -> None:
    """With `noise_type` set, every N20EMv2 song of the CSVs has its noisy mixture: checked
    before extraction starts rather than when the first missing one is reached."""
    noise_type, snr = hparams["noise_type"], hparams["snr_db"]
    if not noise_type or noise_type == "clean":
        return
    missing = []
    for csv_path in csv_paths:
        header, rows = read_csv(csv_path)
        dataset, song = header.index("dataset"), header.index("song")
        missing += [path for path in {noisy_wav_path(hparams["data_folder"], row[song], noise_type,
                                                     snr) for row in rows
                                      if row[dataset] == "n20emv2"} if not path.is_file()]
    if missing:
        raise NoiseError(f"{len(missing)} noisy mixture(s) for --noise_type {noise_type} --snr_db "
                         f"{snr} missing, e.g. {sorted(missing)[0]}; make them with "
                         "N20EMv2/audio_visual/synthesize_noise.py")


def evaluate_test_sets(brain, datasets: dict, loader_kwargs) -> dict:
    """`{test_set: statistics}` of the selected checkpoint on every dataset."""
    return {name: brain.evaluate_test_set(name, dataset, loader_kwargs)
            for name, dataset in datasets.items()}


def extract_features(brain, hparams, datasets: dict, name: str) -> list:
    """Write per-song encoder features of the trained model (selected checkpoint) for every
    dataset in `datasets` (train, valid and test songs alike) under `features_folder`, as
    `<name>.npy`. A recipe without a trained checkpoint is an error: extraction never trains."""
    recover_trained_model(brain, hparams["selection_metric"])
    written = []
    for split, dataset in datasets.items():
        logger.info("extracting %s features of %s", name, split)
        written += extract_song_features(brain, dataset, hparams["test_dataloader_opts"],
                                         hparams["features_folder"], name)
    return written


# -------------------------------------------------------------- evaluation of an exported model
class BundleEvaluationBrain(TranscriptionBrain):
    """Evaluates an audio bundle's encoder + head on prepared utterance CSVs (no training): the
    forward pass and the scoring (with the sung pitch, for encoders with a pitch network) are
    TranscriptionBrain's, songs decoded as `svt.transcribe` decodes recordings."""

    whole_recording_decoding = True

    def encoder_inputs(self, batch):
        """The utterances' waveforms (16 kHz) and their relative lengths."""
        return batch.sig


def evaluate_dataset(prepare_function, argv=None):
    """An evaluation-only recipe (TONAS, ISMIR2014): prepare the dataset with the model's own label
    frame rate and utterance length, then evaluate the model (`--model`) on it, with the bundle's
    thresholds unless the YAML sets its own; `model: null` evaluates the model shipped in the
    package. Returns `{test_set: statistics}`."""
    hparams, run_opts = load_experiment(argv)
    model = load_bundle(hparams["model"] or DEFAULT_MODEL, modality="audio")
    settings = dict(model.settings)
    settings.setdefault("label_frame_rate", model.label_frame_rate)  # older bundles: frame_rate
    for key in ("label_frame_rate", "dur_threshold", "onset_threshold", "offset_threshold"):
        if hparams[key] is not None:
            settings[key] = hparams[key]
    check_label_frame_rate(model.encoder, settings["label_frame_rate"], settings["dur_threshold"],
                           "--label_frame_rate" if hparams["label_frame_rate"] is not None
                           else "the model's label_frame_rate")
    prepare_on_main(prepare_function, data_folder=hparams["data_folder"],
                    prepare_folder=hparams["prepare_folder"],
                    dur_threshold=settings["dur_threshold"],
                    label_frame_rate=settings["label_frame_rate"],
                    strict=not hparams["skip_invalid"])
    name = hparams["dataset_name"]
    csv_path = csv_folder(hparams["prepare_folder"], settings["dur_threshold"]) / f"{name}.csv"
    brain = BundleEvaluationBrain(
        modules={"encoder": model.encoder, "head": model.head},
        hparams={**hparams, **settings, "encoder": model.encoder, "head": model.head},
        run_opts=run_opts)
    dataset = audio_dataset(csv_path, settings["dur_threshold"], settings["label_frame_rate"])
    return evaluate_test_sets(brain, {name: dataset}, hparams["test_dataloader_opts"])

