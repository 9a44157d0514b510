"""The audio-visual stage (docs/original-recipes.md §7): frozen per-song audio and video features, fused by
residual cross-attention (`svt.models.fusion.FusionRCA`) and classified by the same 20-output head.

* `prepare_av_csvs`: utterance CSVs over the extracted features (`svt.data.features`) of N20EMv2 songs.
* `av_dataset`: audio-feature rows (49.8 per second: the audio encoder's 249 frames per 5-s
  utterance), video-feature rows (50 per second) cut or zero-padded to the audio rows, labels.
* `FusionBrain`: the `TranscriptionBrain` with the fusion network in place of an encoder; one
  Adadelta optimiser over fusion + head, no linear probing, the head optionally initialised from
  the audio-only model (only when no checkpoint exists, so resuming never overwrites it).
"""
from __future__ import annotations

import torch
from speechbrain.nnet.schedulers import update_learning_rate

from svt.training.brain import TranscriptionBrain


class FusionBrain(TranscriptionBrain):
    """RCA fusion + head on frozen features. YAML: `fusion`, `head`, `opt_class`,
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

    def encoder_inputs(self, batch):
        audio, lens = batch.audio_feats
        return audio, lens, audio.shape[1]

    def valid_frame_count(self, num_inputs, num_output_frames):
        return min(num_inputs, num_output_frames)

    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        audio, lens = batch.audio_feats
        video, _ = batch.video_feats
        return self.modules.head(self.modules.fusion(audio, video, lens)), lens

    def anneal_learning_rates(self, valid_loss):
        _, new_lr = self.hparams.lr_annealing(valid_loss)
        update_learning_rate(self.optimizer, new_lr)
        return {"lr": new_lr}


def initialise_head_from_bundle(head, bundle_path):
    """Copy the audio-only model's classifier into `head` (the original's `pretrain: True`)."""
    from svt.inference.bundle import WEIGHTS_FILE, find_bundle

    weights = torch.load(find_bundle(bundle_path) / WEIGHTS_FILE, map_location="cpu",
                         weights_only=True)
    head.load_state_dict({k[len("head."):]: v for k, v in weights.items()
                          if k.startswith("head.")})
