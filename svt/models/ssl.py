"""Self-supervised speech encoders (wav2vec 2.0, HuBERT, WavLM, data2vec-audio) for transcription.

The original recipes use SpeechBrain's `HuggingFaceWav2Vec2` wrapper (docs/original-recipes.md §3.2): a
HuggingFace SSL model turns a 16 kHz waveform into one 1024-d vector every 20 ms, and a linear head
on top predicts onsets, offsets and pitch per frame. `SSLEncoder` is that wrapper rebuilt on
`transformers` directly, keeping the original's behaviour where it is deliberate and fixing it where
it is a bug (docs/original-recipes.md §9.12 and §9.33):

* **Per-utterance normalisation.** The original normalised the input waveform and the output
  features with one mean/variance for the *whole padded batch*, so an utterance's features depended
  on what it was batched with. Here the input (when the checkpoint asks for it) and the output are
  normalised per utterance over its valid samples / frames only. At batch size 1 (how the original
  evaluates) this is exactly the original computation.
* **Attention masks.** The original never told the model where padding starts. Models whose CNN
  uses layer norm (`feat_extract_norm == "layer"`, e.g. wav2vec2-large-lv60, and data2vec-audio)
  receive an attention mask built from the true lengths, which makes the valid frames of a padded
  utterance equal (to float precision) to running it alone (for data2vec-audio this also needs its
  stacked positional convolutions to re-zero the padding in between, which is done here with hooks;
  HF does not). Models with a group-norm CNN (e.g.
  wav2vec2-base) must not get one (HuggingFace's rule: they were pre-trained without it); their
  padding is zeroed instead, and their valid frames still differ from an unpadded run because the
  first CNN layer's group norm takes statistics over the whole padded signal and the transformer
  attends to the padded frames.
* **Padded output frames are always zero**, so a masked loss or pooling never sees garbage.
* **Offline-first loading.** No hub query is needed to pick the model class: it comes from the
  checkpoint's `config.json` (`model_type`), with the original's substring rule on the source name
  as a fallback. A source that is neither a local model folder nor loadable raises
  `EncoderNotAvailableError` telling the user how to download it and where to point `ssl_source`.

Layer selection (`output_layer`) and a SUPERB-style learned weighted sum of all layers
(`weighted_layers`) are additions; the default (`last_hidden_state`, as the original) is unchanged.

Frame rate: the CNN (kernels 10,3,3,3,3,2,2 / strides 5,2,2,2,2,2,2) has a nominal rate of
16000 / 320 = 50 frames/s, but its valid-convolution edges make a 5-s (80000-sample) utterance give
249 frames, i.e. 49.8 frames/s, which is why the labels use 49.8 fps (docs/original-recipes.md §2.5).
`SSLEncoder.num_frames` gives the exact count for any length.

`build_tiny_ssl_model` writes a small randomly initialised model folder of any of the four families
with the real CNN geometry, for tests and for the CPU demo (trained from scratch).
"""
from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from svt.errors import SvtUserError
from svt.models.encoder import (
    EncoderNotAvailableError,
    FrameEncoder,
    masked_standardize,
)

#: The encoder of the original audio recipes ("Ours 1" / "Ours 2").
DEFAULT_SSL_SOURCE = "facebook/wav2vec2-large-lv60"

#: `config.model_type` values this module can wrap, and the order of the original's substring rule
#: on the source name (used only when the config does not say which model it is).
SUPPORTED_MODEL_TYPES = ("hubert", "data2vec-audio", "wavlm", "wav2vec2")
_NAME_SUBSTRINGS = (("hubert", "hubert"), ("data2vec", "data2vec-audio"), ("wavlm", "wavlm"),
                    ("wav2vec2", "wav2vec2"))

#: Written by `SSLEncoder.save_for_bundle` next to the HuggingFace files.
BUNDLE_OPTIONS_FILE = "svt_encoder.json"


# HuggingFace's WavLM attention passes a bool padding mask next to a float position bias, which
# makes torch warn on every forward. Harmless (the mask is applied correctly); silence that message.
warnings.filterwarnings("ignore", message="Support for mismatched key_padding_mask and attn_mask",
                        category=UserWarning)




class UnsupportedEncoderError(SvtUserError, ValueError):
    """The source holds a model that is not one of the supported SSL families."""


