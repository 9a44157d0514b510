#!/usr/bin/env python3
"""Train the package's default transcriber: frozen FCPE pitch network + BiGRU + the paper's head,
on a generated corpus of recorded-sounding singing; distill FCPE into a compact pitch network that
replaces it in the exported bundle (`distill_pitch_network`); export it, evaluate it (synthetic
validation songs and, when given, real recordings in the SSVD layout, TONAS, ISMIR2014).

    python experiment.py hparams/train_pitch_network.yaml [--ssvd_folder /path/to/SSVD] \
        [--package_model_folder ../svt/pretrained/singing_transcriber]
"""
import dataclasses
import logging
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
from svt.inference.bundle import export_bundle, load_bundle, staged_bundle_folder
from svt.models.pitch_network import PitchFeatureCache
from svt.synthetic.festival_voices import render_festival_bank, split_speakers
from svt.synthetic.recorded_singing import CORPUS_STYLES, make_recorded_corpus, usable_cpu_count
from svt.training.brain import TranscriptionBrain
from svt.training.pitch_distillation import (
    DistillationSettings,
    distill_pitch_network,
    mix_frames,
    pitch_agreement,
    recording_pieces,
    teacher_features,
)
from svt.training.experiment import (
    BundleEvaluationBrain,
    bundle_settings,
    evaluate_test_sets,
    existing_test_sets,
    load_experiment,
    preparation_kwargs,
    prepare_on_main,
    run_recipe,
)

logger = logging.getLogger(__name__)


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


def generate_corpus(hparams, prefix=""):
    """The training and validation songs (resumable: complete songs are kept); `prefix`
    "distill_": the corpus FCPE is distilled on, from the `distill_*` options."""
    speakers = tuple(hparams["voice_bank_speakers"])
    _, festival = split_speakers(speakers)
    festival_folder = hparams["festival_bank_folder"] if festival else None
    if festival and hparams[f"{prefix}voice_bank_share"] > 0:
        render_festival_bank(festival_folder, festival, progress=logger.info)
    style = dataclasses.replace(
        CORPUS_STYLES[hparams[f"{prefix}corpus_style"]](),
        voice_bank_share=hparams[f"{prefix}voice_bank_share"],
        voice_bank_speakers=speakers,
        voice_bank_folder=hparams["voice_bank_folder"],
        festival_bank_folder=None if festival_folder is None else str(festival_folder),
        room_reverb_gain=tuple(hparams["room_reverb_gain"]),
        pitch_gestures=hparams["pitch_gestures"], voiced_gaps=hparams["voiced_gaps"])
    root = Path(hparams[f"{prefix}corpus_folder"])
    lengths = tuple(hparams["song_seconds"])
    seed = hparams[f"{prefix}corpus_seed"]
    workers = hparams.get("corpus_workers") or usable_cpu_count()
    make_recorded_corpus(root / "train", hparams[f"{prefix}num_train_songs"], seed, lengths,
                         style=style, workers=workers)
    make_recorded_corpus(root / "valid", hparams[f"{prefix}num_valid_songs"], seed + 1, lengths,
                         style=style, workers=workers)


def distillation_settings(hparams) -> DistillationSettings:
    return DistillationSettings(
        dim=hparams["distill_dim"], num_layers=hparams["distill_num_layers"],
        steps=hparams["distill_steps"], batch_size=hparams["distill_batch_size"],
        crop_frames=hparams["distill_crop_frames"], learning_rate=hparams["distill_lr"],
        warmup_steps=hparams["distill_warmup_steps"], seed=hparams["seed"])


def distill_fcpe(hparams, fcpe_bundle, settings: dict, device):
    """FCPE distilled into a `CompactPitchNetwork` on the distillation corpus's utterances
    (FCPE's outputs cached in `features_folder`), installed in the trained model: the bundle
    written to `bundle_folder`. Resumes from `<save_folder>/pitch_distillation.pt`. Returns the
    loaded model and how closely the network follows FCPE on the held-out songs."""
    from tqdm import tqdm

    model = load_bundle(fcpe_bundle, device=str(device))
    encoder = model.encoder
    folder = hparams["features_folder"]
    cache = PitchFeatureCache(folder) if folder else None
    frames = {}
    for split in ("train", "valid"):
        dataset = audio_dataset(Path(hparams["csv_folder"]) / f"distill_{split}.csv",
                                hparams["dur_threshold"], hparams["label_frame_rate"])
        with dataset.output_keys_as(["id", "sig"]):
            items = ((item["id"], item["sig"].to(device)) for item in dataset)
            frames[split] = teacher_features(encoder, items, cache, progress=tqdm,
                                             total=len(dataset))
    recordings = hparams["distill_recordings"]
    recorded = []
    if recordings:
        # The user's own unlabelled recordings: FCPE's outputs on them are the targets.
        pieces = ((f"recording_{item_id}", wav)
                  for item_id, wav in recording_pieces(recordings, hparams["dur_threshold"]))
        recorded = teacher_features(encoder, pieces, cache, progress=tqdm)
        logger.info("pitch distillation: %d pieces of the recordings in %s, %.0f %% of the "
                    "draws", len(recorded), recordings,
                    100 * hparams["distill_recordings_share"])
    training_frames = mix_frames(frames["train"], recorded,
                                 hparams["distill_recordings_share"])

    def log(step, loss):
        logger.info("pitch distillation: step %d, loss %.5f", step, loss)

    distillation = distillation_settings(hparams)
    network = distill_pitch_network(
        training_frames, distillation, checkpoint=Path(hparams["save_folder"]) /
        "pitch_distillation.pt", progress=tqdm, log=log, device=device)
    agreement = pitch_agreement(network, frames["valid"], encoder.fcpe.model.cent_table.cpu(),
                                device=device)
    logger.info("compact pitch network against FCPE on the held-out songs: %s", agreement)
    encoder.use_compact_pitch_network(network.to(device))
    settings["trained_with"]["pitch_network_distillation"] = {
        **dataclasses.asdict(distillation),
        "corpus": corpus_description(hparams, "distill_"),
        "recordings": ({"folder": str(recordings), "pieces": len(recorded),
                        "share": hparams["distill_recordings_share"]} if recordings else None),
        "held_out_agreement": {k: round(v, 4) if isinstance(v, float) else v
                               for k, v in agreement.items()}}
    export_bundle(hparams["bundle_folder"], encoder, model.head, settings)
    return model, agreement


