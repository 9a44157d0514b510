"""Inference bundles: a trained model in a folder that later tools load without the training YAML.

Layout of `<output_folder>/model/`:

    svt_bundle.json   format version, modality, frame rate, sample rate, decoding thresholds,
                      the encoder's constructor settings and the head's input size
    encoder/          the encoder's own files (a HuggingFace `save_pretrained` folder for SSL
                      encoders), so it reloads offline
    weights.pt        state dict of the whole model (encoder + head): the weights of record

The bundle is written to a temporary folder and renamed into place, so a crash never leaves a
half-written bundle.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from svt.errors import SvtUserError
from svt.models.audio_visual import AV_BUNDLE_PARTS, AudioVisualModel
from svt.models.encoder import FrameEncoder
from svt.models.fusion import FusionRCA
from svt.models.head import FrameHead, TranscriptionHead, frame_predictions
from svt.models.pitch_network import check_pitch_precision
from svt.notes.decoding import DECODERS, MAX_ONSET_DELAY, decode_frames

BUNDLE_FILE = "svt_bundle.json"
WEIGHTS_FILE = "weights.pt"
FORMAT_VERSION = 1
#: The model shipped in the package (docs/shipped-model.md): used when no model is given.
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "pretrained" / "singing_transcriber"
#: How a loaded model's frozen pitch network computes (`load_bundle`): bfloat16 products make
#: the shipped model's transcription 1.2-1.4x faster on an AVX-512 CPU for the same scores
#: (docs/shipped-model.md, "Speed"); training computes FCPE in float32.
DEFAULT_PITCH_PRECISION = "bfloat16"


class BundleError(SvtUserError, FileNotFoundError):
    """A model bundle that is missing or cannot be used; the message says what to do."""


class TranscriptionModel(torch.nn.Module):
    """Encoder + head with the settings needed to turn audio into notes."""

    def __init__(self, encoder, head, settings: dict):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.settings = dict(settings)

    @property
    def label_frame_rate(self) -> float:
        """The rate of the training labels (49.8 for 5-s audio utterances); bundles written
        before the two rates had distinct names call it `frame_rate`."""
        return float(self.settings.get("label_frame_rate", self.settings.get("frame_rate")))

    @property
    def frame_rate(self) -> float:
        """The encoder frame rate: whole-recording predictions lie on this grid."""
        return float(self.encoder.frame_rate or self.label_frame_rate)

    @property
    def sample_rate(self) -> int:
        return int(self.settings.get("sample_rate", 16000))

    def forward(self, wavs, wav_lens=None):
        return self.head(self.encoder(wavs, wav_lens))

    def frame_outputs(self, wavs, wav_lens=None) -> list:
        """Decoder inputs for a batch: `[onset_prob, offset_prob, octave, pitch_class]`, plus the
        per-frame sung pitch (fractional MIDI, NaN = unvoiced) when the encoder has a pitch
        network (`FrameEncoder.sung_pitch`)."""
        features = self.encoder(wavs, wav_lens)
        outputs = list(frame_predictions(self.head(features)))
        if self.encoder.sung_pitch is not None:
            outputs.append(self.encoder.sung_pitch(features))
        return outputs

    @torch.no_grad()
    def predict_frames(self, wav):
        """Decoder inputs (see `frame_outputs`) for one waveform."""
        device = next(self.parameters()).device
        wavs = torch.as_tensor(np.asarray(wav, dtype=np.float32), device=device)[None]
        return tuple(t[0].cpu().numpy() for t in self.frame_outputs(wavs))

    def decode(self, frames, onset_threshold=None, offset_threshold=None):
        """Notes from whole-recording frame predictions (4 arrays, or 5 with the sung pitch),
        with the bundle's decoder (`decoder`, default the paper's) and thresholds."""
        return decode_frames(
            frames, self.settings.get("decoder", "paper"),
            onset_threshold=onset_threshold or self.settings["onset_threshold"],
            offset_threshold=offset_threshold or self.settings["offset_threshold"],
            frame_rate=self.frame_rate, onset_delay=self.settings.get("onset_delay", 0.0),
            whole_recording=True)


def _unwrap(module):
    return module.module if hasattr(module, "module") else module


def check_bundle_target(folder, keep_clear=()) -> None:
    """Refuse (BundleError) a folder a bundle may not be written to: writing replaces the folder
    whole, so it must be absent or an svt bundle already (holding `svt_bundle.json`), and neither
    be nor contain a folder of `keep_clear` (the run's output, data or prepare folders, which
    would be deleted with it). Checked before training, so nothing is lost to a misspelt path."""
    folder = Path(folder).absolute()
    if folder.exists():
        if not folder.is_dir():
            raise BundleError(f"{folder}: a file, not a folder; give a new folder for the model "
                              "bundle (it is written as a folder)")
        if any(folder.iterdir()) and not (folder / BUNDLE_FILE).is_file():
            raise BundleError(f"{folder}: an existing folder that is not an svt model bundle (no "
                              f"{BUNDLE_FILE}); writing the bundle would replace it and all it "
                              "holds. Give a new or empty folder, or a bundle to replace")
    for other in keep_clear:
        if other is None:
            continue
        other = Path(other).absolute()
        if other == folder or folder in other.parents:
            raise BundleError(f"{folder}: the bundle would replace it, and {other} (a folder this "
                              "run reads or writes) is inside it; give the bundle a folder of "
                              "its own")


@contextmanager
def staged_bundle_folder(folder):
    """Yield a temporary folder beside `folder`; on success it replaces `folder` (renames only, so
    a crash never leaves a half-written bundle), on failure it is removed."""
    folder = Path(folder)
    check_bundle_target(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        yield tmp
        _readable_by_others(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _readable_by_others(root: Path) -> None:
    """Give a staged bundle the permissions of an ordinary folder (the user's umask): the
    temporary folder it was built in is private (0700), which a shared model must not be."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(root, 0o777 & ~umask)
    for path in root.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def export_bundle(folder, encoder, head, settings: dict) -> Path:
    """Write a bundle (any encoder with `save_for_bundle` / `from_bundle`) to `folder`,
    atomically."""
    encoder, head = _unwrap(encoder), _unwrap(head)
    with staged_bundle_folder(folder) as tmp:
        encoder.save_for_bundle(tmp / "encoder")
        model = TranscriptionModel(encoder, head, settings)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp / WEIGHTS_FILE)
        manifest = {
            "format_version": FORMAT_VERSION,
            "modality": settings.get("modality", "audio"),
            "encoder_type": encoder.encoder_type,
            "encoder_config": encoder.encoder_config(),
            "head_type": head.head_type,
            "head_config": head.head_config(),
            **{k: v for k, v in settings.items() if k != "modality"},
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(folder)


#: Largest file a bundle may hold (weights of a 1B-parameter model in float32 fit).
MAX_BUNDLE_FILE_BYTES = 8 << 30
#: Largest settings file (`.json`, `.yaml`, `.txt`) a bundle may hold.
MAX_SETTINGS_FILE_BYTES = 4 << 20
#: Most files and folders a bundle may hold (self-contained bundles hold a dozen).
MAX_BUNDLE_ENTRIES = 10000
#: Whole numbers in the encoder / head / fusion settings (a bundle's manifest and its encoder's
#: JSON files) above this must be the size of a tensor in the weights: a forged `hidden_size`
#: of 10**6 would otherwise allocate gigabytes before any weight is read. Layer counts are
#: bounded by MAX_CONFIG_LAYERS.
MAX_CONFIG_DIM = 8192
MAX_CONFIG_LAYERS = 512
_SETTINGS_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".md")


