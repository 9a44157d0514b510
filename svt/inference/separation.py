"""The singing voice of a whole song: vocals separated from the mix with Demucs, in bounded memory.

    from svt.inference.separation import load_separation_model, separate_file, separate_vocals
    model = load_separation_model()                      # Demucs "htdemucs", fetched once, cached
    vocals = separate_file("song.mp3", model)            # 16 kHz mono float32, ready to transcribe
    vocals = separate_vocals(waveform, 44100, model)     # the same from an array

The paper's systems transcribe vocals separated from the mixture; a full song transcribed as it is
gives poor notes. Separation uses Demucs (`pip install demucs`, the `separation` extra), a
Hybrid Transformer Demucs model (`demucs.htdemucs.HTDemucs`; default `htdemucs`, 44.1 kHz stereo).

Model weights. `load_separation_model()` takes the pretrained weights from demucs' own caches when
they are there, without any network access: the HuggingFace hub cache (`adefossez/HTDemucs`, where
demucs >= 4.1 looks first) or torch.hub's checkpoint folder (`$TORCH_HOME/hub/checkpoints`, default
`~/.cache/torch/hub/checkpoints`, where demucs puts the files of its legacy repository
`https://dl.fbaipublicfiles.com/demucs/`; for `htdemucs` the single file
`hybrid_transformer/955717e8-8726e21a.th`). Otherwise demucs' own loader
(`demucs.pretrained.get_model`) downloads them once into those caches. Offline (`HF_HUB_OFFLINE=1`,
no network, or a failed download) with nothing cached, `check_separation_available` and
`load_separation_model` raise `SeparationModelUnavailable` (a FileNotFoundError) whose message
names the URL of each file and the exact path to put it at, or `--separation-model PATH`.
A local model (`name_or_path` a file or folder) is a demucs `.th` package, a demucs `.safetensors`
file, or a folder of them with their bag `.yaml`; `.th` pickles are loaded with
`torch.load(weights_only=True)` allowing only the demucs model classes and `fractions.Fraction`
(the class and init arguments the package stores), never arbitrary pickled code. The one exception
is a file whose sha256 matches the checksum demucs publishes for it (its official pretrained file):
that one, if the restricted load refuses it, is loaded as demucs itself loads it.

Chunking. HTDemucs only ever sees windows of its training segment (7.8 s for `htdemucs`): a
Transformer attends over the whole window, and a longer input cannot be given to it in one call
(its output is cut to the segment). Demucs' own `demucs.apply.apply_model(model, mix, shifts=0,
split=True, overlap=overlap)` therefore separates a song as overlapping windows (stride
`(1 - overlap) * segment`) blended with triangular weights, holding the whole song and all its
stems in memory. `separate_vocals` / `separate_file` compute exactly that result as a stream: the
input is read and resampled (soxr) block by block, each window is run as soon as its samples are
there, and each output sample is finished and handed on (mixed to mono, resampled to the output
rate) once the last window covering it has run. The result does not depend on the block size and
equals `apply_model` over the whole song (same windows, same padding of the last windows, same
weights, same order of additions: equal up to float rounding, bitwise in practice on CPU), with
the deterministic setting `shifts=0` (demucs' default `shifts=1` shifts the input by a random
offset). Memory: the model's activations for one window, a few windows of audio, and the output
array (`output_rate * channels * 4` bytes per second of song: 64 kB/s, 230 MB per hour at 16 kHz
mono); the song itself is never held at 44.1 kHz nor its other stems at all.

Demucs' own command line normalises the whole song by its standard deviation before separating;
that needs the whole song first, and HTDemucs normalises each window itself (spectrogram and
waveform branches), so it is not done here (scaling the input scales the vocals, up to the 1e-5 of
the model's own normalisation).
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from svt.audio import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    SAMPLE_RATE,
    AudioError,
    audio_info,
    check_sample_rate,
    write_audio,
    zero_non_finite,
)
from svt.errors import SvtUserError

logger = logging.getLogger(__name__)

#: The Demucs model used by default: Hybrid Transformer Demucs v4 (drums, bass, other, vocals).
DEFAULT_SEPARATION_MODEL = "htdemucs"
#: The source kept.
VOCALS = "vocals"
#: Window overlap (fraction of the model's segment), as demucs' default.
DEFAULT_OVERLAP = 0.25
#: Seconds of input read and resampled at a time (does not change the result).
DEFAULT_BLOCK_SECONDS = 30.0

INSTALL_HELP = ("install demucs (`pip install demucs`, or `pip install svt[separation]`), or "
                "separate the vocals yourself and transcribe the vocals file")


class SeparationError(SvtUserError):
    """Base of this module's errors; the message says what to do."""


class SeparationNotInstalled(SeparationError, ImportError):
    """demucs is not installed."""


class SeparationModelUnavailable(SeparationError, FileNotFoundError):
    """The separation model's weights are not on this machine and cannot be downloaded now (or a
    local model path does not exist). The message names each file to download, its URL and the
    exact path to put it at, and the `--separation-model PATH` alternative."""


