"""Distilling FCPE into a `CompactPitchNetwork`: the same salience at a fifth of the cost.

FCPE is most of the shipped transcriber's time (about 80 % on a CPU) and is bound by its
multiply-adds, not by how they are computed. A narrower, shallower network of the same design,
trained to output FCPE's salience from the same log-mel, takes its place at inference:

    from svt.training.pitch_distillation import (DistillationSettings, distill_pitch_network,
                                                 pitch_agreement, teacher_features)
    frames = teacher_features(encoder, utterances, cache)        # FCPE's (log-mel, salience)
    network = distill_pitch_network(frames, DistillationSettings(steps=3000), checkpoint=path)
    report = pitch_agreement(network, held_out_frames, encoder.fcpe.model.cent_table)
    encoder.use_compact_pitch_network(network)                   # then export the bundle

The teacher's outputs are the training targets (binary cross-entropy per salience bin, FCPE's
own training loss), so any audio serves, no labels needed; the SingingTranscriber recipe uses a
generated corpus, and can add a folder of the user's own unlabelled recordings
(`recording_pieces`, `mix_frames`): distilled on generated singing alone, the student hears a
voice where FCPE hears none at the edges of recorded notes (docs/shipped-model.md). Training
takes a fixed number of steps (the same result on a slow or a fast machine), each a batch of
random crops drawn from a generator seeded by (seed, step), and resumes from its checkpoint
(written atomically every `checkpoint_every` steps).
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from svt.errors import SvtUserError
from svt.models.pitch_network import (
    MEL_BINS,
    SALIENCE_BINS,
    VOICING_THRESHOLD,
    CompactPitchNetwork,
    salience_to_midi,
)


#: Recordings are cut into pieces of the training utterances' length (5 s); a last piece shorter
#: than this is left out (FCPE normalises over its whole input, so a scrap of a second would be
#: heard unlike anything at inference, where chunks are 5 to 6 s).
MIN_PIECE_SECONDS = 1.0


class DistillationDataError(SvtUserError, ValueError):
    """Recordings to distil on that cannot be used (a missing folder, no audio in it)."""


@dataclasses.dataclass(frozen=True)
class DistillationSettings:
    """The student's size and how it is trained (defaults: the shipped compact network)."""

    dim: int = 256
    num_layers: int = 4
    expansion: int = 2
    kernel_size: int = 31
    steps: int = 3000
    batch_size: int = 10
    crop_frames: int = 500          # 5 s: the utterances FCPE computed the targets on, whole
    learning_rate: float = 2e-3     # AdamW, linear warm-up then a cosine decay to 0
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self):
        for name in ("dim", "num_layers", "expansion", "kernel_size", "steps", "batch_size",
                     "crop_frames", "checkpoint_every"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"distillation: {name} must be a whole number, 1 or more, got "
                                 f"{value!r}")
        for name in ("warmup_steps", "seed"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"distillation: {name} must be a whole number, 0 or more, got "
                                 f"{value!r}")
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise ValueError(f"distillation: {name} must be a number, 0 or more, got "
                                 f"{value!r}")

    def network_options(self) -> dict:
        return {"dim": self.dim, "num_layers": self.num_layers, "expansion": self.expansion,
                "kernel_size": self.kernel_size}


def teacher_features(encoder, items, cache=None, progress=None, total=None) -> list:
    """FCPE's log-mel and salience for each `(id, waveform)` of `items` (16-kHz 1-D arrays or
    tensors; read one at a time, so a lazy iterable keeps only one waveform in memory), as
    float16 arrays `(T, 128 + 360)`: the distillation data. `cache` (a `PitchFeatureCache`)
    reads what an earlier run or the recipe's training stored and stores what it computes.
    `encoder` must run FCPE itself (no compact network in its place). `total`: the number of
    items, for the progress bar."""
    if encoder.compact_pitch_network is not None:
        raise ValueError("teacher_features: the encoder computes its salience with a compact "
                         "network; the teacher is FCPE (an encoder without "
                         "compact_pitch_network)")
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    bar = progress(total=total, unit="utterance", desc="FCPE outputs", leave=False) \
        if progress else None
    device = next(encoder.parameters()).device
    frames = []
    for item_id, wav in items:
        wav = torch.as_tensor(wav, dtype=torch.float32).to(device)[None]
        if cache is not None:
            mel, salience = cache.pitch_features(encoder, wav, None, [item_id])
        else:
            mel, salience = encoder.pitch_features(wav)
        frames.append(torch.cat([mel[0], salience[0]], dim=-1).cpu().numpy().astype(np.float16))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return frames


