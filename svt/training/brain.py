"""The SpeechBrain `Brain` every recipe trains and evaluates with.

Schedule (docs/original-recipes.md §4): linear probing of the head for `linear_prob_epochs` epochs (the encoder
gets no gradient and its optimiser does not step), then full fine-tuning; Adam for the encoder and
Adadelta for the head, each annealed by its NewBob scheduler on the validation loss; gradients
clipped to a global norm of `max_grad_norm`; the checkpoint kept for testing is chosen by
validation loss or validation COnPOff F1 (`selection_metric` in the YAML).

Evaluation stitches utterance predictions into songs (any batch size), decodes them with
`frames_to_notes`, scores every song, and writes per-song notes (JSON and MIDI) and metrics (CSV).

The forward pass and the objectives are here too: `compute_forward` runs the encoder (`encode`)
and the head on what `encoder_inputs` takes from the batch, and returns `Predictions` (the logits,
the input lengths and, for encoders with a pitch network, the sung pitch); `compute_objectives`
is the YAML's `loss` in training, and the per-utterance losses plus the song scores otherwise. A
recipe subclasses `TranscriptionBrain` and defines only what is specific to its task:
`encoder_inputs` (which batch field the encoder reads: `batch.sig` for audio, `batch.video` for
lip video), and `encode` where the encoder takes more than its inputs (the feature cache of
SingingTranscriber) or `compute_forward` where there is no single encoder (the fusion recipe).

The hyperparameters a recipe YAML must define: `modules` (`encoder`, `head`), `encoder`, `head`,
`loss`, `label_frame_rate`, `onset_threshold`, `offset_threshold`, `linear_prob_epochs`,
`head_opt_class`, `encoder_opt_class` (may be null for a frozen encoder), `lr_annealing_head`,
`lr_annealing_encoder`, `epoch_counter`, `train_logger`, `output_folder`, `tolerances`,
`selection_metric` ("loss" or "COnPOff_f1").
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
from pathlib import Path
from typing import NamedTuple

import speechbrain as sb
import torch
from speechbrain.nnet.schedulers import update_learning_rate
from speechbrain.utils.distributed import if_main_process

from svt.data.utterances import SongStitcher
from svt.datasets.songs import file_stem
from svt.errors import SvtUserError
from svt.fileio import write_json_atomic, write_text_atomic
from svt.inference.bundle import export_bundle
from svt.models.head import LOSS_NAMES, frame_predictions
from svt.notes.decoding import decode_frames
from svt.notes.formats import read_notes, write_notes_json, write_notes_midi
from svt.notes.scoring import METRIC_KEYS, aggregate, match_counts

logger = logging.getLogger(__name__)

SELECTION_KEYS = {"loss": "min", "COnPOff_f1": "max"}
#: Learning-rate options named in the advice of a diverged run (those the recipe has).
LR_OPTIONS = ("lr", "lr_ssl", "lr_encoder")


class TrainingDivergedError(SvtUserError, FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter; the message names the epoch and
    step and the likely cause. Nothing non-finite is saved as a checkpoint or exported."""


class Predictions(NamedTuple):
    """What `compute_forward` hands to `compute_objectives` for a batch of utterances."""

    #: `(B, T, 20)` head outputs.
    logits: torch.Tensor
    #: `(B,)` relative lengths of the encoder's inputs.
    lens: torch.Tensor
    #: The padded input length (samples or video frames) `lens` is relative to.
    num_inputs: int
    #: `(B, T)` sung pitch in fractional MIDI (NaN = unvoiced), from encoders with a pitch network
    #: (`FrameEncoder.sung_pitch`); None for the others.
    sung_pitch: torch.Tensor | None = None