class SeparationModelError(SeparationError, ValueError):
    """A model file or folder that is not a usable Demucs vocal separator (unknown name, unsafe or
    damaged file, not a Hybrid Transformer Demucs, no `vocals` source)."""


# ------------------------------------------------------------------------------ where weights are

def demucs_available() -> bool:
    """Whether demucs can be imported (without importing it: it loads torch)."""
    return importlib.util.find_spec("demucs") is not None


def _require_demucs() -> None:
    if not demucs_available():
        raise SeparationNotInstalled(f"vocal separation needs demucs, which is not installed: "
                                     f"{INSTALL_HELP}")


def _demucs_remote_dir() -> Path:
    spec = importlib.util.find_spec("demucs")
    return Path(list(spec.submodule_search_locations)[0]) / "remote"


def _legacy_root_url() -> str:
    if "demucs.pretrained" in sys.modules:
        return sys.modules["demucs.pretrained"].ROOT_URL
    return "https://dl.fbaipublicfiles.com/demucs/"  # demucs.pretrained.ROOT_URL


def torch_hub_checkpoints() -> Path:
    """The folder where torch.hub (and so demucs' legacy loader) caches downloaded weights:
    `torch.hub.get_dir()/checkpoints`, i.e. `$TORCH_HOME/hub/checkpoints` (default
    `$XDG_CACHE_HOME/torch/hub/checkpoints`, `~/.cache/torch/hub/checkpoints`)."""
    if "torch" in sys.modules:
        return Path(sys.modules["torch"].hub.get_dir()) / "checkpoints"
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def _hf_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    if "huggingface_hub.constants" in sys.modules:
        return bool(getattr(sys.modules["huggingface_hub.constants"], "HF_HUB_OFFLINE", False))
    return False


@dataclass(frozen=True)
class WeightFile:
    """One file of a pretrained Demucs model in demucs' legacy repository."""
    signature: str
    url: str
    cache_path: Path          #: where demucs (torch.hub) caches it, and where to put it by hand
    sha256_prefix: str | None  #: the checksum in its name, checked by demucs and here


@dataclass(frozen=True)
class _Pretrained:
    name: str
    signatures: list
    weights: list | None
    segment: float | None
    files: list  # WeightFile