def check_bundle_files(folder) -> None:
    """Refuse (BundleError naming the entry) a bundle holding anything but folders and regular
    files of bounded size, before any of it is read: a symbolic link to /dev/zero was read for
    gigabytes, a FIFO made loading hang. Links are followed only to regular files (stat, which
    opens nothing); nothing is opened here."""
    import stat

    folder = Path(folder)
    count = 0
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as err:
            raise BundleError(f"{current}: cannot list the bundle folder ({err.strerror or err})") \
                from None
        for entry in entries:
            count += 1
            if count > MAX_BUNDLE_ENTRIES:
                raise BundleError(f"{folder}: holds more than {MAX_BUNDLE_ENTRIES} files; not a "
                                  "model bundle")
            path = Path(entry.path)
            try:
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    info = os.stat(path)  # the target, without opening it
            except OSError as err:
                raise BundleError(f"{path}: a broken link or unreadable entry in the bundle "
                                  f"({err.strerror or err}); export the model again") from None
            if stat.S_ISDIR(info.st_mode):
                if not entry.is_symlink():
                    pending.append(path)
                continue
            if not stat.S_ISREG(info.st_mode):
                kind = ("a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if
                        stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                        "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
                raise BundleError(f"{path}: {kind}{' (through a link)' if entry.is_symlink() else ''}"
                                  ", not a regular file; a bundle holds only files and folders: "
                                  "export the model again")
            limit = (MAX_SETTINGS_FILE_BYTES if path.suffix.lower() in _SETTINGS_SUFFIXES
                     else MAX_BUNDLE_FILE_BYTES)
            if info.st_size > limit:
                raise BundleError(f"{path}: {info.st_size} bytes, more than a bundle's "
                                  f"{'settings file' if limit == MAX_SETTINGS_FILE_BYTES else 'file'}"
                                  f" may hold ({limit} bytes); not a model bundle file")


def _config_numbers(value, key=""):
    """`(key, number)` for every whole number in nested settings."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _config_numbers(v, str(k))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _config_numbers(v, key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, value


def check_config_sizes(manifest: dict, folder: Path, tensor_dims: set) -> None:
    """Refuse (BundleError naming the file and key) encoder / head / fusion settings whose numbers
    would make the model allocate more than its weights hold: a whole number above
    MAX_CONFIG_DIM that is no tensor dimension in the weights, a layer count above
    MAX_CONFIG_LAYERS, a non-finite number. Checked before the model is built."""
    sources = [(folder / BUNDLE_FILE, {k: manifest.get(k) for k in
                                       ("encoder_config", "head_config", "fusion_config",
                                        "head_input_size")})]
    for name in ("svt_encoder.json", "config.json"):
        path = folder / "encoder" / name
        if path.is_file():
            try:
                sources.append((path, json.loads(path.read_text(encoding="utf-8-sig"))))
            except (ValueError, RecursionError, UnicodeDecodeError):
                continue  # the encoder's loader says what is wrong with it
    for path, settings in sources:
        for key, number in _config_numbers(settings):
            if isinstance(number, float) and not np.isfinite(number):
                raise BundleError(f"{path}: {key} is {number}; export the model again")
            if "layers" in key.lower() and isinstance(number, int) and number > MAX_CONFIG_LAYERS:
                raise BundleError(f"{path}: {key} is {number}, more layers than any model here has "
                                  f"(at most {MAX_CONFIG_LAYERS}); the settings were edited or "
                                  "damaged: export the model again")
            if abs(number) > MAX_CONFIG_DIM and number not in tensor_dims and \
                    key.lower() not in ("vocab_size", "sampling_rate", "sample_rate"):
                raise BundleError(f"{path}: {key} is {number:g}, which would allocate more than the "
                                  f"weights hold (no weight tensor has that size; settings above "
                                  f"{MAX_CONFIG_DIM} must match one); the settings were edited or "
                                  "damaged: export the model again")


def find_bundle(path) -> Path:
    """The bundle folder for `path`: a bundle itself or a recipe output folder holding `model/`."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / BUNDLE_FILE).is_file():
            return candidate
    raise BundleError(
        f"{path}: no model bundle here (no {BUNDLE_FILE} in it or in {path / 'model'}). Pass a "
        "recipe's output folder or its model/ folder (e.g. results/demo/model after `make demo`)")


def read_manifest(path) -> dict:
    """The settings stored in a bundle (frame rate, thresholds, encoder config, ...)."""
    folder = find_bundle(path)
    check_bundle_files(folder)
    try:
        manifest = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8-sig"))
    except RecursionError:
        raise BundleError(f"{folder / BUNDLE_FILE}: corrupt bundle manifest (JSON nested too "
                          "deeply); re-export the model") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"{folder / BUNDLE_FILE}: corrupt bundle manifest ({err}); re-export "
                          "the model") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{folder / BUNDLE_FILE}: corrupt bundle manifest (a JSON "
                          f"{type(manifest).__name__}, not an object of settings); re-export the "
                          "model")
    return manifest


