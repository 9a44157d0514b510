"""Lip videos: validation, partial reads, the AV-HuBERT preprocessing and the video dataset.

N20EMv2 ships one lip-region video per song, `data/<entry>/video_50fps.npy`: a numpy array
`(T, H, W)` of grayscale uint8 frames at 50 fps, aligned with `vocals.wav` (docs/original-recipes.md §2.2). The video
recipe feeds AV-HuBERT 88x88 crops of it, preprocessed exactly as the original
(`train_video_ssl.py` + AV-HuBERT's `utils.py`; docs/original-recipes.md §3.3, docs/av-hubert.md §1):

1. divide by 255;
2. training: one random 88x88 crop per clip, top/left offsets uniform integers in `[0, H-88]` and
   `[0, W-88]` (both ends included), then a left-right flip of every frame with probability 0.5;
   evaluation: the centre crop at offsets `int(round(H-88)/2)`, `int(round(W-88)/2)` (AV-HuBERT's
   `CenterCrop`: the rounding applies to the integer difference, so the division floors: 4 for
   96 px, 5 for 99 px);
3. `(x - 0.421) / 0.165`, returned as float32 `(T, 88, 88)`; the Brain adds the channel axis and
   gives the encoder `(B, 1, T, 88, 88)`.

Differences from the original (all deliberate):

* randomness comes from a seedable `numpy.random.Generator`, not Python's `random` (which the
  original never seeded); in `video_dataset` every DataLoader worker and epoch gets its own stream;
* only the utterance's frames are read (memory-mapped `.npy`), not the whole song per utterance.
  The transform is drawn per utterance, as in the original (which re-loaded and re-transformed the
  whole song for every utterance, so each utterance already had its own crop and flip);
* the original's training-only quirk that cut the first utterance to `[0, 50*D)` before slicing
  (docs/original-recipes.md §9.16) is not reproduced; utterances are sliced by the same `svt.data.utterances.utterance_slice`
  rule as the audio, so audio and video utterances of a song cover the same time span.

Accepted input: uint8 arrays only. The original divides by 255 whatever the dtype, so a float array
scaled 0..1 would silently become an almost black video; telling 0..1 from 0..255 floats would need
reading every frame. `VideoError` says how to convert instead.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from svt.data.utterances import utterance_slice
from svt.errors import SvtUserError

#: Frame rate of the N20EMv2 lip videos (and of the video recipe's labels).
VIDEO_FPS = 50
#: Side of the square crop fed to AV-HuBERT.
CROP = 88
#: AV-HuBERT's pixel normalisation (task config `image_mean`, `image_std`), after dividing by 255.
MEAN, STD = 0.421, 0.165
#: Default allowed difference between the video length and the audio length (0.1 s at 50 fps).
TOLERANCE_FRAMES = 5

_CONVERT_HINT = ("save the video as a uint8 array of shape (T, H, W): grayscale frames with values "
                 "0..255 (from floats in 0..1: `np.round(x * 255).astype(np.uint8)`; from floats "
                 "in 0..255: `np.clip(np.round(x), 0, 255).astype(np.uint8)`; from colour frames "
                 "(T, H, W, 3): convert each frame to grayscale first)")


class VideoError(SvtUserError, ValueError):
    """A video file that is missing, unreadable or not usable; the message names the file."""


# ---------------------------------------------------------------------------- reading

def _open(path) -> np.ndarray:
    """The video as a read-only memory map (header read, no pixel data)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such video file; expected a numpy .npy array (T, H, W) of "
                         "grayscale uint8 frames (N20EMv2: data/<entry>/video_50fps.npy)")
    try:
        video = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        # numpy's advice to load "unsafely" with allow_pickle=True is not for data from others.
        reason = str(err).split(" If you trust")[0].split("allow_pickle")[0].rstrip(" ;,.(")
        raise VideoError(f"{path}: cannot read this file as a numpy .npy array ({reason}); "
                         f"{_CONVERT_HINT} with np.save") from None
    if not isinstance(video, np.ndarray):  # an .npz archive opens as a mapping of arrays
        if hasattr(video, "close"):
            video.close()
        raise VideoError(f"{path}: this is a .npz archive, not a .npy array; save the video "
                         "alone with np.save")
    if video.ndim != 3:
        raise VideoError(f"{path}: the video array has shape {video.shape}; expected (T, H, W) "
                         f"grayscale frames; {_CONVERT_HINT}")
    if video.dtype != np.uint8:
        raise VideoError(f"{path}: the video array has dtype {video.dtype}; expected uint8; "
                         f"{_CONVERT_HINT}")
    return video


def video_info(path) -> tuple[int, int, int, np.dtype]:
    """`(num_frames, height, width, dtype)` of a video `.npy`, from its header only.

    Raises VideoError for a missing or unreadable file, a shape other than `(T, H, W)` or a dtype
    other than uint8."""
    video = _open(path)
    return int(video.shape[0]), int(video.shape[1]), int(video.shape[2]), video.dtype