def transformers_model_classes() -> dict:
    """`{model_type: transformers model class}` of the supported SSL families
    (SUPPORTED_MODEL_TYPES). Imported lazily: `import svt` should not pay for importing
    transformers."""
    from transformers import Data2VecAudioModel, HubertModel, Wav2Vec2Model, WavLMModel

    return {"wav2vec2": Wav2Vec2Model, "hubert": HubertModel, "wavlm": WavLMModel,
            "data2vec-audio": Data2VecAudioModel}


def transformers_config_classes() -> dict:
    """`{model_type: transformers config class}`, the configs of `transformers_model_classes`
    (imported lazily as well)."""
    from transformers import (
        Data2VecAudioConfig,
        HubertConfig,
        Wav2Vec2Config,
        WavLMConfig,
    )

    return {"wav2vec2": Wav2Vec2Config, "hubert": HubertConfig, "wavlm": WavLMConfig,
            "data2vec-audio": Data2VecAudioConfig}


def _download_hint(source: str) -> str:
    """The how-to-fix part of `EncoderNotAvailableError` messages."""
    hub_id = source if _looks_like_hub_id(source) else DEFAULT_SSL_SOURCE
    target = f"/path/to/{hub_id.rstrip('/').split('/')[-1]}"
    python_cmd = (f'python -c "from transformers import AutoModel, AutoFeatureExtractor; '
                  f"AutoModel.from_pretrained('{hub_id}').save_pretrained('{target}'); "
                  f"AutoFeatureExtractor.from_pretrained('{hub_id}').save_pretrained('{target}')\"")
    return (f"Download it once on a machine with internet access, e.g.\n"
            f"    hf download {hub_id} --local-dir {target}\n"
            f"(or {python_cmd}),\n"
            f"then set ssl_source: {target} in the YAML (or --ssl_source on the command line).")


def _looks_like_hub_id(source: str) -> bool:
    """`org/name` or `name`: no leading `/`, `.` or `~`, at most one `/`, not an existing path."""
    return (not source.startswith(("/", ".", "~")) and source.count("/") <= 1
            and not os.path.exists(source))


def _not_available(source: str, reason: str) -> EncoderNotAvailableError:
    return EncoderNotAvailableError(f"Pretrained encoder '{source}' is not available offline "
                                    f"({reason}). {_download_hint(source)}")




