"""Per-song encoder features of a trained model, for the audio-visual stage.

The audio-visual recipe trains its fusion network on frozen features. `extract_song_features`
runs a trained recipe's encoder over every utterance of a CSV, stitches the utterances of each song
back together (as evaluation does) and writes one array per song.

Format: `<features_folder>/<dataset>/<song>/<name>.npy`, float16 `(T, D)`. The original wrote
float32 `.pt` files into the dataset folders; float16 halves the disk and read time of features
that are only ever fed to a network trained on them (their values are layer-normalised, well
within float16 range), `.npy` can be memory-mapped by slice, and the dataset stays read-only.
"""
from __future__ import annotations

import speechbrain as sb
import torch
from tqdm import tqdm

from svt.data.features import feature_path, save_features
from svt.data.utterances import SongStitcher
from svt.errors import SvtUserError


class NoTrainedModelError(SvtUserError, FileNotFoundError):
    """Feature extraction was asked of a recipe that has no trained checkpoint."""


def recover_trained_model(brain, selection_metric: str):
    """Load the selected checkpoint; never fall back to an untrained model."""
    from svt.training.brain import SELECTION_KEYS

    checkpointer = brain.checkpointer
    if checkpointer is None or not checkpointer.list_checkpoints():
        folder = getattr(checkpointer, "checkpoints_dir", "?")
        raise NoTrainedModelError(
            f"no trained checkpoint in {folder}: train the recipe first (same YAML and "
            "output_folder), then extract features")
    brain.on_evaluate_start(**{f"{SELECTION_KEYS[selection_metric]}_key": selection_metric})


@torch.no_grad()
def extract_song_features(brain, dataset, loader_kwargs, features_folder, name) -> list:
    """Write `<features_folder>/<dataset>/<song>/<name>.npy` for every song of `dataset`;
    returns the paths written. Existing files are replaced: they may come from an earlier model
    (a retrained recipe must not leave stale features behind), and skipping them would save no
    computation since every utterance is encoded anyway."""
    brain.modules.eval()
    loader = sb.dataio.dataloader.make_dataloader(dataset, **loader_kwargs)
    stitcher = SongStitcher()
    written = []
    for batch in tqdm(loader, desc=f"extracting {name}", unit="utterance batch"):
        batch = batch.to(brain.device)
        inputs, lens = brain.encoder_inputs(batch)
        features = brain.encode(inputs, lens, batch, sb.Stage.TEST).float().cpu().numpy()
        for b in range(features.shape[0]):
            n = brain.valid_frame_count(int(round(float(lens[b]) * inputs.shape[1])),
                                        features.shape[1])
            done = stitcher.add(batch.song_key[b], int(batch.utter_index[b]),
                                int(batch.utter_count[b]), (features[b, :n],))
            if done is not None:
                path = feature_path(features_folder, done[0], name)
                save_features(path, done[1][0])
                written.append(path)
    if stitcher.incomplete():
        raise RuntimeError(f"songs with missing utterances: {stitcher.incomplete()}")
    return written
