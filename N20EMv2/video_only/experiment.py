#!/usr/bin/env python3
"""Video-only SVT on N20EMv2 (AV-HuBERT visual encoder + frame head): prepare, train, export the
bundle, test on N20EMv2 test and valid; with --extract_features True, write per-song video
features of the trained model for the audio-visual stage instead (train, valid and test songs).

    python experiment.py hparams/train_video_ssl.yaml --data_folder /path/to/N20EMv2
    python experiment.py hparams/train_video_ssl.yaml --data_folder ... --extract_features True
"""
import sys

from svt.data.utterances import require_songs
from svt.data.video import video_dataset
from svt.datasets.n20emv2 import prepare_n20emv2_video
from svt.training.brain import TranscriptionBrain
from svt.training.experiment import (
    bundle_settings,
    evaluate_test_sets,
    existing_test_sets,
    extract_features,
    load_experiment,
    preparation_kwargs,
    prepare_on_main,
    run_recipe,
)


class VideoTranscriptionBrain(TranscriptionBrain):
    """Lip clips (B, T, 88, 88) -> AV-HuBERT visual encoder -> head, one output per video frame.
    The forward pass and the objectives are TranscriptionBrain's: the task only says what the
    encoder reads."""

    def encoder_inputs(self, batch):
        """The utterances' lip clips `(B, T, 88, 88)` (padded along T) and their relative
        lengths."""
        return batch.video


def dataio_prepare(hparams):
    """Video utterance datasets; training clips are randomly cropped and flipped."""
    def dataset(csv_path, train=False):
        require_songs(csv_path)  # an empty split: a clear error, not an IndexError in SpeechBrain
        return video_dataset(csv_path, hparams["dur_threshold"], hparams["label_frame_rate"],
                             train=train, sorting=hparams["sorting"] if train else None,
                             seed=hparams["seed"],
                             per_clip_norm=hparams["video_norm"] == "per_clip")

    return (dataset(hparams["train_csv"], train=True), dataset(hparams["valid_csv"]),
            {name: dataset(path) for name, path in existing_test_sets(hparams["test_csvs"]).items()},
            dataset)


def main(argv=None):
    hparams, run_opts = load_experiment(argv)

    # 1. Data preparation (main process only): video labels at the video's frame rate.
    prepare_on_main(prepare_n20emv2_video, data_folder=hparams["data_folder"],
                    **preparation_kwargs(hparams))

    # 2. Datasets and 3. Brain.
    train_set, valid_set, test_sets, dataset = dataio_prepare(hparams)
    brain = VideoTranscriptionBrain(modules=hparams["modules"], hparams=hparams,
                                    run_opts=run_opts, checkpointer=hparams["checkpointer"])

    if hparams["extract_features"]:
        # Evaluation-mode clips (centre crop, no flip) of every split.
        splits = {"train": dataset(hparams["train_csv"]), "valid": valid_set,
                  "test": test_sets["n20em_video_test"]}
        return extract_features(brain, hparams, splits, name=hparams["features_name"])

    # 4. Train, export the selected checkpoint, evaluate.
    brain.fit(hparams["epoch_counter"], train_set, valid_set,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    brain.export_bundle(hparams["bundle_folder"], bundle_settings(hparams))
    return evaluate_test_sets(brain, test_sets, hparams["test_dataloader_opts"])


if __name__ == "__main__":
    sys.exit(run_recipe(main, "N20EMv2/video_only"))