def _remote_files() -> dict:
    """`{signature: (relative path, checksum)}` of demucs' remote/files.txt."""
    files, root = {}, ""
    for line in (_demucs_remote_dir() / "files.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("root:"):
            root = line.split(":", 1)[1].strip()
            continue
        stem = line.rsplit(".", 1)[0]
        sig, _, checksum = stem.partition("-")
        files[sig] = (root + line, checksum or None)
    return files


def _weight_file(sig: str, files: dict) -> WeightFile:
    rel, checksum = files[sig]
    return WeightFile(sig, _legacy_root_url() + rel, torch_hub_checkpoints() / Path(rel).name,
                      checksum)


def pretrained_names() -> list:
    """The pretrained models demucs knows by name (its bag files), e.g. htdemucs, htdemucs_ft."""
    _require_demucs()
    return sorted(p.stem for p in _demucs_remote_dir().glob("*.yaml"))


def _pretrained(name: str) -> _Pretrained:
    import yaml

    files = _remote_files()
    bag_file = _demucs_remote_dir() / f"{name}.yaml"
    if bag_file.is_file():
        bag = yaml.safe_load(bag_file.read_text()) or {}
        sigs = list(bag.get("models", []))
        return _Pretrained(name, sigs, bag.get("weights"), bag.get("segment"),
                           [_weight_file(s, files) for s in sigs if s in files])
    if name in files:
        return _Pretrained(name, [name], None, None, [_weight_file(name, files)])
    raise SeparationModelError(
        f"unknown separation model {name!r}: not a file or folder, and not a pretrained Demucs "
        f"model (known: {', '.join(pretrained_names())}; the Hybrid Transformer ones, htdemucs, "
        "htdemucs_ft and htdemucs_6s, separate vocals here)")


def pretrained_weight_files(name: str = DEFAULT_SEPARATION_MODEL) -> list:
    """The `WeightFile`s (URL, cache path) of a pretrained Demucs model, e.g. for `htdemucs`
    `https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th` cached as
    `torch_hub_checkpoints() / "955717e8-8726e21a.th"`."""
    _require_demucs()
    return list(_pretrained(name).files)


def _hf_repo_id(name: str) -> str:
    """The HuggingFace repository where demucs >= 4.1 looks for a named model first."""
    namespace = "adefossez"  # demucs.hf.DEFAULT_NAMESPACE
    if name == "htdemucs":  # demucs.hf.hf_repo_name
        return f"{namespace}/HTDemucs"
    if name.startswith("htdemucs_"):
        return f"{namespace}/HTDemucs-{name[len('htdemucs_'):]}"
    return f"{namespace}/Demucs-{name}"


def _hf_cached(name: str):
    """`(bag dict, [safetensors paths])` when demucs' HuggingFace copy of `name` is fully in the
    local HuggingFace cache (looked up without any network access), else None."""
    try:
        import yaml
        from huggingface_hub import try_to_load_from_cache

        repo_id, cache = _hf_repo_id(name), _hf_cache_dir()
        bag_path = try_to_load_from_cache(repo_id, f"{name}.yaml", cache_dir=cache)
        if not isinstance(bag_path, str):
            return None
        with open(bag_path) as f:
            bag = yaml.safe_load(f) or {}
        paths = [try_to_load_from_cache(repo_id, f"{sig}.safetensors", cache_dir=cache)
                 for sig in bag.get("models", [])]
        if not paths or not all(isinstance(p, str) for p in paths):
            return None
        return bag, [Path(p) for p in paths]
    except Exception as err:  # a damaged cache is a cache miss
        logger.debug("no usable HuggingFace cache for %s: %r", name, err)
        return None


def _legacy_cached(pre: _Pretrained) -> bool:
    return (len(pre.files) == len(pre.signatures) > 0
            and all(f.cache_path.is_file() for f in pre.files))


def _missing_message(pre: _Pretrained, reason: str) -> str:
    head = (f"vocal separation needs the pretrained Demucs model {pre.name!r}, which is not on "
            f"this machine and cannot be downloaded now ({reason}). Download")
    folder = torch_hub_checkpoints()
    if len(pre.files) == 1:
        f = pre.files[0]
        body = f"  {f.url}\nand put it at\n  {f.cache_path}"
        local = "that file"
    else:
        body = ("\n".join(f"  {f.url}" for f in pre.files)
                + f"\nand put them (names unchanged) in\n  {folder}")
        local = (f"a folder holding those files and {pre.name}.yaml (from "
                 f"{_demucs_remote_dir() / (pre.name + '.yaml')})")
    return (f"{head}\n{body}\n(demucs' download cache, $TORCH_HOME/hub/checkpoints), or pass "
            f"--separation-model PATH (separation_model=PATH in Python) with {local}.")


def _probe(urls, timeout: float) -> str | None:
    """None when one of `urls` answers a HEAD request, else why none did (no download)."""
    import urllib.error
    import urllib.request

    reasons = []
    for url in urls:
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                if response.status < 400:
                    return None
                reasons.append(f"{url}: HTTP {response.status}")
        except urllib.error.HTTPError as err:
            reasons.append(f"HTTP {err.code} from {url}")
        except Exception as err:
            reasons.append(f"no network access: {getattr(err, 'reason', err)}")
    return "; ".join(dict.fromkeys(reasons)) or "no file to download"


def _local_path(name_or_path) -> Path | None:
    """A path when `name_or_path` designates a local model (an existing path, or something that
    can only be a path), else None (a pretrained name)."""
    if isinstance(name_or_path, os.PathLike):
        return Path(name_or_path)
    text = str(name_or_path)
    path = Path(os.path.expanduser(text))
    if path.exists() or os.sep in text or (os.altsep and os.altsep in text) \
            or path.suffix in {".th", ".safetensors", ".yaml", ".pt"}:
        return path
    return None


def check_separation_available(name_or_path=None, *, probe_timeout: float = 5.0) -> str:
    """Before any work, whether `load_separation_model(name_or_path)` can succeed, without
    downloading anything; returns a one-line description of where the model comes from.

    Raises SeparationNotInstalled without demucs; SeparationModelUnavailable for a missing local
    path, or when a pretrained model's weights are in neither demucs cache and cannot be fetched:
    HF_HUB_OFFLINE is set, or neither demucs' legacy URL nor its HuggingFace repository answers a
    HEAD request within `probe_timeout` seconds (`probe_timeout=0`: do not probe, assume online);
    SeparationModelError for an unknown model name.
    """
    _require_demucs()
    name_or_path = DEFAULT_SEPARATION_MODEL if name_or_path is None else name_or_path
    path = _local_path(name_or_path)
    if path is not None:
        if not path.exists():
            raise SeparationModelUnavailable(
                f"--separation-model {path}: no such file or folder; pass a Demucs model file "
                f"(.th or .safetensors), a folder holding one (with its bag .yaml for several), or "
                f"a pretrained name ({DEFAULT_SEPARATION_MODEL})")
        return f"Demucs model from {path}"
    name = str(name_or_path)
    pre = _pretrained(name)
    hf = _hf_cached(name)
    if hf is not None:
        return f"Demucs {name} (cached: {hf[1][0].parent})"
    if _legacy_cached(pre):
        return f"Demucs {name} (cached: {', '.join(str(f.cache_path) for f in pre.files)})"
    if _offline():
        raise SeparationModelUnavailable(_missing_message(pre, "HF_HUB_OFFLINE is set"))
    if probe_timeout:
        urls = [f.url for f in pre.files]
        try:
            from huggingface_hub import hf_hub_url

            urls.append(hf_hub_url(_hf_repo_id(name), f"{name}.yaml"))
        except Exception:
            pass
        reason = _probe(urls, probe_timeout)
        if reason is not None:
            raise SeparationModelUnavailable(_missing_message(pre, reason))
    return (f"Demucs {name} (downloaded by demucs on first use: "
            f"{', '.join(f.url for f in pre.files)})")


# ------------------------------------------------------------------------------ loading

def _model_classes():
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    return {"demucs.htdemucs.HTDemucs": HTDemucs, "demucs.hdemucs.HDemucs": HDemucs,
            "demucs.demucs.Demucs": Demucs}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _official_checksum(path: Path) -> str | None:
    """The checksum demucs publishes for a file named like one of its pretrained files."""
    try:
        sig, _, checksum = path.stem.partition("-")
        published = _remote_files().get(sig)
    except OSError:
        return None
    return published[1] if published and published[1] == checksum else None


def _build(package: dict, where):
    from demucs.states import load_model

    classes = _model_classes()
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise SeparationModelError(f"{where}: not a demucs model package (a dict with klass, "
                                   "args, kwargs and state)")
    if package["klass"] not in classes.values():
        raise SeparationModelError(f"{where}: model class {package['klass']!r} is not a demucs "
                                   "model")
    if isinstance(package["state"], dict) and package["state"].get("__quantized"):
        raise SeparationModelError(f"{where}: quantized (diffq) demucs models are not supported; "
                                   "use a full-precision one (htdemucs)")
    try:
        return load_model(package)
    except Exception as err:
        raise SeparationModelError(f"{where}: cannot build the demucs model ({err})") from None


def _load_th(path: Path):
    """A demucs `.th` package (`{klass, args, kwargs, state}`) loaded with weights_only=True."""
    import torch

    path = Path(path)
    checksum = path.stem.partition("-")[2]
    official = _official_checksum(path)
    if checksum and len(checksum) == 8 and all(c in "0123456789abcdef" for c in checksum):
        # demucs names its files <signature>-<first 8 hex digits of their sha256>
        if _sha256(path)[:len(checksum)] != checksum:
            raise SeparationModelError(
                f"{path}: damaged or incomplete file (its sha256 does not start with {checksum}, "
                "the checksum in its name); download it again")
    else:
        official = None
    allowed = list(_model_classes().values()) + [Fraction]
    try:
        with torch.serialization.safe_globals(allowed):
            package = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if official is None:
            raise SeparationModelError(
                f"{path}: cannot be loaded safely ({type(err).__name__}: {str(err)[:300]}). Only "
                "demucs model packages whose pickle refers to nothing but the demucs model classes "
                "and fractions.Fraction are accepted (no arbitrary pickled code); re-save the "
                "model's {klass, args, kwargs, state} or use a demucs .safetensors file") from None
        # demucs' own published file, byte for byte (checksum verified above): load it as demucs
        # itself does.
        logger.debug("%s: restricted load refused (%r); loading the checksum-verified official "
                     "file as demucs does", path, err)
        package = torch.load(path, map_location="cpu", weights_only=False)
    return _build(package, path)


def _decode_json(value):
    if isinstance(value, dict):
        if value.get("_type") == "fraction":
            return Fraction(value["numerator"], value["denominator"])
        return {k: _decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def _load_safetensors(path: Path):
    """A model in demucs' HuggingFace format: the tensors plus `klass`, `args`, `kwargs` (JSON)
    in the metadata. The class must be a demucs model class (no other import is made)."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        klass = _model_classes().get(metadata.get("klass"))
        if klass is None:
            raise SeparationModelError(f"{path}: metadata 'klass' {metadata.get('klass')!r} is not "
                                       "a demucs model class")
        if "structure" in metadata:
            raise SeparationModelError(f"{path}: quantized (diffq) demucs models are not "
                                       "supported; use a full-precision one")
        package = {"klass": klass, "args": _decode_json(json.loads(metadata["args"])),
                   "kwargs": _decode_json(json.loads(metadata["kwargs"])), "state": tensors}
    except SeparationModelError:
        raise
    except Exception as err:
        raise SeparationModelError(f"{path}: not a demucs .safetensors model ({err})") from None
    return _build(package, path)


def _load_model_file(path: Path):
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return _load_th(path)


def _bag(models, weights=None, segment=None):
    from demucs.apply import BagOfModels

    try:
        return BagOfModels(models, weights, segment)
    except AssertionError:
        raise SeparationModelError("the models of this bag disagree on sources, sample rate or "
                                   "channels, or its weights do not match them") from None


def _load_local(path: Path):
    import yaml

    if path.is_file() and path.suffix != ".yaml":
        return _load_model_file(path)
    if path.is_file():
        folder, bags = path.parent, [path]
    else:
        folder, bags = path, sorted(path.glob("*.yaml"))
    model_files = sorted(p for p in folder.iterdir() if p.suffix in {".th", ".safetensors"})
    if not bags:
        if len(model_files) == 1:
            return _load_model_file(model_files[0])
        raise SeparationModelError(
            f"{path}: expected one demucs model file (.th or .safetensors), or several with their "
            f"bag .yaml; found {len(model_files)} model file(s) and no .yaml")
    if len(bags) > 1:
        raise SeparationModelError(f"{path}: several bag files ({', '.join(b.name for b in bags)});"
                                   " pass the .yaml of the one to use")
    try:
        bag = yaml.safe_load(bags[0].read_text()) or {}
        sigs = list(bag["models"])
    except Exception as err:
        raise SeparationModelError(f"{bags[0]}: not a demucs bag file ({err})") from None
    models = []
    for sig in sigs:
        found = [p for p in model_files if p.stem == sig or p.stem.partition("-")[0] == sig]
        if len(found) != 1:
            raise SeparationModelError(
                f"{bags[0]} lists model {sig}: expected one file {sig}-<checksum>.th, {sig}.th or "
                f"{sig}.safetensors in {folder}, found {len(found)}")
        models.append(_load_model_file(found[0]))
    return _bag(models, bag.get("weights"), bag.get("segment"))


def load_separation_model(name_or_path=None, *, device="cpu"):
    """The Demucs separator, in eval mode on `device`: a `demucs.apply.BagOfModels` for a
    pretrained name or a bag folder, an `HTDemucs` for a single model file.

    `name_or_path`: None (`htdemucs`), a pretrained demucs name (`htdemucs`, `htdemucs_ft`,
    `htdemucs_6s`), or a local `.th` / `.safetensors` file, a bag `.yaml`, or a folder holding them
    (`--separation-model PATH`); an already loaded model is checked and returned. A pretrained name is taken from demucs' caches when there (no
    network access), else downloaded by demucs (`demucs.pretrained.get_model`) into them; offline
    with nothing cached: SeparationModelUnavailable, with what to download and where to put it.
    Raises SeparationModelError for a model that cannot separate vocals here.
    """
    _require_demucs()
    name_or_path = DEFAULT_SEPARATION_MODEL if name_or_path is None else name_or_path
    if not isinstance(name_or_path, (str, os.PathLike)):  # already loaded: checked, moved
        _vocal_models(name_or_path, where="the separation model")
        return name_or_path.to(device).eval()
    path = _local_path(name_or_path)
    if path is not None:
        check_separation_available(path)
        model = _load_local(path)
    else:
        name = str(name_or_path)
        pre = _pretrained(name)
        hf = _hf_cached(name)
        if hf is not None:
            bag, paths = hf
            model = _bag([_load_safetensors(p) for p in paths], bag.get("weights"),
                         bag.get("segment"))
        elif _legacy_cached(pre):
            model = _bag([_load_th(f.cache_path) for f in pre.files], pre.weights, pre.segment)
        elif _offline():
            raise SeparationModelUnavailable(_missing_message(pre, "HF_HUB_OFFLINE is set"))
        else:
            from demucs.pretrained import get_model

            logger.info("downloading the Demucs model %s (once; cached in %s or the HuggingFace "
                        "cache)", name, torch_hub_checkpoints())
            try:
                model = get_model(name)
            except (Exception, SystemExit) as err:
                raise SeparationModelUnavailable(
                    _missing_message(pre, f"the download failed: {err}")) from err
    _vocal_models(model, where=name_or_path)  # refuse what cannot separate vocals, now
    model.to(device)
    model.eval()
    return model


# ------------------------------------------------------------------------------ separation

def _vocal_models(model, where="the model"):
    """`[(HTDemucs, weight)]` of the models that contribute to the vocals, the total weight of the
    vocals over the bag, and the vocals' index among the sources."""
    from demucs.apply import BagOfModels
    from demucs.htdemucs import HTDemucs

    models = list(model.models) if isinstance(model, BagOfModels) else [model]
    weights = (model.weights if isinstance(model, BagOfModels)
               else [[1.0] * len(model.sources)])
    sources = list(model.sources)
    if VOCALS not in sources:
        raise SeparationModelError(f"{where}: this Demucs model has no {VOCALS!r} source "
                                   f"(sources: {', '.join(sources)})")
    index = sources.index(VOCALS)
    not_ht = sorted({type(m).__name__ for m in models if not isinstance(m, HTDemucs)})
    if not_ht:
        raise SeparationModelError(
            f"{where}: {', '.join(not_ht)} models are not supported; vocal separation here runs "
            "Hybrid Transformer Demucs models (htdemucs, htdemucs_ft, htdemucs_6s)")
    runs = [(m, float(w[index])) for m, w in zip(models, weights) if float(w[index]) != 0.0]
    total = sum(float(w[index]) for w in weights)
    if not runs or total == 0:
        raise SeparationModelError(f"{where}: no model of this bag weighs the vocals")
    if len({Fraction(m.segment).limit_denominator(10**6) for m, _ in runs}) > 1:
        raise SeparationModelError(f"{where}: the models of this bag have different segments")
    return runs, total, index


def _channels_first(block: np.ndarray, channels: int) -> np.ndarray:
    """`(n, c)` float32 -> `(channels, n)` as demucs converts channels: mono is duplicated, extra
    channels are dropped (more than one -> `channels`), or averaged when the model is mono."""
    c = block.shape[1]
    if c == channels:
        out = block.T
    elif channels == 1:
        out = block.mean(axis=1, dtype=np.float32)[None]
    elif c == 1:
        out = np.repeat(block.T, channels, axis=0)
    elif c > channels:
        out = block[:, :channels].T
    else:
        raise AudioError(f"cannot make {channels} channels from {c}")
    return np.ascontiguousarray(out, dtype=np.float32)


class _Resampler:
    """soxr streaming resampler of `(n, c)` float32 blocks (identity when the rates agree); its
    output is soxr.resample over the whole signal (same filter, same length)."""

    def __init__(self, in_rate: int, out_rate: int, channels: int):
        self.stream = None
        if int(in_rate) != int(out_rate):
            import soxr

            self.stream = soxr.ResampleStream(int(in_rate), int(out_rate), channels,
                                              dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        block = np.ascontiguousarray(block, dtype=np.float32)
        return block if self.stream is None else self.stream.resample_chunk(block, last=last)


class _Stitcher:
    """demucs.apply.apply_model(model, mix, shifts=0, split=True, overlap, segment) for the vocals
    only, fed `(channels, n)` tensors in order of time, returning each finished stretch as soon as
    no later window covers it."""

    def __init__(self, model, segment_seconds, overlap, device, progress_bar):
        import torch

        self.runs, self.total, self.index = _vocal_models(model)
        first = self.runs[0][0]
        self.rate, self.channels = int(first.samplerate), int(first.audio_channels)
        segment = first.segment if segment_seconds is None else segment_seconds
        if segment_seconds is not None and not 0 < float(segment_seconds) <= float(first.segment):
            raise ValueError(f"segment_seconds must be in (0, {float(first.segment):g}] (the "
                             f"model's training segment), got {segment_seconds!r}")
        if not 0 <= overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
        self.override = segment_seconds is not None
        self.length = int(self.rate * segment)  # apply_model's segment_length
        self.stride = int((1 - overlap) * self.length)
        if self.stride < 1:
            raise ValueError("the window stride is empty: lower the overlap")
        half = self.length // 2
        weight = torch.cat([torch.arange(1, half + 1), torch.arange(self.length - half, 0, -1)])
        self.weight = weight / weight.max()  # transition_power 1
        self.device = device
        self.bar = progress_bar
        self.buf = torch.zeros(self.channels, 0)
        self.buf_start = 0  # absolute index of buf[:, 0]
        self.seen = 0       # samples received
        self.next_window = 0
        self.acc = [torch.zeros(self.channels, 0) for _ in self.runs]
        self.sum_weight = torch.zeros(0)
        self.out_start = 0  # absolute index of acc[:, 0]

    def _valid_length(self, chunk_length):
        if self.override:
            return self.length
        model = self.runs[0][0]
        return model.valid_length(chunk_length)

    def _window(self, total):
        """Runs window `next_window`; `total` is the song's length once known (else the window is
        a full one)."""
        import torch
        import torch.nn.functional as F

        offset = self.next_window * self.stride
        chunk = self.length if total is None else min(self.length, total - offset)
        valid = self._valid_length(chunk)
        delta = valid - chunk
        start = offset - delta // 2  # TensorChunk.padded: centred, real neighbours where there
        end = start + valid
        avail_end = self.buf_start + self.buf.shape[-1]
        lo, hi = max(start, 0), min(end, avail_end if total is None else total)
        assert lo >= self.buf_start, "separation buffer dropped samples still needed"
        piece = self.buf[:, lo - self.buf_start:hi - self.buf_start]
        mix = F.pad(piece, (lo - start, end - hi))[None].to(self.device)
        end_out = offset + chunk
        grow = end_out - (self.out_start + self.sum_weight.shape[-1])
        if grow > 0:
            self.acc = [torch.cat([a, torch.zeros(self.channels, grow)], -1) for a in self.acc]
            self.sum_weight = torch.cat([self.sum_weight, torch.zeros(grow)])
        at = offset - self.out_start
        w = self.weight[:chunk]
        with torch.no_grad():
            for acc, (model, _) in zip(self.acc, self.runs):
                out = model(mix)
                # demucs.utils.center_trim to the chunk, vocals only
                out = out[0, self.index, :, delta // 2:delta // 2 + chunk].to("cpu")
                acc[:, at:at + chunk] += w * out
        self.sum_weight[at:at + chunk] += w
        self.next_window += 1
        if self.bar is not None:
            self.bar.update(1)

    def _emit(self, upto):
        """The finished vocals `[out_start, upto)`, `(channels, n)`, as apply_model combines them."""
        n = upto - self.out_start
        if n <= 0:
            return None
        sw = self.sum_weight[:n]
        est = 0.0
        for acc, (_, weight) in zip(self.acc, self.runs):
            est = est + (acc[:, :n] / sw) * weight
        est = est / self.total
        self.acc = [a[:, n:] for a in self.acc]
        self.sum_weight = self.sum_weight[n:]
        self.out_start = upto
        return est

    def _trim_input(self):
        # a last window starting at o reads from o - (padding) // 2 >= o - length // 2
        keep_from = max(self.next_window * self.stride - self.length // 2, 0)
        if keep_from > self.buf_start:
            self.buf = self.buf[:, keep_from - self.buf_start:]
            self.buf_start = keep_from

    def push(self, block):
        import torch

        self.buf = torch.cat([self.buf, block], -1) if self.buf.shape[-1] else block
        self.seen += block.shape[-1]
        out = []
        while self.next_window * self.stride + self.length <= self.seen:
            self._window(None)
            done = self._emit(self.next_window * self.stride)
            if done is not None:
                out.append(done)
            self._trim_input()
        return out

    def finish(self):
        total = self.seen
        while self.next_window * self.stride < total:
            self._window(total)
        done = self._emit(total)
        return [] if done is None else [done]


def _n_windows(n_model: int, stride: int) -> int:
    return len(range(0, n_model, stride))


def _separate_blocks(blocks, in_rate: int, in_channels: int, n_in: int, model, *,
                     segment_seconds, overlap, output_rate, mono, progress, device):
    """The streaming pipeline over `(n, c)` float32 blocks at `in_rate`: resample to the model's
    rate, window and stitch, mix down, resample to `output_rate`."""
    import torch

    runs, _, _ = _vocal_models(model)
    first = runs[0][0]
    rate, channels = int(first.samplerate), int(first.audio_channels)
    if device is None:
        device = next(first.parameters()).device
    model.eval()
    out_rate = rate if output_rate is None else int(output_rate)
    if not MIN_SAMPLE_RATE <= out_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"output_rate must be {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, got "
                         f"{output_rate!r}")
    out_channels = 1 if mono else channels
    # resample at the input's channel count when that is smaller (mono: once, then duplicated)
    work_channels = min(in_channels, channels) if channels > 1 else 1
    n_model = n_in if in_rate == rate else int(round(n_in * rate / in_rate))
    bar = None
    stitcher = None
    try:
        stride_probe = int((1 - overlap) * int(rate * (first.segment if segment_seconds is None
                                                       else segment_seconds)))
        if progress is not None and stride_probe > 0:
            bar = progress(total=_n_windows(n_model, stride_probe), unit="window",
                           desc="separating vocals", leave=False)
        stitcher = _Stitcher(model, segment_seconds, overlap, device, bar)
        to_model = _Resampler(in_rate, rate, work_channels)
        to_output = _Resampler(rate, out_rate, out_channels)
        pieces = []

        def finish_pieces(vocals, last=False):
            for v in vocals:  # (channels, n) at the model's rate
                v = v.mean(0, keepdim=True) if mono else v
                pieces.append(to_output(v.numpy().T, last=False))
            if last:
                pieces.append(to_output(np.zeros((0, out_channels), np.float32), last=True))

        for block in blocks:
            if block.shape[1] != work_channels:
                block = _channels_first(block, work_channels).T
            resampled = to_model(block)
            if resampled.shape[0]:
                mix = torch.from_numpy(_channels_first(resampled, channels))
                finish_pieces(stitcher.push(mix))
        tail = to_model(np.zeros((0, work_channels), np.float32), last=True)
        if tail.shape[0]:
            finish_pieces(stitcher.push(torch.from_numpy(_channels_first(tail, channels))))
        finish_pieces(stitcher.finish(), last=True)
    finally:
        if bar is not None:
            bar.close()
    vocals = np.concatenate(pieces) if pieces else np.zeros((0, out_channels), np.float32)
    vocals = np.ascontiguousarray(vocals, dtype=np.float32)
    return vocals[:, 0] if mono else vocals


def _check_rate(sample_rate, where) -> int:
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0 and rate == int(rate)):
        raise AudioError(f"{where}: sample_rate must be a positive whole number of samples per "
                         f"second, got {sample_rate!r}")
    check_sample_rate(int(rate), where)
    return int(rate)


def _samples_by_channels(waveform, where) -> np.ndarray:
    """A `(n, c)` view of an array: 1-D mono, or 2-D with channels on the shorter axis (at most
    MAX_CHANNELS), as `svt.audio.mono_waveform` reads arrays."""
    array = np.asarray(waveform)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{where}: expected audio samples (float or integer PCM), got an array "
                         f"of {array.dtype}")
    if array.ndim == 1:
        return array[:, None]
    if array.ndim != 2:
        raise AudioError(f"{where}: expected a 1-D mono or 2-D multichannel array, got shape "
                         f"{array.shape}")
    rows, cols = array.shape
    if array.size == 0:
        return np.zeros((0, 1), np.float32)
    if rows == cols or min(rows, cols) > MAX_CHANNELS:
        raise AudioError(f"{where}: cannot tell channels from samples in shape {array.shape}; "
                         f"pass a 1-D mono array, or at most {MAX_CHANNELS} channels on the "
                         "shorter axis")
    return array if cols < rows else array.T


def _as_float(block: np.ndarray) -> np.ndarray:
    if block.dtype.kind == "u":  # unsigned PCM is centred on half its range
        half = 2.0 ** (8 * block.dtype.itemsize - 1)
        return ((block.astype(np.float64) - half) / half).astype(np.float32)
    if block.dtype.kind == "i":
        return (block / 2.0 ** (8 * block.dtype.itemsize - 1)).astype(np.float32)
    return block.astype(np.float32, copy=False)


def separate_vocals(waveform, sample_rate, model, *, segment_seconds=None,
                    overlap=DEFAULT_OVERLAP, output_rate=SAMPLE_RATE, mono=True,
                    block_seconds=DEFAULT_BLOCK_SECONDS, progress=None, device=None) -> np.ndarray:
    """The vocals of a mixture given as an array (see the module docstring for the method).

    Args:
        waveform: 1-D mono, or 2-D with channels on the shorter axis (`(samples, channels)` as
            soundfile gives or `(channels, samples)`); float, or integer PCM (scaled to [-1, 1)).
            Mono is duplicated to the model's two channels; of more channels the first two are
            used (as demucs does). NaN/inf samples are zeroed with a warning.
        sample_rate: its sample rate (any: resampled with soxr to the model's 44.1 kHz).
        model: from `load_separation_model` (or any `HTDemucs` / `BagOfModels` of them).
        segment_seconds: window length (None: the model's training segment, 7.8 s for htdemucs;
            shorter windows cost as much each: the model pads them).
        overlap: fraction of a window shared with the next (demucs' default 0.25).
        output_rate: sample rate of the result (default 16 kHz, the transcriber's; None: the
            model's 44.1 kHz).
        mono: average the model's channels (default) or return them all.
        block_seconds: input read and resampled at a time (does not change the result).
        progress: a tqdm-like class for a progress bar over the model windows (None: no bar).
        device: where the model runs (None: where its parameters are).

    Returns float32 vocals at `output_rate`: 1-D when `mono`, else `(samples, channels)`; as long
    as the input (`round(n * output_rate / sample_rate)` samples).
    """
    rate = _check_rate(sample_rate, "the waveform")
    array = _samples_by_channels(waveform, "the waveform")
    n, c = array.shape
    if n and c > MAX_CHANNELS:
        raise AudioError(f"the waveform: {c} channels (at most {MAX_CHANNELS})")
    step = max(int(block_seconds * rate), 1)

    def blocks():
        for start in range(0, n, step):
            block = _as_float(array[start:start + step])
            yield zero_non_finite(block, "the waveform", rate, offset=start)

    return _separate_blocks(blocks(), rate, c, n, model, segment_seconds=segment_seconds,
                            overlap=overlap, output_rate=output_rate, mono=mono,
                            progress=progress, device=device)


def separate_file(path, model, *, segment_seconds=None, overlap=DEFAULT_OVERLAP,
                  output_rate=SAMPLE_RATE, mono=True, block_seconds=DEFAULT_BLOCK_SECONDS,
                  progress=None, device=None) -> np.ndarray:
    """The vocals of an audio file (any format soundfile reads: WAV, FLAC, OGG, MP3), read from
    disk block by block so memory does not grow with the song (only the output does). Arguments
    and result as `separate_vocals`. AudioError (naming the file) for a missing or unreadable
    file."""
    import soundfile as sf

    rate, frames, channels = audio_info(path)
    step = max(int(block_seconds * rate), 1)

    def blocks():
        try:
            with sf.SoundFile(str(path)) as f:
                start = 0
                while True:
                    block = f.read(step, dtype="float32", always_2d=True)
                    if not len(block):
                        break
                    yield zero_non_finite(block, path, rate, offset=start)
                    start += len(block)
        except (RuntimeError, sf.LibsndfileError) as err:
            raise AudioError(f"{path}: cannot read this audio file ({err}). Convert it to WAV or "
                             "FLAC (for example `ffmpeg -i IN OUT.wav`)") from None

    return _separate_blocks(blocks(), rate, channels, frames, model,
                            segment_seconds=segment_seconds, overlap=overlap,
                            output_rate=output_rate, mono=mono, progress=progress, device=device)


def save_vocals(path, vocals: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write separated vocals (1-D, or `(samples, channels)`) as 16-bit WAV, atomically
    (`svt.audio.write_audio`); returns the path."""
    write_audio(path, vocals, sample_rate)
    return Path(path)