def validate_video(path, expected_frames: int | None = None,
                   tolerance_frames: int = TOLERANCE_FRAMES, crop: int = CROP) \
        -> tuple[int, int, int, np.dtype]:
    """Check that a video is usable; returns `video_info(path)` or raises VideoError.

    Checks (header only): readable `.npy`, shape `(T, H, W)`, uint8, at least one frame, frames at
    least `crop` x `crop` pixels, and, with `expected_frames` (the audio's duration in video
    frames), `|T - expected_frames| <= tolerance_frames`."""
    num_frames, height, width, dtype = video_info(path)
    if num_frames == 0:
        raise VideoError(f"{path}: the video holds no frames; replace it with the song's video")
    if height < crop or width < crop:
        raise VideoError(f"{path}: frames are {height}x{width} pixels; the model needs at least "
                         f"{crop}x{crop} (lip regions are usually cut at 96x96)")
    if expected_frames is not None and abs(num_frames - int(expected_frames)) > tolerance_frames:
        raise VideoError(
            f"{path}: the video has {num_frames} frames but the audio lasts {int(expected_frames)} "
            f"frames ({num_frames - int(expected_frames):+d}, more than the tolerance of "
            f"{tolerance_frames}); check that the video belongs to the song, is cut like the audio "
            "and has the expected frame rate")
    return num_frames, height, width, dtype


def open_video(video, expected_frames: int | None = None,
               tolerance_frames: int = TOLERANCE_FRAMES, crop: int = CROP) -> np.ndarray:
    """A lip video for inference: a `.npy` path (validated as `validate_video` does, then memory
    mapped: frames are read when sliced) or an array, uint8 `(T, H, W)`; VideoError otherwise."""
    if isinstance(video, (str, os.PathLike)):
        validate_video(video, expected_frames, tolerance_frames, crop)
        return _open(video)
    frames = np.asarray(video)
    name = "the video array"
    if frames.ndim != 3 or frames.dtype != np.uint8:
        raise VideoError(f"{name} is {frames.dtype} {frames.shape}; expected uint8 (T, H, W) "
                         f"grayscale frames; {_CONVERT_HINT}")
    if len(frames) == 0 or min(frames.shape[1:]) < crop:
        raise VideoError(f"{name} has {len(frames)} frames of {frames.shape[1]}x{frames.shape[2]} "
                         f"pixels; the model needs at least one frame of {crop}x{crop}")
    if expected_frames is not None and abs(len(frames) - int(expected_frames)) > tolerance_frames:
        raise VideoError(f"{name} has {len(frames)} frames but the audio lasts "
                         f"{int(expected_frames)} frames; check that they belong together and "
                         "that the video has the expected frame rate")
    return frames


def read_video_slice(path, start: int | None = None, stop: int | None = None) -> np.ndarray:
    """Frames `[start, stop)` of a video as a uint8 array `(t, H, W)`; only they are read."""
    video = _open(path)
    return np.array(video[start:stop], dtype=np.uint8)


def load_video_utterance(path, utter_id: int, utter_num: int, dur_threshold: float,
                         fps: float = VIDEO_FPS) -> np.ndarray:
    """Frames of utterance `utter_id` of `utter_num` (uint8 `(t, H, W)`), sliced by the same rule
    as the audio and the labels (`svt.data.utterances.utterance_slice`): 250 frames per 5-s utterance at
    50 fps, the last utterance to the end."""
    video = _open(path)
    start, stop = utterance_slice(utter_id, utter_num, fps, dur_threshold, len(video))
    return np.array(video[start:stop], dtype=np.uint8)


# ---------------------------------------------------------------------------- preprocessing

def _as_rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


