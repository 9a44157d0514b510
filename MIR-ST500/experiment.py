#!/usr/bin/env python3
"""Audio-only SVT on MIR-ST500 ("Ours 1"): a self-supervised speech encoder + a frame head,
linear probing then fine-tuning; tested on MIR-ST500 test and, when given, TONAS and ISMIR2014.

    python experiment.py hparams/train_audio_ssl.yaml --data_folder /path/to/MIR-ST500 \
        [--tonas_folder /path/to/TONAS] [--ismir2014_folder /path/to/ISMIR2014]
    torchrun --nproc_per_node=4 experiment.py hparams/train_audio_ssl.yaml --data_folder ...

The optimiser schedule, song stitching, decoding, scoring, checkpoint selection and bundle export
are `svt.training.brain.TranscriptionBrain`'s; this file holds what is specific to the task.
"""
import sys

from svt.data.utterances import audio_dataset
from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.datasets.tonas import prepare_tonas
from svt.training.brain import TranscriptionBrain
from svt.training.experiment import (
    bundle_settings,
    evaluate_test_sets,
    existing_test_sets,
    load_experiment,
    preparation_kwargs,
    prepare_on_main,
    run_recipe,
)


class AudioTranscriptionBrain(TranscriptionBrain):
    """Waveform -> SSL encoder -> head -> 20 frame outputs. The forward pass (encoder, head) and the
    objectives (the YAML's `loss` in training; the loss and the song scores in evaluation) are
    TranscriptionBrain's: the task only says what the encoder reads."""

    def encoder_inputs(self, batch):
        """The utterances' waveforms (16 kHz, padded) and their relative lengths."""
        return batch.sig


def dataio_prepare(hparams):
    """Utterance datasets: 5-s audio slices read from disk with their label frames."""
    def dataset(csv_path, train=False):
        return audio_dataset(csv_path, hparams["dur_threshold"], hparams["label_frame_rate"],
                             sorting=hparams["sorting"] if train else None)

    return (dataset(hparams["train_csv"], train=True), dataset(hparams["valid_csv"]),
            {name: dataset(path) for name, path in existing_test_sets(hparams["test_csvs"]).items()})


def main(argv=None):
    hparams, run_opts = load_experiment(argv)

    # 1. Data preparation (main process only): labels, notes, 16 kHz audio, utterance CSVs.
    common = preparation_kwargs(hparams)
    prepare_on_main(prepare_mir_st500, data_folder=hparams["data_folder"],
                    num_valid=hparams["num_valid"], valid_seed=hparams["valid_seed"],
                    separate=hparams["separate"], **common)
    if hparams["tonas_folder"]:
        prepare_on_main(prepare_tonas, data_folder=hparams["tonas_folder"], **common)
    if hparams["ismir2014_folder"]:
        prepare_on_main(prepare_ismir2014, data_folder=hparams["ismir2014_folder"], **common)

    # 2. Datasets.
    train_set, valid_set, test_sets = dataio_prepare(hparams)

    # 3. Brain: linear probing then fine-tuning, annealed on the valid loss.
    brain = AudioTranscriptionBrain(modules=hparams["modules"], hparams=hparams,
                                    run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.fit(hparams["epoch_counter"], train_set, valid_set,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])

    # 4. Export the selected checkpoint as an inference bundle, then evaluate it.
    brain.export_bundle(hparams["bundle_folder"], bundle_settings(hparams))
    return evaluate_test_sets(brain, test_sets, hparams["test_dataloader_opts"])


if __name__ == "__main__":
    sys.exit(run_recipe(main, "MIR-ST500"))