def _first_line(err: BaseException) -> str:
    """`Type: first line` of an exception (libraries' multi-line reports cut to their gist)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = lines[0].strip() if lines else ""
    if "weights_only" in str(err) or "Weights only load failed" in text:
        # torch's advice to retry with weights_only=False would run code from the file.
        text = ("a weights file holds objects other than tensors (refused: a model folder is "
                "data, and loading such objects could run code)")
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def is_finite_number(value) -> bool:
    """A finite int or float (numpy's too), not a bool, not a string holding a number."""
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_settings(manifest: dict, folder: Path) -> None:
    """The settings a manifest holds have the types and ranges inference needs (a threshold of 5
    would decode a song as one note, a string one fails after the whole file was transcribed);
    keys a bundle may lack are checked where present."""
    where = folder / BUNDLE_FILE

    def bad(key, wanted):
        return BundleError(f"{where}: {key} is {manifest[key]!r}, expected {wanted}; the manifest "
                           "was edited or damaged: fix the value or export the model again")

    version = manifest.get("format_version")
    if not (isinstance(version, int) and not isinstance(version, bool)):
        raise BundleError(f"{where}: format_version is {version!r}, expected the number "
                          f"{FORMAT_VERSION}; the manifest is damaged: export the model again")
    for key in ("onset_threshold", "offset_threshold"):
        if key in manifest and not (is_finite_number(manifest[key]) and 0 < manifest[key] < 1):
            raise bad(key, "a number between 0 and 1")
    for key in ("label_frame_rate", "frame_rate", "dur_threshold", "sample_rate"):
        if key in manifest and not (is_finite_number(manifest[key]) and manifest[key] > 0):
            raise bad(key, "a positive number")
    if "onset_delay" in manifest and not (is_finite_number(manifest["onset_delay"])
                                          and 0 <= manifest["onset_delay"] <= MAX_ONSET_DELAY):
        raise bad("onset_delay", f"seconds between 0 and {MAX_ONSET_DELAY}")
    if "decoder" in manifest and manifest["decoder"] not in DECODERS:
        raise bad("decoder", f"one of {', '.join(DECODERS)}")
    for key in ("encoder_type", "head_type", "modality"):
        if key in manifest and not isinstance(manifest[key], str):
            raise bad(key, "a name")
    for key in ("encoder_config", "head_config", "fusion_config"):
        if key in manifest and not isinstance(manifest[key], dict):
            raise bad(key, "an object of options")


MODALITY_NAMES = {"audio": "an audio-only", "video": "a video-only",
                  "audio_visual": "an audio-visual"}
MODALITY_HINTS = {
    ("audio_visual", "audio"): " (it needs the singer's lip video too: pass video= in Python, "
                               "--video on the command line)",
    ("audio", "audio_visual"): " (a lip video was given: use an audio-visual bundle, the "
                               "N20EMv2/audio_visual recipe's <output_folder>/model, or drop "
                               "the video)",
    ("video", "audio"): " (video-only models are evaluated by the N20EMv2/video_only recipe)",
}

def modality_mismatch(found: str, needed: str) -> str:
    """The explanation (with what to do) for a model of modality `found` where `needed` is."""
    return (f"{MODALITY_NAMES.get(found, found)} model, but {MODALITY_NAMES.get(needed, needed)} "
            f"model is needed here" + MODALITY_HINTS.get((found, needed), ""))


#: Bundles written before the encoder interface named the class by its old import path: the
#: `encoder_type` of `svt.models.ssl.SSLEncoder` and `svt.models.avhubert.AVHubertVideoEncoder`.
LEGACY_ENCODER_CLASSES = {"svt.encoders.SSLEncoder": "ssl",
                          "svt.avhubert.AVHubertVideoEncoder": "av_hubert"}


def _encoder_class(manifest: dict, folder) -> type[FrameEncoder]:
    """The encoder class a manifest names: a registered `FrameEncoder.encoder_type` (the built-in
    ones, and any other whose module was imported), never an import path taken from the file."""
    name = manifest.get("encoder_type") or LEGACY_ENCODER_CLASSES.get(
        manifest.get("encoder_class", "svt.encoders.SSLEncoder"))
    try:
        return FrameEncoder.for_type(name)
    except KeyError:
        raise BundleError(f"{folder / BUNDLE_FILE}: unknown encoder type {name!r}; this svt knows "
                          f"{FrameEncoder.registered_types()}") from None


def build_head(manifest: dict, folder) -> FrameHead:
    """The head a manifest describes (`head_type` + `head_config`; bundles written before heads
    were configurable hold `head_input_size` of the linear head)."""
    if "head_type" not in manifest:
        return TranscriptionHead(manifest["head_input_size"])
    try:
        return FrameHead.build(manifest["head_type"], manifest["head_config"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BundleError(f"{folder / BUNDLE_FILE}: cannot build the head ({err}); export the "
                          "model again with this svt") from None


def load_bundle(path, device="cpu", modality=None,
                pitch_precision=DEFAULT_PITCH_PRECISION) -> TranscriptionModel:
    """Load a bundle written by `export_bundle` (or a recipe output folder holding one).

    With `modality` ("audio", "video" or "audio_visual"), a bundle of another modality is a clear
    error. An audio-visual bundle loads as `svt.models.audio_visual.AudioVisualModel`.
    `pitch_precision` ("bfloat16" or "float32"): how an encoder with a frozen pitch network
    (the shipped model's FCPE) computes it, see
    `svt.models.pitch_network.PitchNetworkEncoder.set_pitch_precision`; other encoders have
    none and ignore it."""
    check_pitch_precision(pitch_precision)
    folder = find_bundle(path)
    manifest = read_manifest(folder)
    _check_settings(manifest, folder)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{folder}: bundle format {manifest.get('format_version')} is not "
                          f"supported by this svt (expects {FORMAT_VERSION}); re-export it")
    found = manifest.get("modality", "audio")
    if modality is not None and found != modality:
        raise BundleError(f"{folder}: this bundle is {modality_mismatch(found, modality)}")
    if found == "audio_visual":
        return load_av_bundle(folder, manifest, device, pitch_precision)
    _check_manifest(manifest, folder)
    state = _read_weights(folder / WEIGHTS_FILE)  # memory-mapped: nothing allocated yet
    check_config_sizes(manifest, folder, _tensor_dims(state))
    encoder_class = _encoder_class(manifest, folder)
    try:
        encoder = encoder_class.from_bundle(folder / "encoder")
    except TypeError as err:  # an option this svt's encoder does not take
        raise BundleError(f"{folder / 'encoder'}: the encoder options do not fit this svt's "
                          f"{manifest.get('encoder_type')} encoder ({err}); export the model again "
                          "with this svt") from None
    except BundleError:
        raise
    except Exception as err:  # a damaged or edited encoder folder, whatever library reads it
        raise BundleError(f"{folder / 'encoder'}: cannot build the encoder from the bundle "
                          f"({_first_line(err.__cause__ or err)}); the bundle is damaged or was "
                          "edited: export the model again") from None
    head = build_head(manifest, folder)
    settings = {k: v for k, v in manifest.items()
                if k not in ("encoder_config", "encoder_class", "encoder_type",
                             "head_input_size", "head_type", "head_config")}
    if hasattr(encoder, "set_pitch_precision"):
        encoder.set_pitch_precision(pitch_precision)
    model = TranscriptionModel(encoder, head, settings)
    _load_weights(model, folder / WEIGHTS_FILE, state)
    return model.to(device).eval()


def _tensor_dims(state: dict) -> set:
    return {int(d) for tensor in state.values() for d in tensor.shape}


#: Manifest keys every audio bundle needs (older bundles call the label frame rate `frame_rate`).
REQUIRED_MANIFEST_KEYS = ("onset_threshold", "offset_threshold", "sample_rate")


def _check_manifest(manifest: dict, folder: Path) -> None:
    missing = [k for k in REQUIRED_MANIFEST_KEYS if k not in manifest]
    if "label_frame_rate" not in manifest and "frame_rate" not in manifest:
        missing.append("label_frame_rate")
    if "encoder_type" not in manifest and "encoder_class" not in manifest:
        missing.append("encoder_type")
    if missing:
        raise BundleError(f"{folder / BUNDLE_FILE}: the manifest lacks {', '.join(missing)}; the "
                          "bundle is incomplete: export the model again")


def _read_weights(path: Path) -> dict:
    """A bundle's `{name: tensor}` weights, or one BundleError naming the file and the fault (never
    torch's advice to retry with weights_only=False: a bundle is data)."""
    if not path.is_file():
        raise BundleError(f"{path}: the bundle has no weights file; export the model again")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            return _raise_unreadable(path, err)
        try:  # files written by torch.save's legacy (non-zip) format cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err2:
            return _raise_unreadable(path, err2)
    except Exception as err:  # truncated, garbage, or a pickle that is not plain tensors
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in reason or "Weights only load failed" in reason:
            reason = "it holds objects other than tensors"
        raise BundleError(f"{path}: not a readable weights file ({reason}); the file is damaged "
                          "or not from an svt bundle: export the model again") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise BundleError(f"{path}: expected a dict of tensors; export the model again")
    return state


def _raise_unreadable(path, err):
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "weights_only" in reason or "Weights only load failed" in reason:
        reason = "it holds objects other than tensors"
    raise BundleError(f"{path}: not a readable weights file ({reason}); the file is damaged "
                      "or not from an svt bundle: export the model again") from None


def check_tensor_values(state: dict, path, expected: dict | None = None) -> None:
    """Refuse (BundleError naming the tensor) weights a model cannot compute with: a NaN or
    infinite value (one NaN in the head made a song one note), or a tensor that is not floating
    point where the model's is (loading would silently convert it)."""
    for name, tensor in state.items():
        wanted = expected.get(name) if expected is not None else None
        if wanted is not None and wanted.is_floating_point() != tensor.is_floating_point():
            raise BundleError(f"{path}: tensor {name} holds {tensor.dtype} values where the "
                              f"model has {wanted.dtype}; export the model again")
        if wanted is None and not (tensor.is_floating_point() or tensor.dtype in
                                   (torch.int64, torch.int32, torch.bool)):
            raise BundleError(f"{path}: tensor {name} holds {tensor.dtype} values, not weights; "
                              "export the model again")
        if tensor.is_floating_point() and tensor.numel() and \
                not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise BundleError(f"{path}: tensor {name} holds {bad} NaN or infinite value(s); the "
                              "weights are damaged (or training diverged): use another "
                              "checkpoint or export the model again")


def _load_weights(model: torch.nn.Module, path: Path, state: dict | None = None) -> None:
    """Weights into `model`; missing, unexpected or mis-shaped tensors are one BundleError, and
    so are non-finite or non-float values (`check_tensor_values`)."""
    state = _read_weights(path) if state is None else state
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = []
    for what, keys in (("missing", missing), ("unexpected", extra), ("mis-shaped", shapes)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{len(keys)} {what} tensor(s): {shown}")
    if problems:
        raise BundleError(f"{path}: the weights do not fit the model the manifest describes ("
                          + "; ".join(problems) + "); export the model again")
    check_tensor_values(state, path, expected)
    model.load_state_dict(state)


# ------------------------------------------------------------------ audio-visual bundles
def export_av_bundle(folder, audio_bundle, video_bundle, fusion, head, settings: dict):
    """Write an audio-visual bundle: the audio and video models' bundles (copied, so the folder is
    self-contained), the fusion and head weights, and the settings, atomically."""
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
            "head_type": head.head_type,
            "head_config": head.head_config(),
            "video_norm": manifests["video"].get("video_norm", "dataset"),
            **settings,
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(folder)


def load_av_bundle(folder, manifest: dict, device="cpu",
                   pitch_precision=DEFAULT_PITCH_PRECISION) -> AudioVisualModel:
    """Load an audio-visual bundle (called by `svt.inference.bundle.load_bundle`)."""
    folder = Path(folder)
    for part in AV_BUNDLE_PARTS:
        if not (folder / part).is_dir():
            raise BundleError(f"{folder}: incomplete audio-visual bundle (no {part}/ model); "
                              "export it again")
    audio = load_bundle(folder / "audio", modality="audio", pitch_precision=pitch_precision)
    video = load_bundle(folder / "video", modality="video")
    check_config_sizes(manifest, folder, _tensor_dims(_read_weights(folder / WEIGHTS_FILE)))
    try:
        fusion = FusionRCA(**manifest["fusion_config"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise BundleError(f"{folder / BUNDLE_FILE}: cannot build the fusion ({_first_line(err)}); "
                          "export the model again") from None
    head = build_head(manifest, folder)
    settings = {k: v for k, v in manifest.items()
                if k not in ("fusion_config", "head_input_size", "head_type", "head_config")}
    state = _read_weights(folder / WEIGHTS_FILE)
    check_tensor_values(state, folder / WEIGHTS_FILE)
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