def recording_files(folder) -> list:
    """The audio files under `folder` (sorted; what `recording_pieces` reads), or a
    `DistillationDataError` saying why there are none (no folder, no audio files, none of at
    least `MIN_PIECE_SECONDS`)."""
    from svt.audio import audio_info
    from svt.datasets.layout import find_audio_files

    folder = Path(folder)
    if not folder.is_dir():
        raise DistillationDataError(f"{folder}: the recordings to distil FCPE on must be a "
                                    "folder of audio files, and this is not a folder")
    files = find_audio_files(folder)
    if not files:
        raise DistillationDataError(f"{folder}: no audio files (.wav, .flac, .ogg, .mp3, ...) in "
                                    "this folder or below it; point it at your recordings")
    if not any(frames >= MIN_PIECE_SECONDS * rate
               for rate, frames, _ in (audio_info(path) for path in files)):
        raise DistillationDataError(f"{folder}: every audio file here is shorter than "
                                    f"{MIN_PIECE_SECONDS:g} s; distillation needs recordings of "
                                    "singing, cut into 5-s pieces")
    return files


def recording_pieces(folder, piece_seconds: float = 5.0, sample_rate: int = 16000):
    """`(id, waveform)` for consecutive pieces of `piece_seconds` of every audio file under
    `folder` (16-kHz mono float32, read one file at a time): unlabelled recordings to distil on,
    for `teacher_features`. Ids are the file's path below `folder` and the piece's start in
    samples; a last piece under `MIN_PIECE_SECONDS` is left out."""
    from svt.audio import read_audio

    if not piece_seconds >= MIN_PIECE_SECONDS:
        raise ValueError(f"recording_pieces: piece_seconds must be at least "
                         f"{MIN_PIECE_SECONDS:g} s, got {piece_seconds!r}")
    folder = Path(folder)
    piece = int(round(piece_seconds * sample_rate))
    shortest = int(round(MIN_PIECE_SECONDS * sample_rate))
    for path in recording_files(folder):
        wav = read_audio(path, sample_rate)
        name = path.relative_to(folder).as_posix()
        for start in range(0, len(wav), piece):
            if len(wav) - start >= shortest:
                yield f"{name}@{start}", wav[start:start + piece]


def mix_frames(generated: list, recorded: list, recorded_share: float) -> list:
    """Training items where `recorded` (fewer, usually) make up `recorded_share` of the draws:
    `generated` once and `recorded` repeated (the same arrays, no copies) to the nearest whole
    number of times that gives the share, at least once."""
    if not 0.0 <= recorded_share < 1.0:
        raise ValueError(f"mix_frames: recorded_share must be in [0, 1), got {recorded_share!r}")
    if not recorded or recorded_share == 0.0:
        return list(generated)
    if not generated:
        return list(recorded)
    wanted = recorded_share / (1.0 - recorded_share) * len(generated)
    return list(generated) + list(recorded) * max(1, round(wanted / len(recorded)))


def learning_rate(settings: DistillationSettings, step: int) -> float:
    """The rate at `step` (0-based): linear warm-up, then a cosine decay to 0 at the last step."""
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    done = (step - settings.warmup_steps) / span
    return settings.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))


def training_batch(frames: list, settings: DistillationSettings, step: int):
    """Step `step`'s batch: `(log_mel (B, T, 128), salience (B, T, 360))`, random crops of
    random utterances from a generator seeded by (seed, step), all cut to the shortest."""
    rng = np.random.default_rng([settings.seed, step])
    picks = rng.integers(0, len(frames), settings.batch_size)
    crop = min(settings.crop_frames, min(len(frames[i]) for i in picks))
    starts = [int(rng.integers(0, len(frames[i]) - crop + 1)) for i in picks]
    batch = np.stack([frames[i][s:s + crop] for i, s in zip(picks, starts)]).astype(np.float32)
    batch = torch.from_numpy(batch)
    return batch[..., :MEL_BINS], batch[..., MEL_BINS:]


