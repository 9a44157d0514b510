"""The settings a training run's checkpoints depend on, recorded with the run and compared when it
resumes.

A recipe started again on the same `output_folder` resumes from its checkpoints. Before this
check, a resume with other options (`--dur_threshold 3 --label_frame_rate 49.6667 --lr 0.9`)
loaded run 1's weights, trained nothing new (or went on at the old learning rate: the optimisers'
and schedulers' states come from the checkpoint) and exported them with the new settings in the
bundle's manifest, which then described a model that was never trained. Now the first start writes
`<output_folder>/run_settings.json` (`RUN_SETTINGS_FILE`) with the values of `RUN_SETTINGS_KEYS`
present in the recipe's hparams, and a later start with checkpoints compares them: any difference
is a `RunSettingsError` naming the options, both values and the way out (a new `--output_folder`,
or the recorded values).

Which options must match (RUN_SETTINGS_KEYS), and why:

* what the labels and inputs mean: `modality`, `dur_threshold`, `label_frame_rate`,
  `sample_rate`, `video_norm`, `video_size`, the audio-visual `condition` and `system`;
* which songs train and which validate (a changed hold-out would select checkpoints on songs
  the model trained on): `valid_seed`, `num_valid`, `mix_train`, and SingingTranscriber's
  generated corpus (`corpus_seed`, `corpus_style`, `num_train_songs`, `num_valid_songs`,
  `song_seconds`, `voice_bank_share`, `voice_bank_speakers`, `room_reverb_gain`);
* the model the checkpoint's tensors belong to: the encoder (`ssl_source`, `output_layer`,
  `output_norm`, `weighted_layers`, `freeze_encoder`, `freeze_feature_extractor`,
  `avhubert_checkpoint`, `feature_grad_mult`, `audio_model`, `video_model`,
  `init_head_from`) and the sizes of the networks (`hidden_size`, `num_layers`,
  `d_model`, `nhead`, `d_ffn`, `dropout`, `alpha`);
* the objective whose validation loss selects checkpoints (`onset_pos_weight`,
  `offset_pos_weight`; losses of two objectives cannot be compared) and the selection itself
  (`selection_metric`: the kept checkpoints were chosen by it);
* the optimisation schedule: the learning rates and annealing (`lr`, `lr_ssl`, `lr_encoder`,
  `annealing_factor*`, `improvement_threshold`) because a resumed run takes them from the
  checkpoint's optimiser and scheduler states, so a new value would be silently ignored;
  `linear_prob_epochs` and `seed`, which the bundle records as how the model was trained
  (`trained_with`).

What may change on resume: `number_of_epochs` (raising it is how a run is trained further),
batch sizes, workers, paths of the data and of the outputs (a dataset may move), decoding
thresholds and scoring tolerances (they do not change the weights), `max_grad_norm`, `precision`,
checkpoint intervals, the test sets, the audio-visual recipe's `audio_bundle`/`video_bundle`
(given after training to export the fusion with the models its features came from),
`noise_type`/`snr_db` (the audio recipe's feature
extraction reads noisy mixtures through a trained run) and the like.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

from svt.errors import SvtUserError
from svt.fileio import write_json_atomic

logger = logging.getLogger(__name__)

RUN_SETTINGS_FILE = "run_settings.json"
#: Options whose values a run's checkpoints depend on (see the module docstring for why).
RUN_SETTINGS_KEYS = (
    "modality", "dur_threshold", "label_frame_rate", "sample_rate", "video_norm", "video_size",
    "condition", "system",
    "valid_seed", "num_valid", "mix_train", "corpus_seed", "corpus_style", "num_train_songs",
    "num_valid_songs", "song_seconds", "voice_bank_share", "voice_bank_speakers",
    "room_reverb_gain",
    "ssl_source", "output_layer", "output_norm", "weighted_layers", "freeze_encoder",
    "freeze_feature_extractor", "avhubert_checkpoint", "feature_grad_mult", "audio_model",
    "video_model", "init_head_from",
    "hidden_size", "num_layers", "lookahead_frames", "pitch_stride", "d_model", "nhead", "d_ffn",
    "dropout", "alpha",
    "onset_pos_weight", "offset_pos_weight", "selection_metric",
    "lr", "lr_ssl", "lr_encoder", "annealing_factor", "annealing_factor_ssl",
    "annealing_factor_head", "improvement_threshold", "linear_prob_epochs", "seed",
)
#: Of those, the options naming a file or folder: compared by real path (a relative and an
#: absolute spelling of one folder are the same model).
PATH_KEYS = ("ssl_source", "avhubert_checkpoint", "init_head_from")


class RunSettingsError(SvtUserError, ValueError):
    """Resuming a run with options its checkpoints were not made with."""


def _plain(value):
    """`value` as JSON would give it back, or None when it is not plain data (a built object)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return None if any(items[str(k)] is None and v is not None for k, v in value.items()) \
            else items
    return None


def run_settings(hparams) -> dict:
    """The values of RUN_SETTINGS_KEYS in `hparams` (plain data only; paths of existing files as
    real paths)."""
    settings = {}
    for key in RUN_SETTINGS_KEYS:
        if key not in hparams:
            continue
        value = _plain(hparams[key])
        if value is None and hparams[key] is not None:
            continue  # a built object: its options are compared through their own keys
        if key in PATH_KEYS and isinstance(value, str) and os.path.exists(value):
            value = os.path.realpath(value)
        settings[key] = value
    return settings


def _has_checkpoints(save_folder) -> bool:
    folder = Path(save_folder) if save_folder else None
    return folder is not None and folder.is_dir() and any(
        p.name.startswith("CKPT") for p in folder.iterdir())


def _shown(value) -> str:
    return "null" if value is None else json.dumps(value)


def check_run_settings(hparams, write: bool = True) -> None:
    """Compare the run's settings with those recorded in `<output_folder>/run_settings.json`
    when the run has checkpoints to resume from (RunSettingsError naming every differing option,
    both values and the way out); record them when the file is missing or there is nothing to
    resume (`write`: on the main process only). Recipes without a checkpointer are left alone."""
    if "checkpointer" not in hparams or not hparams.get("output_folder"):
        return
    path = Path(hparams["output_folder"]) / RUN_SETTINGS_FILE
    current = run_settings(hparams)
    resuming = _has_checkpoints(hparams.get("save_folder"))
    recorded = None
    if path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunSettingsError(f"{path} is unreadable ({type(err).__name__}); it records the "
                                   "settings this run's checkpoints were made with: restore it, "
                                   "or train into a new --output_folder") from None
        if not isinstance(recorded, dict):
            raise RunSettingsError(f"{path} is damaged (not a JSON object of settings); restore "
                                   "it, or train into a new --output_folder")
    if recorded is not None and resuming:
        differing = [key for key in sorted(set(current) | set(recorded))
                     if key in current and key in recorded and current[key] != recorded[key]]
        if differing:
            changes = "; ".join(f"--{key} {_shown(current[key])} (the run's: "
                                f"{_shown(recorded[key])})" for key in differing)
            raise RunSettingsError(
                f"{hparams['output_folder']} holds a run trained with other settings: {changes}. "
                "Its checkpoints were made with the recorded values (in "
                f"{path}), so resuming would keep the old model under the new settings. Train "
                "into a new --output_folder, or resume with the run's values")
        return
    if recorded is None and resuming:
        logger.warning("%s has checkpoints but no %s (a run started before svt recorded its "
                       "settings): its settings cannot be checked; recording the current ones",
                       hparams["output_folder"], RUN_SETTINGS_FILE)
    if write and recorded != current:
        write_json_atomic(path, current, indent=2)
