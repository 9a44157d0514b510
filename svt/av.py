"""The audio-visual stage (spec section 7): frozen per-song audio and video features, fused by
residual cross-attention (`svt.fusion.FusionRCA`) and classified by the same 20-output head.

* `prepare_av_csvs`: utterance CSVs over the extracted features (`svt.features`) of N20EMv2 songs.
* `av_dataset`: audio-feature rows (49.8 per second: the audio encoder's 249 frames per 5-s
  utterance), video-feature rows (50 per second) cut or zero-padded to the audio rows, labels.
* `FusionBrain`: the `TranscriptionBrain` with the fusion network in place of an encoder; one
  Adadelta optimiser over fusion + head, no linear probing, the head optionally initialised from
  the audio-only model (only when no checkpoint exists, so resuming never overwrites it).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from speechbrain.nnet.schedulers import update_learning_rate

from svt.brain import TranscriptionBrain
from svt.data import with_song_items
from svt.features import feature_path, load_features
from svt.fileio import write_text_atomic
from svt.prepare import csv_folder, read_csv, split_utterances, utterance_slice

AUDIO_FEATURE_RATE = 49.8
VIDEO_FEATURE_RATE = 50.0
AV_CSV_COLUMNS = ["ID", "song", "dataset", "duration", "features", "utter_id", "utter_num",
                  "frame_anno", "song_anno"]
#: Audio and video features of a song may differ by this many frames (else: not the same song).
ALIGNMENT_TOLERANCE_FRAMES = 15


class FeatureError(FileNotFoundError):
    """Missing or inconsistent features for the audio-visual stage."""


def prepare_av_csvs(audio_csvs: dict, features_folder, save_folder, dur_threshold=5,
                    audio_name="clean_feats", video_name="video_feats") -> dict:
    """`{split: csv}` of feature utterances for the songs of the audio preparation's CSVs
    (`{split: n20em_<split>.csv}`, for their label and note files). Every song needs both feature
    files (made by the recipes' `--extract_features True`); a missing one is an error naming it."""
    out = {}
    for split, audio_csv in audio_csvs.items():
        header, rows = read_csv(audio_csv)
        columns = {name: header.index(name) for name in header}
        songs = {}
        for row in rows:
            key = (row[columns["dataset"]], row[columns["song"]])
            songs.setdefault(key, (row[columns["frame_anno"]], row[columns["song_anno"]]))
        lines = []
        for (dataset, song), (frame_anno, song_anno) in songs.items():
            song_key = f"{dataset}/{song}"
            audio = feature_path(features_folder, song_key, audio_name)
            video = feature_path(features_folder, song_key, video_name)
            for path in (audio, video):
                if not path.is_file():
                    raise FeatureError(f"{path}: features missing for {song_key}; extract them "
                                       "with the audio and video recipes (--extract_features "
                                       "True) first")
            num_audio = np.load(audio, mmap_mode="r").shape[0]
            num_video = np.load(video, mmap_mode="r").shape[0]
            expected_video = num_audio / AUDIO_FEATURE_RATE * VIDEO_FEATURE_RATE
            if abs(num_video - expected_video) > ALIGNMENT_TOLERANCE_FRAMES:
                raise FeatureError(f"{song_key}: {num_audio} audio feature frames but {num_video} "
                                   "video frames: the two streams do not belong together")
            duration = num_audio / AUDIO_FEATURE_RATE
            for utter_id, utter_num, _, utter_dur in split_utterances(duration, dur_threshold):
                lines.append([f"{dataset}_{song}_{utter_id}", song, dataset, f"{utter_dur:.4f}",
                              str(Path(features_folder).resolve()), utter_id, utter_num,
                              frame_anno, song_anno])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(AV_CSV_COLUMNS)
        writer.writerows(lines)
        path = csv_folder(save_folder, dur_threshold) / f"n20em_av_{split}.csv"
        write_text_atomic(path, buffer.getvalue())
        out[split] = path
    return out


def av_dataset(csv_path, dur_threshold, audio_name="clean_feats", video_name="video_feats",
               zero_video=False, sorting=None):
    """Utterances of feature rows: items `audio_feats` (T, D), `video_feats` (T, D) aligned to
    the audio rows, `labels` (49.8 fps), and the song keys the Brain stitches with."""
    dataset = sb.dataio.dataset.DynamicItemDataset.from_csv(csv_path)

    @sb.utils.data_pipeline.takes("features", "dataset", "song", "utter_id", "utter_num")
    @sb.utils.data_pipeline.provides("audio_feats", "video_feats")
    def feature_pipeline(features, dataset_name, song, utter_id, utter_num):
        key, k, n = f"{dataset_name}/{song}", int(utter_id), int(utter_num)
        audio_all = load_features(feature_path(features, key, audio_name))
        a0, a1 = utterance_slice(k, n, AUDIO_FEATURE_RATE, dur_threshold, len(audio_all))
        audio = torch.from_numpy(np.asarray(audio_all[a0:a1], dtype=np.float32))
        yield audio
        if zero_video:  # the audio-only control reads no video at all
            yield torch.zeros_like(audio)
            return
        video_all = load_features(feature_path(features, key, video_name))
        v0, v1 = utterance_slice(k, n, VIDEO_FEATURE_RATE, dur_threshold, len(video_all))
        video = np.asarray(video_all[v0:v1], dtype=np.float32)[: len(audio)]
        if len(video) < len(audio):
            video = np.pad(video, ((0, len(audio) - len(video)), (0, 0)))
        yield torch.from_numpy(video)

    dataset.add_dynamic_item(feature_pipeline)
    return with_song_items(dataset, ["audio_feats", "video_feats"], AUDIO_FEATURE_RATE,
                           dur_threshold, sorting)


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
    from svt.bundle import WEIGHTS_FILE, find_bundle

    weights = torch.load(find_bundle(bundle_path) / WEIGHTS_FILE, map_location="cpu",
                         weights_only=True)
    head.load_state_dict({k[len("head."):]: v for k, v in weights.items()
                          if k.startswith("head.")})


# ================================================================================================
# Audio-visual inference bundles
# ================================================================================================
#: Sub-folders of an audio-visual bundle holding the audio and the video model's own bundles.
AV_BUNDLE_PARTS = ("audio", "video")


class AudioVisualModel(torch.nn.Module):
    """Audio encoder + video encoder + RCA fusion + head: waveform and lip video to frame logits.

    `encoder` is the audio encoder: it sets the frame grid (`svt.transcribe` chunks on it); the
    video is expected at the same frame rate (50 fps) and aligned with the audio from frame 0.
    """

    def __init__(self, audio_encoder, video_encoder, fusion, head, settings: dict):
        super().__init__()
        self.encoder = audio_encoder
        self.video_encoder = video_encoder
        self.fusion = fusion
        self.head = head
        self.settings = dict(settings)

    @property
    def frame_rate(self) -> float:
        return float(self.encoder.frame_rate)

    def video_transform(self):
        """The video model's evaluation preprocessing (centre crop, its normalisation)."""
        from svt.video import VideoTransform

        return VideoTransform(train=False, per_clip=self.settings.get("video_norm") == "per_clip")

    def forward(self, wavs, wav_lens=None, videos=None, video_lens=None):
        """`wavs` (B, N) and preprocessed `videos` (B, T, 88, 88), both padded at the end, with
        relative lengths -> logits (B, frames, 20)."""
        if videos is None:
            raise ValueError("an audio-visual model needs the lip video as well as the audio")
        audio = self.encoder(wavs, wav_lens)
        video = self.video_encoder(videos.unsqueeze(1), video_lens)
        return self.head(self.fusion(audio, video, wav_lens))


def export_av_bundle(folder, audio_bundle, video_bundle, fusion, head, settings: dict):
    """Write an audio-visual bundle: the audio and video models' bundles (copied, so the folder is
    self-contained), the fusion and head weights, and the settings, atomically."""
    import json
    import shutil

    from svt.bundle import BUNDLE_FILE, FORMAT_VERSION, WEIGHTS_FILE, _unwrap, find_bundle, \
        read_manifest, staged_bundle_folder

    fusion, head = _unwrap(fusion), _unwrap(head)
    if fusion.zero_video:
        raise ValueError("the audio-only control (zero_video) is not an audio-visual model; "
                         "export its audio model's bundle instead")
    parts = {"audio": find_bundle(audio_bundle), "video": find_bundle(video_bundle)}
    manifests = {part: read_manifest(folder) for part, folder in parts.items()}
    for part, part_manifest in manifests.items():
        found = part_manifest.get("modality", "audio")
        if found != part:
            raise ValueError(f"{parts[part]}: a {found} bundle was given as the {part} model")
    with staged_bundle_folder(folder) as tmp:
        for part, source in parts.items():
            shutil.copytree(source, tmp / part)
        weights = {f"fusion.{k}": v.detach().cpu() for k, v in fusion.state_dict().items()}
        weights.update({f"head.{k}": v.detach().cpu() for k, v in head.state_dict().items()})
        torch.save(weights, tmp / WEIGHTS_FILE)
        manifest = {
            "format_version": FORMAT_VERSION,
            "modality": "audio_visual",
            "fusion_config": {"d_model": fusion.d_model, "video_size": fusion.video_size,
                              "nhead": fusion.audio_kv.attention.num_heads,
                              "d_ffn": fusion.audio_kv.ffn[0].out_features,
                              "alpha": fusion.audio_kv.alpha},
            "head_input_size": head.w.in_features,
            "video_norm": manifests["video"].get("video_norm", "dataset"),
            **settings,
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(folder)


def load_av_bundle(folder, manifest: dict, device="cpu") -> AudioVisualModel:
    """Load an audio-visual bundle (called by `svt.bundle.load_bundle`)."""
    from svt.bundle import WEIGHTS_FILE, BundleError, load_bundle
    from svt.fusion import FusionRCA
    from svt.model import TranscriptionHead

    folder = Path(folder)
    for part in AV_BUNDLE_PARTS:
        if not (folder / part).is_dir():
            raise BundleError(f"{folder}: incomplete audio-visual bundle (no {part}/ model); "
                              "export it again")
    audio = load_bundle(folder / "audio", modality="audio")
    video = load_bundle(folder / "video", modality="video")
    fusion = FusionRCA(**manifest["fusion_config"])
    head = TranscriptionHead(manifest["head_input_size"])
    settings = {k: v for k, v in manifest.items() if k not in ("fusion_config", "head_input_size")}
    state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    for prefix, module in (("fusion.", fusion), ("head.", head)):
        try:
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                                    if k.startswith(prefix)})
        except RuntimeError as err:
            raise BundleError(f"{folder / WEIGHTS_FILE}: the {prefix[:-1]} weights do not fit the "
                              f"bundle's settings ({str(err).splitlines()[0]}); export it "
                              "again") from None
    model = AudioVisualModel(audio.encoder, video.encoder, fusion, head, settings)
    return model.to(device).eval()
