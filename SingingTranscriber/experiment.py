#!/usr/bin/env python3
"""Train the package's default transcriber: frozen FCPE pitch network + BiGRU + the paper's head,
on a generated corpus of recorded-sounding singing; export it, evaluate it (synthetic validation
songs and, when given, real recordings in the SSVD layout, TONAS, ISMIR2014).

    python experiment.py hparams/train_pitch_network.yaml [--ssvd_folder /path/to/SSVD] \
        [--package_model_folder ../svt/pretrained/singing_transcriber]
"""
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import speechbrain as sb
import torch

from svt.data.utterances import audio_dataset
from svt.datasets.ismir2014 import prepare_ismir2014
from svt.datasets.ssvd import prepare_ssvd
from svt.datasets.tonas import prepare_tonas
from svt.fileio import write_json_atomic
from svt.inference.bundle import staged_bundle_folder
from svt.models.pitch_network import PitchFeatureCache
from svt.synthetic.recorded_singing import CORPUS_STYLES, make_recorded_corpus
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


class PitchNetworkBrain(TranscriptionBrain):
    """Waveform -> frozen FCPE + context network -> head; notes carry the sung (fractional)
    pitch read from the pitch network (TranscriptionBrain's forward pass and objectives take it
    from `PitchNetworkEncoder.sung_pitch`). With `features_folder` set, what FCPE computes for
    each training and validation utterance is cached there (`PitchFeatureCache`): only the first
    epoch runs it."""

    feature_cache = None

    def on_fit_start(self):
        super().on_fit_start()
        folder = getattr(self.hparams, "features_folder", None)
        self.feature_cache = PitchFeatureCache(folder) if folder else None

    def encoder_inputs(self, batch):
        """The utterances' waveforms (16 kHz, padded) and their relative lengths."""
        return batch.sig

    def encode(self, wavs, wav_lens, batch, stage):
        """The encoder, given FCPE's outputs from the cache (computed and stored on a miss)."""
        pitch_features = None
        if self.feature_cache is not None and stage != sb.Stage.TEST:
            pitch_features = self.feature_cache.pitch_features(self.hparams.encoder, wavs,
                                                               wav_lens, batch.id)
        return self.modules.encoder(wavs, wav_lens, pitch_features=pitch_features)


def generate_corpus(hparams):
    """The training and validation songs (resumable: complete songs are kept)."""
    style = dataclasses.replace(
        CORPUS_STYLES[hparams["corpus_style"]](), voice_bank_share=hparams["voice_bank_share"],
        voice_bank_speakers=tuple(hparams["voice_bank_speakers"]),
        voice_bank_folder=hparams["voice_bank_folder"])
    root = Path(hparams["corpus_folder"])
    lengths = tuple(hparams["song_seconds"])
    make_recorded_corpus(root / "train", hparams["num_train_songs"], hparams["corpus_seed"],
                         lengths, style=style)
    make_recorded_corpus(root / "valid", hparams["num_valid_songs"], hparams["corpus_seed"] + 1,
                         lengths, style=style)


def dataio_prepare(hparams):
    def dataset(csv_path, train=False):
        return audio_dataset(csv_path, hparams["dur_threshold"], hparams["label_frame_rate"],
                             sorting=hparams["sorting"] if train else None)

    tests = existing_test_sets(hparams["test_csvs"])
    return (dataset(hparams["train_csv"], train=True), dataset(hparams["valid_csv"]),
            {name: dataset(path) for name, path in tests.items()})


def main(argv=None):
    hparams, run_opts = load_experiment(argv)
    started = time.time()

    # 1. Data: generate the corpus, prepare it and the optional real test sets (main process).
    prepare_on_main(generate_corpus, hparams=hparams)
    common = preparation_kwargs(hparams)
    for split in ("train", "valid"):
        prepare_on_main(prepare_ssvd, data_folder=Path(hparams["corpus_folder"]) / split,
                        dataset=f"synthetic_{split}", **common)
    if hparams["ssvd_folder"]:
        prepare_on_main(prepare_ssvd, data_folder=hparams["ssvd_folder"], dataset="ssvd",
                        **common)
    if hparams["tonas_folder"]:
        prepare_on_main(prepare_tonas, data_folder=hparams["tonas_folder"], **common)
    if hparams["ismir2014_folder"]:
        prepare_on_main(prepare_ismir2014, data_folder=hparams["ismir2014_folder"], **common)

    # 2. Datasets and 3. Brain.
    train_set, valid_set, test_sets = dataio_prepare(hparams)
    brain = PitchNetworkBrain(modules=hparams["modules"], hparams=hparams, run_opts=run_opts,
                              checkpointer=hparams["checkpointer"])

    # 4. Train, export the selected checkpoint (and copy it into the package), evaluate.
    brain.fit(hparams["epoch_counter"], train_set, valid_set,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    settings = bundle_settings(hparams)
    settings["trained_with"].update(
        corpus=f"svt.synthetic.recorded_singing, {hparams['num_train_songs']} songs, seed "
               f"{hparams['corpus_seed']}, style={hparams['corpus_style']}, recorded voices "
               f"{hparams['voice_bank_share']:g} ({', '.join(hparams['voice_bank_speakers'])})",
        recipe="SingingTranscriber/experiment.py hparams/train_pitch_network.yaml",
        wall_time_s=round(time.time() - started), torch_threads=torch.get_num_threads(),
        device=str(brain.device))
    bundle = brain.export_bundle(hparams["bundle_folder"], settings)
    results = evaluate_test_sets(brain, test_sets, hparams["test_dataloader_opts"])
    if bundle is not None:
        write_json_atomic(Path(hparams["output_folder"]) / "results.json", results, indent=2)
        if hparams["package_model_folder"]:
            # Staged and renamed into place; refused (BundleError) unless the folder is new,
            # empty or a bundle already (checked up front too, before training).
            with staged_bundle_folder(hparams["package_model_folder"]) as staged:
                shutil.copytree(bundle, staged, dirs_exist_ok=True)
    return results


if __name__ == "__main__":
    sys.exit(run_recipe(main, "SingingTranscriber"))
