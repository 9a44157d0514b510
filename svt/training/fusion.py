"""The audio-visual stage (docs/original-recipes.md §7): frozen per-song audio and video features,
fused by residual cross-attention (`svt.models.fusion.FusionRCA`) and classified by the same
20-output head. The data side (`prepare_av_csvs`, `av_dataset`) is in `svt.data.features`.

`FusionBrain` is the `TranscriptionBrain` with the fusion network in place of an encoder: one
optimiser over fusion + head, no linear probing, and the export of the selected checkpoint as an
audio-visual bundle. The recipe (N20EMv2/audio_visual/experiment.py) subclasses it with its
forward pass (fusion + head, returning `svt.training.brain.Predictions`); the objectives are
`TranscriptionBrain`'s.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from speechbrain.nnet.schedulers import update_learning_rate
from speechbrain.utils.distributed import if_main_process

from svt.inference.bundle import WEIGHTS_FILE, export_av_bundle, find_bundle
from svt.training.brain import TranscriptionBrain

logger = logging.getLogger(__name__)

#: `system` values of the audio-visual YAML: the fusion, or the same network with zero video.
SYSTEMS = ("AV", "A")


def is_audio_only_control(system: str) -> bool:
    """`zero_video` for a `system` setting, so the two can never disagree."""
    if system not in SYSTEMS:
        raise ValueError(f"system must be one of {SYSTEMS} (AV: audio + video fusion; A: the "
                         f"audio-only control), got {system!r}")
    return system == "A"


class FusionBrain(TranscriptionBrain):
    """RCA fusion + head on frozen features. YAML: `modules` (`fusion`, `head`), `opt_class`,
    `lr_annealing`, plus the TranscriptionBrain keys for evaluation and logging."""

    def init_optimizers(self):
        params = list(self.modules.fusion.parameters()) + list(self.modules.head.parameters())
        self.optimizer = self.hparams.opt_class(params)
        self.optimizers_dict = {"optimizer": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    @property
    def linear_probing(self):
        return False

    def freeze_optimizers(self, optimizers):
        return optimizers

    def valid_frame_count(self, num_inputs, num_output_frames):
        return min(num_inputs, num_output_frames)

    def anneal_learning_rates(self, valid_loss):
        _, new_lr = self.hparams.lr_annealing(valid_loss)
        update_learning_rate(self.optimizer, new_lr)
        return {"lr": new_lr}

    def initialise_head(self, bundle_path):
        """Copy an audio-only model's classifier into the head (the original's `pretrain: True`),
        only for a fresh run: resuming must keep the recovered head (the original reloaded the
        pre-trained head after recovery, undoing the training)."""
        if self.checkpointer is not None and self.checkpointer.list_checkpoints():
            return
        initialise_head_from_bundle(self.hparams.head, bundle_path)

    def export_audio_visual_bundle(self, folder, audio_bundle, video_bundle, settings: dict):
        """Write the selected checkpoint as an audio-visual inference bundle (audio and video
        bundles copied in, fusion + head weights); None for the audio-only control, or when
        either bundle is not given."""
        if self.hparams.zero_video:
            return None  # the audio-only control is no audio-visual model
        if not audio_bundle or not video_bundle:
            logger.info("no audio-visual inference bundle: set audio_bundle and video_bundle "
                        "to export one")
            return None
        self.select_checkpoint()
        self.check_finite_model(torch.nn.ModuleDict({"fusion": self.hparams.fusion,
                                                     "head": self.hparams.head}),
                                "the selected checkpoint")
        if not if_main_process():
            return None
        export_av_bundle(folder, audio_bundle, video_bundle, self.hparams.fusion,
                         self.hparams.head, settings)
        logger.info("audio-visual inference bundle written to %s", folder)
        return Path(folder)


def initialise_head_from_bundle(head, bundle_path):
    """Copy the audio-only model's classifier into `head`."""
    weights = torch.load(find_bundle(bundle_path) / WEIGHTS_FILE, map_location="cpu",
                         weights_only=True)
    head.load_state_dict({k[len("head."):]: v for k, v in weights.items()
                          if k.startswith("head.")})