def distill_pitch_network(frames: list, settings: DistillationSettings = DistillationSettings(),
                          checkpoint=None, progress=None, log=None,
                          device="cpu") -> CompactPitchNetwork:
    """A `CompactPitchNetwork` trained (on `device`) to output FCPE's salience from its log-mel
    over `frames` (`teacher_features`' arrays); returned on the CPU. `checkpoint`: a file the
    training state is saved to every `settings.checkpoint_every` steps and resumed from (refused
    if written with other settings). `log(step, loss)` is called at each checkpoint with the
    mean loss since the last."""
    frames = [np.asarray(f) for f in frames]
    width = MEL_BINS + SALIENCE_BINS
    bad = [i for i, f in enumerate(frames) if f.ndim != 2 or f.shape[1] != width or len(f) == 0]
    if not frames or bad:
        raise ValueError(f"distill_pitch_network: needs arrays (T, {width}) of FCPE's log-mel and "
                         f"salience (teacher_features), got {len(frames)} with "
                         f"{len(bad)} of another shape")
    torch.manual_seed(settings.seed)
    network = CompactPitchNetwork(**settings.network_options())
    # Start from the teacher's background rate (most bins of most frames are near 0): training
    # then spends its steps on where the salience peaks, not on learning that it is mostly low.
    mean = float(np.mean([f[:, MEL_BINS:].astype(np.float32).mean() for f in frames]))
    mean = min(max(mean, 1e-4), 0.5)
    with torch.no_grad():
        network.output.bias.fill_(math.log(mean / (1.0 - mean)))
    network.to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    start, recorded = 0, dataclasses.asdict(settings)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state.get("settings") != recorded:
            raise ValueError(f"{checkpoint}: a distillation checkpoint written with other "
                             f"settings ({state.get('settings')}); delete it to start again "
                             "with these")
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    network.train()
    # Tiny gradients and optimiser moments become denormal floats, which a CPU computes with up
    # to 20 times slower (measured here: 12.7 against 211 s for the same 250 steps).
    flushing = torch.set_flush_denormal(True)
    try:
        _train(network, optimizer, frames, settings, start, recorded, checkpoint, progress, log,
               device)
    finally:
        if flushing:
            torch.set_flush_denormal(False)
    return network.cpu().eval()


def _train(network, optimizer, frames, settings, start, recorded, checkpoint, progress, log,
           device):
    bar = progress(total=settings.steps, initial=start, unit="step", desc="distilling FCPE",
                   leave=False) if progress else None
    losses = []
    for step in range(start, settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(settings, step)
        mel, target = (t.to(device) for t in training_batch(frames, settings, step))
        loss = F.binary_cross_entropy_with_logits(network.logits(mel), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if bar:
            bar.update(1)
        done = step + 1
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            if log:
                log(done, float(np.mean(losses)))
            losses = []
            if checkpoint is not None:
                from svt.fileio import atomic_path

                with atomic_path(checkpoint) as tmp:
                    torch.save({"settings": recorded, "step": done,
                                "network": network.state_dict(),
                                "optimizer": optimizer.state_dict()}, tmp)
    if bar:
        bar.close()


@torch.no_grad()
def pitch_agreement(network, frames: list, cent_table: torch.Tensor,
                    threshold: float = VOICING_THRESHOLD, device="cpu") -> dict:
    """How closely `network` (a `CompactPitchNetwork`) follows FCPE on `frames`
    (`teacher_features`' arrays, held out from training): the share of frames whose voicing
    decision (salience peak >= `threshold`) agrees, and over the frames both call voiced, the
    share whose f0 is within 50 and 20 cents of FCPE's and the median distance in cents."""
    network.eval().to(device)
    cent_table = cent_table.to(device)
    agree = voiced = within50 = within20 = total = 0
    distances = []
    for array in frames:
        array = torch.from_numpy(np.asarray(array, dtype=np.float32))[None].to(device)
        mel, teacher = array[..., :MEL_BINS], array[..., MEL_BINS:]
        student = network(mel)
        teacher_voiced = teacher.max(-1).values >= threshold
        student_voiced = student.max(-1).values >= threshold
        both = teacher_voiced & student_voiced
        agree += int((teacher_voiced == student_voiced).sum())
        total += teacher_voiced.numel()
        cents = 100.0 * (salience_to_midi(student, cent_table)
                         - salience_to_midi(teacher, cent_table))[both].abs()
        voiced += int(both.sum())
        within50 += int((cents <= 50).sum())
        within20 += int((cents <= 20).sum())
        distances.append(cents.cpu().numpy())
    if total == 0:
        raise ValueError("pitch_agreement: no frames to compare")
    distances = np.concatenate(distances) if distances else np.zeros(0)
    return {"frames": total, "voicing_agreement": agree / total,
            "voiced_frames": voiced,
            "f0_within_50_cents": within50 / voiced if voiced else float("nan"),
            "f0_within_20_cents": within20 / voiced if voiced else float("nan"),
            "median_f0_distance_cents": float(np.median(distances)) if voiced else float("nan")}