class SSLEncoder(FrameEncoder):
    """A HuggingFace self-supervised speech model as a SpeechBrain-style waveform encoder.

    `forward(wavs, wav_lens)` maps a padded batch of 16 kHz waveforms `(B, N)` with SpeechBrain
    relative lengths to features `(B, T, D)`: `D = output_size`, about 50 frames per second
    (`num_frames(N)` exactly), padded frames zero.

    Args:
        source: hub id (e.g. `facebook/wav2vec2-large-lv60`) or a local folder written by
            `save_pretrained` (may also hold `preprocessor_config.json`). The model family comes
            from the config's `model_type` (wav2vec2, hubert, wavlm, data2vec-audio); a config
            without one falls back to the original's rule on the name ("hubert", "data2vec",
            "wavlm", "wav2vec2").
        freeze: freeze the whole SSL model: no gradients, kept in eval mode (no dropout / layerdrop)
            even when the module is put in train mode, run under `torch.no_grad`. The learned layer
            weights of `weighted_layers` stay trainable (SUPERB protocol).
        freeze_feature_extractor: freeze only the CNN feature encoder (HF's
            `freeze_feature_encoder`).
        output_norm: normalise the output per utterance (zero mean / unit variance over its valid
            frames and all feature dims, no parameters), as the original's `output_norm: True` but
            per utterance instead of per batch.
        output_layer: return `hidden_states[output_layer]` instead of `last_hidden_state`: 0 = input
            of the first transformer layer (CNN features after projection and positional
            convolution), `i` = output of transformer layer `i`, `num_layers` = output of the last
            layer; negative values count from the end. Note that for pre-LN ("stable layer norm")
            models such as wav2vec2-large-lv60, `last_hidden_state` has the encoder's final
            LayerNorm applied and `hidden_states[num_layers]` does not (as transformers 5 returns
            them).
            None (default) = `last_hidden_state`, as the original.
        weighted_layers: return a learned softmax-weighted sum of all `num_layers + 1` hidden states
            (parameter `layer_weights`, initialised to zeros = uniform average), SUPERB style.
            Mutually exclusive with `output_layer`.
        normalize_input: normalise each waveform to zero mean / unit variance over its valid samples
            (eps 1e-5; padding left at 0). None = the checkpoint's feature-extractor `do_normalize`
            (True for the lv60 models), False when it has no `preprocessor_config.json`.
        apply_spec_augment: sets `config.apply_spec_augment` (HF's time/feature masking during
            training). False by default, as the original. `layerdrop` is left as the checkpoint
            has it.
        cache_dir: HuggingFace cache folder for hub downloads.
        pretrained: load the checkpoint's weights; False builds random weights from its config only
            (benchmarks, tests, training from scratch).

    A model folder written by `save_for_bundle` also restores the wrapper options and the learned
    layer weights: rebuild it exactly with `SSLEncoder.from_bundle(folder)`.

    Raises:
        EncoderNotAvailableError: the source is not a local model folder and cannot be downloaded
            (offline, no network, unknown id), or the folder has no `config.json` / weights.
        UnsupportedEncoderError: the source holds a model of another family.
        ValueError: both `output_layer` and `weighted_layers`, or `output_layer` out of range.
    """

    encoder_type = "ssl"

    def __init__(self, source: str | os.PathLike = DEFAULT_SSL_SOURCE, freeze: bool = False,
                 freeze_feature_extractor: bool = False, output_norm: bool = True,
                 output_layer: int | None = None, weighted_layers: bool = False,
                 normalize_input: bool | None = None, apply_spec_augment: bool = False,
                 cache_dir: str | os.PathLike | None = None, pretrained: bool = True):
        super().__init__()
        if output_layer is not None and weighted_layers:
            raise ValueError("SSLEncoder: output_layer and weighted_layers are mutually exclusive "
                             "(output_layer picks one hidden state, weighted_layers learns a mix "
                             "of all)")
        self.source = str(source)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.pretrained = bool(pretrained)
        self.freeze = bool(freeze)
        self.freeze_feature_extractor = bool(freeze_feature_extractor)
        self.output_norm = bool(output_norm)
        self.weighted_layers = bool(weighted_layers)
        self.apply_spec_augment = bool(apply_spec_augment)

        # a local folder (with `~` expanded) or a hub id
        location = os.path.expanduser(self.source)
        location = location if os.path.isdir(location) else self.source
        config, self.model_type = _load_config(location, self.cache_dir)
        config.apply_spec_augment = self.apply_spec_augment
        self.feature_extractor_config = _load_feature_extractor_config(location, self.cache_dir)
        model_class = transformers_model_classes()[self.model_type]
        if self.pretrained:
            try:
                self.model = model_class.from_pretrained(location, config=config,
                                                         cache_dir=self.cache_dir,
                                                         trust_remote_code=False)
            except OSError as error:  # no weights file in the folder / not downloadable
                raise _not_available(self.source, f"could not load its weights: {error}") from error
        else:
            self.model = model_class(config)
        self.config = self.model.config

        if normalize_input is None:
            normalize_input = bool(self.feature_extractor_config.get("do_normalize", False))
        self.normalize_input = bool(normalize_input)

        self.num_layers = int(self.config.num_hidden_layers)
        if output_layer is not None:
            if not -(self.num_layers + 1) <= output_layer <= self.num_layers:
                raise ValueError(f"SSLEncoder: output_layer={output_layer} is out of range for a "
                                 f"{self.num_layers}-layer model (0..{self.num_layers}, or "
                                 f"negative)")
            output_layer = output_layer % (self.num_layers + 1)
        self.output_layer = output_layer
        if self.weighted_layers:
            self.layer_weights = nn.Parameter(torch.zeros(self.num_layers + 1))
            saved = _read_bundle_options(location).get("layer_weights")
            if saved is not None and len(saved) == self.num_layers + 1:
                with torch.no_grad():
                    self.layer_weights.copy_(torch.tensor(saved, dtype=torch.float32))

        # Hidden states are collected with our own hooks rather than `output_hidden_states=True`:
        # under layerdrop (training) transformers simply omits skipped layers from `hidden_states`,
        # whereas the hooks keep one entry per layer (a skipped layer passes its input through).
        self._collected: dict[int, torch.Tensor] | None = None
        self._frame_mask: torch.Tensor | None = None
        layers = self.model.encoder.layers
        for index, layer in enumerate(layers):
            layer.register_forward_pre_hook(functools.partial(self._record_layer_input, index),
                                            with_kwargs=True)
            layer.register_forward_hook(functools.partial(self._record_layer_output, index + 1))
        # data2vec-audio stacks several positional convolutions; each one turns zeroed padding into
        # non-zero values that leak into the valid frames through the next one. Re-zero padding
        # after each so that padded and unpadded runs agree (as they do for the other families).
        if self.model_type == "data2vec-audio":
            for conv_layer in self.model.encoder.pos_conv_embed.layers:
                conv_layer.register_forward_hook(self._zero_padded_positions)

        if self.freeze_feature_extractor:
            # (HubertModel has no `freeze_feature_encoder` in transformers 5; all CNNs have this)
            self.model.feature_extractor._freeze_parameters()
        if self.freeze:
            for parameter in self.model.parameters():
                parameter.requires_grad = False
            self.model.eval()

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_bundle(cls, folder: str | os.PathLike, **overrides) -> "SSLEncoder":
        """Rebuild an encoder saved with `save_for_bundle`: same weights, options and layer weights.

        `overrides` replace saved options, e.g. `freeze=True` for inference.
        """
        options = _read_bundle_options(str(folder)).get("options")
        if options is None:
            raise EncoderNotAvailableError(
                f"'{folder}' has no {BUNDLE_OPTIONS_FILE}: it was not written by "
                f"SSLEncoder.save_for_bundle (use SSLEncoder(source=...) for plain model folders)")
        return cls(**{**options, **overrides, "source": str(folder)})

    def encoder_config(self) -> dict:
        """The constructor arguments that rebuild this encoder (JSON-serialisable).

        `normalize_input` is the resolved value, so a rebuilt encoder normalises the same way even
        if the source's preprocessor config changes. The learned `layer_weights` are not included:
        they are in this module's state dict, and in a `save_for_bundle` folder.
        """
        return {"source": self.source, "freeze": self.freeze,
                "freeze_feature_extractor": self.freeze_feature_extractor,
                "output_norm": self.output_norm, "output_layer": self.output_layer,
                "weighted_layers": self.weighted_layers, "normalize_input": self.normalize_input,
                "apply_spec_augment": self.apply_spec_augment, "cache_dir": self.cache_dir,
                "pretrained": self.pretrained}

    def save_for_bundle(self, folder: str | os.PathLike) -> Path:
        """Write everything needed to rebuild this encoder offline into `folder`.

        The folder is a standard HuggingFace model folder (`config.json`, `model.safetensors` via
        `save_pretrained`, and `preprocessor_config.json` whose `do_normalize` is this encoder's
        input normalisation), so `SSLEncoder(source=folder)` and any HF tool can load it, plus
        `svt_encoder.json` with the wrapper options (`encoder_config()`) and the learned
        `layer_weights`. `SSLEncoder.from_bundle(folder)` uses all of it and gives identical
        outputs. `SSLEncoder(source=folder)` gives identical outputs when built with the same
        wrapper options (e.g. `SSLEncoder(source=folder, **options)` with the options of
        `encoder_config()`), restoring the layer weights too when `weighted_layers=True`; with the
        defaults it reproduces a default-option encoder exactly.
        """
        from transformers import Wav2Vec2FeatureExtractor

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        extractor_config = {**self.feature_extractor_config, "do_normalize": self.normalize_input,
                            "sampling_rate": self.sample_rate}
        extractor_config.setdefault("feature_size", 1)
        extractor_config.setdefault("padding_value", 0.0)
        extractor_config.setdefault("return_attention_mask", self.uses_attention_mask)
        Wav2Vec2FeatureExtractor(**extractor_config).save_pretrained(folder)
        options = {key: value for key, value in self.encoder_config().items()
                   if key not in ("source", "cache_dir")}
        options["pretrained"] = True  # the folder now holds the weights
        layer_weights = (self.layer_weights.detach().float().cpu().tolist()
                         if self.weighted_layers else None)
        payload = {"format": 1, "model_type": self.model_type, "options": options,
                   "layer_weights": layer_weights}
        (folder / BUNDLE_OPTIONS_FILE).write_text(json.dumps(payload, indent=2) + "\n")
        return folder

    # ------------------------------------------------------------------ geometry
    @property
    def output_size(self) -> int:
        """Feature dimension D of the output (the model's hidden size)."""
        return int(self.config.hidden_size)

    @property
    def sample_rate(self) -> int:
        """Expected input sampling rate (feature-extractor config, default 16000)."""
        return int(self.feature_extractor_config.get("sampling_rate", 16000))

    @property
    def frame_rate(self) -> float:
        """Nominal output frames per second: sample_rate / product of the conv strides (50.0).

        The exact count for a given length is `num_frames`: the valid convolutions lose a few
        samples at the edges, so 5-s utterances give 249 frames (49.8 fps, docs/original-recipes.md §2.5).
        """
        return self.sample_rate / math.prod(self.config.conv_stride)

    @property
    def uses_attention_mask(self) -> bool:
        """Whether padded batches get an attention mask (layer-norm CNNs only, HF's rule)."""
        return getattr(self.config, "feat_extract_norm", "layer") == "layer"

    def num_frames(self, num_samples):
        """Exact number of output frames for `num_samples` input samples (int or integer tensor).

        The CNN gives `n -> (n - kernel) // stride + 1` per layer (80000 -> 249). Inputs shorter
        than the receptive field (400 samples) give <= 0.
        """
        # transformers' own output-length rule of the conv stack (floor division per layer).
        lengths = self.model._get_feat_extract_output_lengths(torch.as_tensor(num_samples))
        return lengths if isinstance(num_samples, torch.Tensor) else int(lengths)

    def frame_lengths(self, wav_lens: torch.Tensor | None, num_samples: int,
                      batch_size: int | None = None) -> torch.Tensor:
        """Valid output frames per utterance (long tensor) for a padded batch of `num_samples`."""
        if wav_lens is None:
            wav_lens = torch.ones(batch_size or 1)
        sample_lens = self._sample_lengths(wav_lens, num_samples)
        return self.num_frames(sample_lens).clamp(1, self.num_frames(num_samples))

    # ------------------------------------------------------------------ forward
    def train(self, mode: bool = True):
        """As `nn.Module.train`, but a frozen SSL model stays in eval mode."""
        super().train(mode)
        if self.freeze:
            self.model.eval()
        return self

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> torch.Tensor:
        """Encode a padded batch of waveforms.

        Args:
            wavs: `(B, N)` float waveforms at `sample_rate`, padded at the end.
            wav_lens: `(B,)` relative lengths in (0, 1] (SpeechBrain convention: true length =
                round(wav_lens * N)); None = all utterances fill the N samples.

        Returns:
            `(B, T, D)` float32 features, `T = num_frames(N)`; frames past an utterance's
            `num_frames(true length)` are 0.
        """
        if wavs.dim() != 2:
            raise ValueError(f"SSLEncoder expects waveforms shaped (batch, samples), "
                             f"got {tuple(wavs.shape)}")
        num_samples = wavs.shape[1]
        if not torch.is_floating_point(wavs):
            wavs = wavs.float()
        sample_mask = None
        if wav_lens is not None:
            sample_lens = self._sample_lengths(wav_lens.to(wavs.device), num_samples)
            if bool((sample_lens < num_samples).any()):
                positions = torch.arange(num_samples, device=wavs.device)
                sample_mask = positions[None, :] < sample_lens[:, None]
        if sample_mask is not None:
            wavs = wavs * sample_mask
        if self.normalize_input:
            wavs = masked_standardize(wavs, sample_mask)
        wavs = wavs.to(next(self.model.parameters()).dtype)

        num_out = self.num_frames(num_samples)
        frame_mask = None
        if sample_mask is not None:
            frame_lens = self.num_frames(sample_lens).clamp(1, num_out)
            frame_mask = torch.arange(num_out, device=wavs.device)[None, :] < frame_lens[:, None]
        attention_mask = None
        if sample_mask is not None and self.uses_attention_mask:
            # HF derives frame lengths from the sample mask; keep >= 1 frame per utterance.
            min_len = min(num_samples, self._receptive_field())
            attention_mask = (torch.arange(num_samples, device=wavs.device)[None, :]
                              < sample_lens.clamp(min=min_len)[:, None]).long()

        features = self._encode(wavs, attention_mask, frame_mask)
        if self.output_norm:
            return masked_standardize(features, frame_mask)
        features = features.float()
        return features if frame_mask is None else features * frame_mask[:, :, None]

    def _encode(self, wavs, attention_mask, frame_mask):
        """Run the HF model and pick / combine its hidden states, `(B, T, D)`."""
        need_states = self.output_layer is not None or self.weighted_layers
        grad_context = torch.no_grad() if self.freeze else contextlib.nullcontext()
        self._collected = {} if need_states else None
        self._frame_mask = frame_mask
        try:
            with grad_context:
                output = self.model(input_values=wavs, attention_mask=attention_mask)
            states = self._hidden_states() if need_states else None
        finally:
            self._collected = None
            self._frame_mask = None
        if not need_states:
            return output.last_hidden_state
        if states is None:
            # Every layer skipped by layerdrop (probability layerdrop ** num_layers; never for
            # WavLM, whose first layer is never dropped): fall back to the encoder's output.
            states = [output.last_hidden_state] * (self.num_layers + 1)
        if self.output_layer is not None:
            return states[self.output_layer]
        weights = torch.softmax(self.layer_weights.float(), dim=0)
        return sum(weight * state.float() for weight, state in zip(weights, states))

    # ------------------------------------------------------------------ internals
    def _receptive_field(self) -> int:
        """Samples needed for one output frame (400 for the wav2vec2 CNN)."""
        size = 1
        for kernel, stride in reversed(list(zip(self.config.conv_kernel, self.config.conv_stride))):
            size = (size - 1) * stride + kernel
        return size

    @staticmethod
    def _sample_lengths(wav_lens: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Absolute lengths from relative ones, as SpeechBrain rounds them, within [1, N]."""
        wav_lens = torch.as_tensor(wav_lens)
        return torch.round(wav_lens.double() * num_samples).long().clamp(1, num_samples)

    def _record_layer_input(self, index, module, args, kwargs):
        if self._collected is not None:
            self._collected[index] = args[0] if args else kwargs["hidden_states"]

    def _record_layer_output(self, index, module, args, output):
        if self._collected is not None:
            self._collected[index] = output[0] if isinstance(output, tuple) else output

    def _zero_padded_positions(self, module, args, output):
        # positional-conv layers work on (B, D, T)
        if self._frame_mask is not None and self._frame_mask.shape[-1] == output.shape[-1]:
            return output * self._frame_mask[:, None, :].to(output.dtype)
        return None

    def _hidden_states(self) -> list[torch.Tensor] | None:
        """One state per slot 0..num_layers; a layer skipped by layerdrop repeats its input."""
        collected = self._collected
        if not collected:
            return None
        states = [collected.get(i) for i in range(self.num_layers + 1)]
        previous = next(state for state in states if state is not None)  # fills a leading gap
        for i, state in enumerate(states):
            if state is None:
                states[i] = previous
            previous = states[i]
        return states


def _load_config(source: str, cache_dir: str | None):
    """(config, model_type) for `source`, or the user-facing errors of `SSLEncoder`."""
    from transformers import AutoConfig

    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise _not_available(source, f"the folder '{source}' has no config.json, so it is "
                                         f"not a saved HuggingFace model")
    elif not _looks_like_hub_id(source):
        raise _not_available(source, f"no such folder: '{source}'")
    try:
        # A model folder is data: code it names (config.json "auto_map") is never run, and the
        # user is never asked whether to run it.
        config = AutoConfig.from_pretrained(source, cache_dir=cache_dir, trust_remote_code=False)
        model_type = config.model_type
    except OSError as error:
        raise _not_available(source, f"{type(error).__name__}: {error}") from error
    except (ValueError, KeyError):
        # Config without a (known) model_type: the original's rule on the source name.
        name = source.lower()
        model_type = next((family for key, family in _NAME_SUBSTRINGS if key in name), None)
        if model_type is None:
            raise UnsupportedEncoderError(
                f"Cannot tell which SSL model '{source}' holds: its config.json has no known "
                f"model_type and the name contains none of hubert/data2vec/wavlm/wav2vec2"
            ) from None
        config = transformers_config_classes()[model_type].from_pretrained(
            source, cache_dir=cache_dir, trust_remote_code=False)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedEncoderError(
            f"'{source}' holds a '{model_type}' model; SSLEncoder supports the self-supervised "
            f"speech families {', '.join(SUPPORTED_MODEL_TYPES)}")
    if getattr(config, "add_adapter", False):
        # A fine-tuning add-on (seq2seq checkpoints) that changes frame rate and output size.
        raise UnsupportedEncoderError(f"'{source}' has add_adapter=True; SSLEncoder wraps plain "
                                      f"self-supervised encoders without the adapter")
    return config, model_type


def _load_feature_extractor_config(source: str, cache_dir: str | None) -> dict:
    """The source's `preprocessor_config.json` as a dict ({} when it has none)."""
    from transformers import Wav2Vec2FeatureExtractor

    path = Path(source).expanduser()
    if path.is_dir() and not (path / "preprocessor_config.json").is_file():
        return {}
    try:
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(source, cache_dir=cache_dir,
                                                             trust_remote_code=False)
    except OSError:
        return {}
    config = extractor.to_dict()
    return {key: config[key] for key in ("feature_size", "sampling_rate", "padding_value",
                                         "do_normalize", "return_attention_mask") if key in config}


def _read_bundle_options(source: str) -> dict:
    path = Path(source).expanduser() / BUNDLE_OPTIONS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
