#!/usr/bin/env python3
"""Audio-visual SVT on N20EMv2: RCA fusion of frozen audio and video features under a matched
noise condition (`--system AV`, the default), or the audio-only control with zero video
(`--system A`, the original train_rca_a).

    python experiment.py hparams/train_rca.yaml --data_folder /path/to/N20EMv2 \
        --prepare_folder ../audio_only/data --noise_type accomp --snr_db -10 \
        --init_head_from ../audio_only/results/<run>/model [--system A]

Needs the features of the trained audio model for this condition and of the trained video model
(`--extract_features True` in ../audio_only and ../video_only); `run_noise_grid.py` runs the lot.
"""
import sys
from pathlib import Path

from svt.data.features import av_dataset, prepare_av_csvs
from svt.data.utterances import csv_folder, require_songs
from svt.datasets.n20emv2 import N20EMV2_SPLITS, prepare_n20emv2_audio
from svt.training.brain import Predictions
from svt.training.experiment import (
    evaluate_test_sets,
    load_experiment,
    preparation_kwargs,
    prepare_on_main,
    run_recipe,
)
from svt.training.fusion import FusionBrain


class RCABrain(FusionBrain):
    """Audio features + video features -> RCA fusion -> head (the video zeroed for system A). The
    objectives are TranscriptionBrain's."""

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        audio, lens = batch.audio_feats
        video, _ = batch.video_feats
        return Predictions(self.modules.head(self.modules.fusion(audio, video, lens)), lens,
                           audio.shape[1])


def dataio_prepare(hparams):
    """Utterance datasets over the per-song features of the N20EMv2 songs."""
    dur = hparams["dur_threshold"]
    prepare_on_main(prepare_n20emv2_audio, data_folder=hparams["data_folder"],
                    **preparation_kwargs(hparams))
    folder = csv_folder(hparams["prepare_folder"], dur)
    splits = {s: folder / f"n20em_{s}.csv" for s in N20EMV2_SPLITS}
    for csv_path in splits.values():
        require_songs(csv_path)  # an empty split: a clear error, not an IndexError later
    av_csvs = prepare_av_csvs(splits, hparams["features_folder"],
                              Path(hparams["output_folder"]) / "csv", dur,
                              audio_name=hparams["audio_features"],
                              video_name=hparams["video_features"])

    def dataset(split, train=False):
        return av_dataset(av_csvs[split], dur, audio_name=hparams["audio_features"],
                          video_name=hparams["video_features"], zero_video=hparams["zero_video"],
                          sorting=hparams["sorting"] if train else None)

    return (dataset("train", train=True), dataset("valid"),
            {"n20em_test": dataset("test"), "n20em_valid": dataset("valid")})


def main(argv=None):
    hparams, run_opts = load_experiment(argv)

    # 1-2. Data: CSVs over the extracted features of this noise condition.
    train_set, valid_set, test_sets = dataio_prepare(hparams)

    # 3. Brain: fusion + head, the head optionally initialised from the audio-only model.
    brain = RCABrain(modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
                     checkpointer=hparams["checkpointer"])
    if hparams["init_head_from"]:
        brain.initialise_head(hparams["init_head_from"])
    brain.fit(hparams["epoch_counter"], train_set, valid_set,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])

    # 4. Export (AV system, with both bundles given) and evaluate the selected checkpoint.
    settings = {key: hparams[key] for key in ("dur_threshold", "onset_threshold",
                                              "offset_threshold")}
    settings["trained_with"] = {key: hparams[key] for key in (
        "noise_type", "snr_db", "number_of_epochs", "selection_metric", "seed")}
    brain.export_audio_visual_bundle(hparams["bundle_folder"], hparams["audio_bundle"],
                                     hparams["video_bundle"], settings)
    return evaluate_test_sets(brain, test_sets, hparams["test_dataloader_opts"])


if __name__ == "__main__":
    sys.exit(run_recipe(main, "N20EMv2/audio_visual"))