def corpus_description(hparams, prefix=""):
    return (f"svt.synthetic.recorded_singing, {hparams[f'{prefix}num_train_songs']} songs, seed "
            f"{hparams[f'{prefix}corpus_seed']}, style={hparams[f'{prefix}corpus_style']}, "
            f"recorded voices {hparams[f'{prefix}voice_bank_share']:g} "
            f"({', '.join(hparams['voice_bank_speakers'])})"
            + (f", pitch gestures on {hparams['pitch_gestures']:g} of the notes"
               if hparams["pitch_gestures"] > 0 else "")
            + (f", {hparams['voiced_gaps']:g} of the short rests sung through"
               if hparams["voiced_gaps"] > 0 else ""))


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
    distill = hparams["distill_pitch_network"]

    # 1. Data: generate the corpora, prepare them and the optional real test sets (main process).
    prepare_on_main(generate_corpus, hparams=hparams)
    if distill:
        prepare_on_main(generate_corpus, hparams=hparams, prefix="distill_")
    common = preparation_kwargs(hparams)
    for split in ("train", "valid"):
        prepare_on_main(prepare_ssvd, data_folder=Path(hparams["corpus_folder"]) / split,
                        dataset=f"synthetic_{split}", **common)
        if distill:
            prepare_on_main(prepare_ssvd,
                            data_folder=Path(hparams["distill_corpus_folder"]) / split,
                            dataset=f"distill_{split}", **common)
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

    # 4. Train, export the selected checkpoint, evaluate it.
    brain.fit(hparams["epoch_counter"], train_set, valid_set,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    settings = bundle_settings(hparams)
    settings["trained_with"].update(
        corpus=corpus_description(hparams),
        recipe="SingingTranscriber/experiment.py hparams/train_pitch_network.yaml",
        torch_threads=torch.get_num_threads(), device=str(brain.device))
    settings["trained_with"]["wall_time_s"] = round(time.time() - started)
    bundle = brain.export_bundle(hparams["fcpe_bundle_folder" if distill else "bundle_folder"],
                                 settings)
    # With distillation these are the FCPE model's scores, under their own names.
    results = evaluate_test_sets(
        brain, {("fcpe_" if distill else "") + name: data for name, data in test_sets.items()},
        hparams["test_dataloader_opts"])
    if bundle is None:
        return results  # the other processes of a multi-process run: the main one goes on

    # 5. Distil FCPE (main process), export and evaluate the bundle that runs the compact network.
    if distill:
        write_json_atomic(Path(hparams["output_folder"]) / "results_fcpe.json", results,
                          indent=2)
        model, _ = distill_fcpe(hparams, bundle, settings, brain.device)
        bundle = Path(hparams["bundle_folder"])
        if brain.distributed_launch:
            # A second Brain would join the process group the other processes have left.
            logger.warning("multi-process run: evaluate %s with the SSVD / TONAS / ISMIR2014 "
                           "evaluation recipes (--model); results.json is not written", bundle)
            results = {}
        else:
            evaluator = BundleEvaluationBrain(
                modules={"encoder": model.encoder, "head": model.head},
                hparams={**hparams, **settings, "encoder": model.encoder, "head": model.head},
                run_opts={"device": str(brain.device)})
            results = evaluate_test_sets(evaluator, test_sets, hparams["test_dataloader_opts"])
    if results:
        write_json_atomic(Path(hparams["output_folder"]) / "results.json", results, indent=2)
    if hparams["package_model_folder"]:
        # Staged and renamed into place; refused (BundleError) unless the folder is new, empty or
        # a bundle already (checked up front too, before training).
        with staged_bundle_folder(hparams["package_model_folder"]) as staged:
            shutil.copytree(bundle, staged, dirs_exist_ok=True)
    return results


if __name__ == "__main__":
    sys.exit(run_recipe(main, "SingingTranscriber"))
