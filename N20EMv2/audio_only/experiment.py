#!/usr/bin/env python3
"""Audio-only SVT on N20EMv2 ("Ours 2"): train on MIR-ST500 train + N20EMv2 train, select by valid
COnPOff F1, test on N20EMv2 test/valid, MIR-ST500 test and, when given, TONAS and ISMIR2014.
With --extract_features True, write the trained model's per-song features instead (clean, or
with --noise_type/--snr_db from the noisy mixtures) for the audio-visual stage.

    python experiment.py hparams/train_audio_ssl.yaml --data_folder /path/to/N20EMv2 \
        --mir_st500_folder /path/to/MIR-ST500
    python experiment.py hparams/train_audio_ssl.yaml ... --extract_features True \
        [--noise_type accomp --snr_db -10]
"""
import sys

from svt.data.utterances import audio_dataset
from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.mir_st500 import prepare_mir_st500
from svt.datasets.n20emv2 import prepare_n20emv2_audio
from svt.datasets.tonas import prepare_tonas
from svt.training.brain import TranscriptionBrain
from svt.training.experiment import (
    bundle_settings,
    check_noisy_mixtures,
    evaluate_test_sets,
    existing_test_sets,
    extract_features,
    load_experiment,
    noisy_audio_reader,
    preparation_kwargs,
    prepare_on_main,
    run_recipe,
)


class AudioTranscriptionBrain(TranscriptionBrain):
    """Waveform (clean vocals or a noisy mixture) -> SSL encoder -> head -> 20 frame outputs. The
    forward pass and the objectives are TranscriptionBrain's: the task only says what the encoder
    reads."""

    def encoder_inputs(self, batch):
        """The utterances' waveforms (16 kHz, padded) and their relative lengths: the clean vocals,
        or with `noise_type` / `snr_db` the noisy mixtures (chosen in `dataio_prepare`)."""
        return batch.sig


def dataio_prepare(hparams):
    """Utterance datasets; with `noise_type`/`snr_db`, N20EMv2 songs are read from their noisy
    mixtures (feature extraction for the audio-visual stage)."""
    wav_for_song = noisy_audio_reader(hparams)

    def dataset(csv_path, train=False):
        return audio_dataset(csv_path, hparams["dur_threshold"], hparams["label_frame_rate"],
                             sorting=hparams["sorting"] if train else None,
                             wav_for_song=wav_for_song)

    train_csv = hparams["mix_train_csv"] if hparams["mix_train"] else hparams["train_csv"]
    return (dataset(train_csv, train=True), dataset(hparams["valid_csv"]),
            {name: dataset(path) for name, path in existing_test_sets(hparams["test_csvs"]).items()})


def main(argv=None):
    hparams, run_opts = load_experiment(argv)

    # 1. Data preparation (main process only).
    common = preparation_kwargs(hparams)
    mir_st500_train = None
    if hparams["mir_st500_folder"]:
        prepare_on_main(prepare_mir_st500, data_folder=hparams["mir_st500_folder"],
                        num_valid=hparams["num_valid"], valid_seed=hparams["valid_seed"],
                        separate=hparams["separate"], **common)
        # All MIR-ST500 training songs (train + held-out valid), as the original mixed in.
        mir_st500_train = [f"{hparams['csv_folder']}/mir_st500_{split}.csv"
                           for split in ("train", "valid")]
    elif hparams["mix_train"]:
        raise SystemExit("mix_train: True needs --mir_st500_folder (MIR-ST500 train is mixed in); "
                         "pass it, or set --mix_train False to train on N20EMv2 only")
    prepare_on_main(prepare_n20emv2_audio, data_folder=hparams["data_folder"],
                    mir_st500_train_csv=mir_st500_train, **common)
    if hparams["tonas_folder"]:
        prepare_on_main(prepare_tonas, data_folder=hparams["tonas_folder"], **common)
    if hparams["ismir2014_folder"]:
        prepare_on_main(prepare_ismir2014, data_folder=hparams["ismir2014_folder"], **common)

    # 2. Datasets and 3. Brain.
    train_set, valid_set, test_sets = dataio_prepare(hparams)
    brain = AudioTranscriptionBrain(modules=hparams["modules"], hparams=hparams,
                                    run_opts=run_opts, checkpointer=hparams["checkpointer"])

    if hparams["extract_features"]:
        # Per-song features of the trained model for every N20EMv2 split (the original's
        # extraction YAML forgot the training songs).
        check_noisy_mixtures(hparams, [hparams["train_csv"], hparams["valid_csv"],
                                       hparams["test_csvs"]["n20em_test"]])
        n20em = {"train": audio_dataset(hparams["train_csv"], hparams["dur_threshold"],
                                        hparams["label_frame_rate"],
                                        wav_for_song=noisy_audio_reader(hparams)),
                 "valid": valid_set, "test": test_sets["n20em_test"]}
        return extract_features(brain, hparams, n20em, name=hparams["features_name"])

    # 4. Train, export the selected checkpoint, evaluate.
    brain.fit(hparams["epoch_counter"], train_set, valid_set,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    brain.export_bundle(hparams["bundle_folder"], bundle_settings(hparams))
    return evaluate_test_sets(brain, test_sets, hparams["test_dataloader_opts"])


if __name__ == "__main__":
    sys.exit(run_recipe(main, "N20EMv2/audio_only"))