class TranscriptionBrain(sb.Brain):
    """Encoder + linear head trained on frame labels, evaluated on whole songs."""

    #: Decode songs as `svt.transcribe` decodes recordings (`decode_frames(...,
    #: whole_recording=True)`: the head's pitch where the pitch network strayed from the voice).
    #: Off while training: a head still learning would override the pitch network's good pitches
    #: and mislead model selection; on for evaluating a trained bundle.
    whole_recording_decoding = False

    # ------------------------------------------------------------------ optimisers and schedule
    def init_optimizers(self):
        self.head_optimizer = self.hparams.head_opt_class(self.modules.head.parameters())
        self.optimizers_dict = {"head_optimizer": self.head_optimizer}
        if self.encoder_is_trainable:
            self.encoder_optimizer = self.hparams.encoder_opt_class(
                self.modules.encoder.parameters())
            self.optimizers_dict["encoder_optimizer"] = self.encoder_optimizer
        if self.checkpointer is not None:
            for name, optimizer in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(name, optimizer)

    @property
    def encoder_is_trainable(self):
        return (self.hparams.encoder_opt_class is not None
                and any(p.requires_grad for p in self.hparams.encoder.parameters()))

    @property
    def linear_probing(self):
        """True during the first `linear_prob_epochs` epochs (and always for a frozen encoder)."""
        epoch = self.hparams.epoch_counter.current
        return not self.encoder_is_trainable or epoch <= self.hparams.linear_prob_epochs

    def freeze_optimizers(self, optimizers):
        if self.linear_probing:
            return {"head_optimizer": optimizers["head_optimizer"]}
        return optimizers

    def optimizers_step(self):
        """As SpeechBrain's, but clipping the global gradient norm over all stepped parameters
        together (as the original) rather than per optimiser."""
        optimizers = self.freeze_optimizers(self.optimizers_dict)
        for opt in optimizers.values():
            self.scaler.unscale_(opt)
        params = [p for opt in optimizers.values() for g in opt.param_groups for p in g["params"]]
        total_norm = torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        if not self.scaler.is_enabled():  # with fp16 the GradScaler skips non-finite steps
            if self.skip_nonfinite_grads:
                self.check_gradients()
            elif not torch.isfinite(total_norm):
                # Stepping would write NaN into every parameter, which no later step undoes.
                raise self.diverged(f"the gradient norm is {float(total_norm)}")
        for opt in optimizers.values():
            self.scaler.step(opt)
        self.scaler.update()
        self.zero_grad(set_to_none=True)
        self.optimizer_step += 1

    # ------------------------------------------------------------------ non-finite training
    def check_loss_isfinite(self, loss):
        """Stop at the first non-finite training loss (SpeechBrain only counts them per epoch and
        goes on, so a diverged run trained to NaN, exited 0 and exported NaN weights). With
        `--skip_nonfinite_grads` the batch's gradients are dropped instead, and SpeechBrain's
        `--nonfinite_patience` bad batches per epoch are allowed while the parameters stay
        finite."""
        if torch.isfinite(loss):
            return
        if not self.skip_nonfinite_grads or self.nonfinite_parameters():
            raise self.diverged(f"the training loss is {float(loss.detach())}")
        self.nonfinite_count += 1
        if self.nonfinite_count > self.nonfinite_patience:
            raise self.diverged(f"the training loss was not finite in {self.nonfinite_count} "
                                f"batches of this epoch (--nonfinite_patience "
                                f"{self.nonfinite_patience})")
        logger.warning("non-finite training loss at %s: its gradients are dropped "
                       "(--skip_nonfinite_grads)", self._training_position())

    def nonfinite_parameters(self, modules=None) -> list[str]:
        """Names of the trainable modules' parameters holding NaN or infinite values."""
        modules = self.modules if modules is None else modules
        return [name for name, p in modules.named_parameters() if not torch.isfinite(p).all()]

    def _training_position(self) -> str:
        counter = getattr(self.hparams, "epoch_counter", None)
        epoch = counter.current if counter is not None else "?"
        return f"epoch {epoch}, step {self.step}"

    def diverged(self, what: str) -> TrainingDivergedError:
        """The error stopping a run whose training became non-finite (`what`), naming where and
        the likely causes."""
        rates = ", ".join(f"--{k} {getattr(self.hparams, k)}" for k in LR_OPTIONS
                          if getattr(self.hparams, k, None) is not None)
        return TrainingDivergedError(
            f"training diverged at {self._training_position()}: {what}. Likely cause: a "
            f"learning rate too high ({rates or 'the learning rates'}), or a too large "
            f"--max_grad_norm ({self.max_grad_norm}); with --precision fp16, try bf16 or fp32. "
            "Checkpoints saved so far are unaffected; lower the learning rate and train into a "
            "new --output_folder (a resume keeps the recorded learning rates)")

    def check_finite_model(self, modules, where: str) -> None:
        """TrainingDivergedError when a parameter of `modules` (a ModuleDict or module) is not
        finite (`where`: what holds them, for the message)."""
        bad = self.nonfinite_parameters(modules)
        if bad:
            shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise TrainingDivergedError(
                f"{where} has non-finite (NaN or infinite) parameters ({shown}); nothing was "
                "exported. Training diverged: lower the learning rate (or --max_grad_norm) and "
                "train into a new --output_folder")

    def zero_grad(self, set_to_none=False):
        # Clear every optimiser (also the encoder's during probing, whose grads stay None).
        for opt in (self.optimizers_dict or {}).values():
            opt.zero_grad(set_to_none=set_to_none)

    # ------------------------------------------------------------------ forward and objectives
    def encoder_inputs(self, batch):
        """The encoder's inputs in `batch`: a padded batch field `(data, relative lengths)`, padded
        along dim 1 as SpeechBrain's `PaddedBatch` gives it (`batch.sig` for audio recipes,
        `batch.video` for lip video). Each recipe's Brain says which field it reads."""
        raise NotImplementedError(f"{type(self).__name__} must define encoder_inputs(batch): which "
                                  "padded batch field the encoder reads, e.g. `return batch.sig`")

    def encode(self, inputs, lens, batch, stage):
        """Features `(B, T, D)` of the encoder for `encoder_inputs(batch)` (run inside
        `encoder_context(stage)`); a recipe whose encoder takes more than its inputs overrides
        this."""
        return self.modules.encoder(inputs, lens)

    def compute_forward(self, batch, stage) -> Predictions:
        """Inputs -> encoder -> head, with the sung pitch where the encoder reports one."""
        batch = batch.to(self.device)
        inputs, lens = self.encoder_inputs(batch)
        with self.encoder_context(stage):
            features = self.encode(inputs, lens, batch, stage)
        encoder = self.hparams.encoder
        sung_pitch = encoder.sung_pitch(features) if encoder.sung_pitch is not None else None
        return Predictions(self.modules.head(features), lens, inputs.shape[1], sung_pitch)

    def compute_objectives(self, predictions: Predictions, batch, stage):
        """The training loss at TRAIN; at VALID and TEST, the evaluation loss, with the
        utterances' frame predictions handed to the song stitcher and scorer."""
        if stage == sb.Stage.TRAIN:
            return self.training_loss(predictions.logits, batch)
        return self.evaluation_loss(predictions, batch)

    def encoder_context(self, stage):
        """No encoder gradient outside training and during linear probing (the original ran the
        frozen encoder with gradients and dropped them; here it costs nothing and is DDP-safe)."""
        if stage != sb.Stage.TRAIN or self.linear_probing:
            return torch.no_grad()
        return contextlib.nullcontext()

    def training_loss(self, logits, batch):
        """The YAML's `loss` over the valid label frames of the batch."""
        labels, label_lens = batch.labels
        loss, _ = self.hparams.loss(logits, labels, label_lens)
        return loss

    def evaluation_loss(self, predictions: Predictions, batch):
        """Valid/test stages: per-utterance losses for the statistics, and the utterance's frame
        predictions (with the sung pitch, where there is one) handed to the song stitcher (songs
        are decoded and scored once complete)."""
        labels, label_lens = batch.labels
        totals, parts = self.hparams.loss(predictions.logits, labels, label_lens,
                                          reduction="batch")
        self.utterance_losses.append(totals.detach().cpu())
        for name in LOSS_NAMES:
            self.utterance_parts[name].append(parts[name].detach().cpu())
        label_frames = torch.round(label_lens.float() * labels.shape[1]).long()
        self.collect_song_predictions(batch, predictions, label_frames)
        return totals.mean()

    # ------------------------------------------------------------------------------- evaluation
    def valid_frame_count(self, num_inputs: int, num_output_frames: int) -> int:
        """Output frames of an utterance of `num_inputs` samples (audio) or frames (video)."""
        return min(int(self.hparams.encoder.num_frames(num_inputs)), num_output_frames)

    def collect_song_predictions(self, batch, predictions: Predictions, label_frames=None):
        """Hand each utterance's valid frames to the song stitcher. With `label_frames`, an
        utterance keeps no more frames than it has labels, so stitched songs stay on the label
        grid (an encoder with centred frames gives 501 for a 5-s utterance at 100 frames/s;
        keeping the extra frame would shift each later utterance by one frame)."""
        logits = predictions.logits
        outputs = [t.cpu().numpy() for t in frame_predictions(logits)]
        if predictions.sung_pitch is not None:
            outputs.append(predictions.sung_pitch.detach().float().cpu().numpy())
        for b in range(logits.shape[0]):
            num_inputs = int(round(float(predictions.lens[b]) * predictions.num_inputs))
            n = self.valid_frame_count(num_inputs, logits.shape[1])
            if label_frames is not None:
                n = min(n, int(label_frames[b]))
            done = self.stitcher.add(batch.song_key[b], int(batch.utter_index[b]),
                                     int(batch.utter_count[b]),
                                     tuple(output[b, :n] for output in outputs))
            if done is not None:
                self.score_song(done[0], done[1], batch.song_anno[b])

    def score_song(self, song_key, frames, reference_path):
        notes = decode_frames(frames, getattr(self.hparams, "decoder", "paper"),
                              onset_threshold=self.hparams.onset_threshold,
                              offset_threshold=self.hparams.offset_threshold,
                              frame_rate=self.hparams.label_frame_rate,
                              onset_delay=getattr(self.hparams, "onset_delay", 0.0),
                              whole_recording=self.whole_recording_decoding)
        reference = read_notes(reference_path)
        self.song_scores[song_key] = match_counts(
            reference, notes, song=song_key, **self.hparams.tolerances)
        self.song_notes[song_key] = notes

    def on_stage_start(self, stage, epoch=None):
        self.stitcher = SongStitcher()
        self.song_scores, self.song_notes = {}, {}
        self.utterance_losses = []
        self.utterance_parts = {name: [] for name in LOSS_NAMES}

    def stage_statistics(self):
        if self.stitcher.incomplete():
            raise RuntimeError(f"songs with missing utterances at the end of evaluation: "
                               f"{self.stitcher.incomplete()}")
        losses = torch.cat(self.utterance_losses)
        stats = {"loss": float(losses.mean())}
        stats.update({f"{name}_loss": float(torch.cat(v).mean())
                      for name, v in self.utterance_parts.items()})
        if self.song_scores:
            summary = aggregate(self.song_scores)
            stats.update(summary["mean"])
            stats.update({f"pooled_{k}": v for k, v in summary["pooled"].items()})
        return stats

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            # Before validation saves a checkpoint: the last step may have left NaN weights.
            bad = self.nonfinite_parameters()
            if bad:
                raise self.diverged(f"the parameters {', '.join(bad[:3])}"
                                    f"{' ...' if len(bad) > 3 else ''} are no longer finite")
            return
        stats = self.stage_statistics()
        if stage == sb.Stage.VALID:
            lrs = self.anneal_learning_rates(stats["loss"])
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, **lrs},
                train_stats={"loss": self.train_loss},
                valid_stats=_rounded(stats))
            if self.checkpointer is not None:
                key = self.hparams.selection_metric
                if key not in SELECTION_KEYS:
                    raise ValueError(f"selection_metric must be one of {list(SELECTION_KEYS)}, "
                                     f"got {key!r}")
                self.checkpointer.save_and_keep_only(
                    meta={"loss": stats["loss"], "COnPOff_f1": stats.get("COnPOff_f1", 0.0)},
                    **{f"{SELECTION_KEYS[key]}_keys": [key]})
        else:
            counter = getattr(self.hparams, "epoch_counter", None)
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": counter.current if counter else "bundle",
                            "test set": self.test_name},
                test_stats=_rounded(stats))
            if if_main_process():
                self.write_test_outputs(stats)
        self.last_stats = stats

    def anneal_learning_rates(self, valid_loss):
        lrs = {}
        _, new_lr = self.hparams.lr_annealing_head(valid_loss)
        update_learning_rate(self.head_optimizer, new_lr)
        lrs["lr_head"] = new_lr
        if "encoder_optimizer" in self.optimizers_dict:
            _, new_lr = self.hparams.lr_annealing_encoder(valid_loss)
            update_learning_rate(self.encoder_optimizer, new_lr)
            lrs["lr_encoder"] = new_lr
        return lrs

    def select_checkpoint(self):
        """Load the checkpoint chosen by `selection_metric` (best valid loss or COnPOff F1)."""
        key = self.hparams.selection_metric
        self.on_evaluate_start(**{f"{SELECTION_KEYS[key]}_key": key})

    def export_bundle(self, folder, settings: dict):
        """Write the selected checkpoint's encoder + head as an inference bundle (main process
        only); returns the folder, or None on the other processes."""
        self.select_checkpoint()
        self.check_finite_model(torch.nn.ModuleDict({"encoder": self.hparams.encoder,
                                                     "head": self.hparams.head}),
                                "the selected checkpoint")
        if not if_main_process():
            return None
        export_bundle(folder, self.hparams.encoder, self.hparams.head, settings)
        logger.info("inference bundle written to %s", folder)
        return Path(folder)

    def evaluate_test_set(self, name, dataset, loader_kwargs):
        """Evaluate the selected checkpoint on one test set; returns its statistics."""
        self.test_name = name
        key = getattr(self.hparams, "selection_metric", "loss")
        self.evaluate(dataset, test_loader_kwargs=loader_kwargs,
                      **{f"{SELECTION_KEYS[key]}_key": key})
        return self.last_stats

    def write_test_outputs(self, stats):
        """Per-song notes (JSON + MIDI), per-song metric CSV and the summary JSON of a test set."""
        folder = Path(self.hparams.output_folder) / "predictions" / self.test_name
        for song_key, notes in self.song_notes.items():
            stem = file_stem(song_key.replace("/", "__"))
            write_notes_json(folder / f"{stem}.json", notes)
            write_notes_midi(folder / f"{stem}.mid", notes)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["song", "num_ref", "num_est", *METRIC_KEYS])
        for song_key, score in self.song_scores.items():
            metrics = score.metrics
            writer.writerow([song_key, score.num_ref, score.num_est,
                             *(f"{metrics[k]:.6f}" for k in METRIC_KEYS)])
        write_text_atomic(Path(self.hparams.output_folder) / f"scores_{self.test_name}.csv",
                          buffer.getvalue())
        write_json_atomic(Path(self.hparams.output_folder) / f"summary_{self.test_name}.json",
                          stats, indent=2)


def _rounded(stats):
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()
            if not k.startswith("pooled_")}