class VideoTransform:
    """AV-HuBERT's video preprocessing: `(T, H, W)` uint8 -> float32 `(T, crop, crop)`.

    `train=True`: random crop (one offset per clip, uniform integers in `[0, H-crop]` and
    `[0, W-crop]`, drawn top first) and a left-right flip of all frames with probability 0.5
    (drawn after the offsets); `train=False`: centre crop at `((H-crop)//2, (W-crop)//2)`. Pixels
    become `(x / 255 - mean) / std`, computed in float64 as the original then stored as float32.
    `rng`: a numpy Generator or a seed (None: fresh OS entropy).
    `per_clip=True` (an option, not the original): standardise each clip by its own pixel mean and
    standard deviation instead of the dataset constants, which removes a singer's overall
    brightness and contrast.
    """

    def __init__(self, train: bool, crop: int = CROP, mean: float = MEAN, std: float = STD,
                 rng=None, per_clip: bool = False):
        self.train, self.crop, self.mean, self.std = bool(train), int(crop), mean, std
        self.per_clip = bool(per_clip)
        self.rng = _as_rng(rng)
        # Pixel values are 0..255, so the whole float pipeline is one lookup table.
        self.table = ((np.arange(256) / 255.0 - mean) / std).astype(np.float32)

    def crop_offsets(self, height: int, width: int) -> tuple[int, int]:
        """`(top, left)` of the crop; draws from `rng` in training."""
        if height < self.crop or width < self.crop:
            raise VideoError(f"frames of {height}x{width} pixels are smaller than the "
                             f"{self.crop}x{self.crop} crop")
        if self.train:
            top = int(self.rng.integers(0, height - self.crop + 1))
            left = int(self.rng.integers(0, width - self.crop + 1))
            return top, left
        return int(round(height - self.crop) / 2), int(round(width - self.crop) / 2)

    def __call__(self, frames) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8:
            raise VideoError(f"expected uint8 frames (T, H, W), got {frames.dtype} "
                             f"{frames.shape}")
        top, left = self.crop_offsets(frames.shape[1], frames.shape[2])
        clip = frames[:, top:top + self.crop, left:left + self.crop]
        if self.train and self.rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        if self.per_clip:
            pixels = clip.astype(np.float32) / 255.0
            return ((pixels - pixels.mean()) / max(float(pixels.std()), 1e-3)).astype(np.float32)
        return self.table[clip]

    def __repr__(self):
        return (f"VideoTransform(train={self.train}, crop={self.crop}, mean={self.mean}, "
                f"std={self.std})")


# ---------------------------------------------------------------------------- dataset

class _WorkerRng:
    """A numpy Generator per process for random transforms in DataLoader workers.

    In the main process: `default_rng(seed)`, or when `seed` is None, seeded once from torch's
    generator (so `torch.manual_seed` / SpeechBrain's seed make runs reproducible). In a worker:
    seeded from `(seed, worker seed)`; PyTorch gives every worker of every epoch its own seed,
    so workers never repeat each other's (or the previous epoch's) crops."""

    def __init__(self, seed=None):
        self.seed, self.key, self.rng = seed, None, None

    def get(self) -> np.random.Generator:
        import torch

        info = torch.utils.data.get_worker_info()
        key = None if info is None else info.seed
        if self.rng is None or key != self.key:
            if info is None:
                seed = self.seed if self.seed is not None else \
                    int(torch.randint(0, 2**62, (1,)).item())
                self.rng = np.random.default_rng(seed)
            else:
                self.rng = np.random.default_rng([0 if self.seed is None else int(self.seed),
                                                  int(info.seed) % 2**63])
            self.key = key
        return self.rng


def video_dataset(csv_path, dur_threshold, frame_rate: float = VIDEO_FPS, train: bool = False,
                  sorting=None, seed=None, per_clip_norm: bool = False):
    """SpeechBrain dataset of video utterances from a prepared video CSV
    (`svt.datasets.n20emv2.prepare_n20emv2_video`).

    Items: `id`, `song_key` ("<dataset>/<song>"), `utter_index`, `utter_count`, `video` (float32
    `(T, 88, 88)`, `VideoTransform(train)` applied), `labels` ((T, 4) int64, one per video frame),
    `song_anno` (path of the song's note JSON). `frame_rate`: the video's (= the labels') frame
    rate. `train=True` draws random crops and flips (see `_WorkerRng` for `seed`). `sorting`: None
    (CSV order, required for evaluation), "ascending"/"descending" by duration, or "random".
    """
    import speechbrain as sb
    import torch
    from svt.data.utterances import load_prepared_csv, with_song_items

    data = load_prepared_csv(csv_path)
    for item_id, row in data.items():
        if "video" not in row:
            raise ValueError(f"{csv_path}: no 'video' column; is this a video CSV (made by "
                             "svt.datasets.n20emv2.prepare_n20emv2_video)?")
        row["video_file"] = row.pop("video")  # the dynamic item below provides `video`
    dataset = sb.dataio.dataset.DynamicItemDataset(data)
    rngs = _WorkerRng(seed)
    eval_transform = VideoTransform(train=False, per_clip=per_clip_norm)

    @sb.utils.data_pipeline.takes("video_file", "utter_id", "utter_num")
    @sb.utils.data_pipeline.provides("video")
    def video_pipeline(video_file, utter_id, utter_num):
        frames = load_video_utterance(video_file, int(utter_id), int(utter_num), dur_threshold,
                                      frame_rate)
        transform = (VideoTransform(train=True, rng=rngs.get(), per_clip=per_clip_norm) if train
                     else eval_transform)
        return torch.from_numpy(transform(frames))

    dataset.add_dynamic_item(video_pipeline)
    return with_song_items(dataset, ["video"], frame_rate, dur_threshold, sorting)


__all__ = [
    "CROP", "MEAN", "STD", "TOLERANCE_FRAMES", "VIDEO_FPS", "VideoError", "VideoTransform",
    "load_video_utterance", "open_video", "read_video_slice", "validate_video", "video_dataset",
    "video_info",
]
