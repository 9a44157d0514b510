"""An encoder built on a frozen pitch network: FCPE (torchfcpe, MIT licence, weights in its wheel).

The paper's SSL speech encoders cannot be had offline and were never trained to hear pitch; FCPE
was trained on recorded singing and speech to estimate f0, and ships its weights inside the
`torchfcpe` wheel. `PitchNetworkEncoder` runs it frozen and learns only a small context network on
top:

    waveform (16 kHz) --FCPE mel (128 bins, 10-ms hop)--> log-mel  ---------------------+
                       --FCPE conformer (frozen)-------> pitch salience (360 bins, 20 cents)
                                                           |  local-argmax f0, confidence
    [BatchNorm(log-mel), salience, confidence] -> Linear -> BiGRU x L -> features (B, T, 2H)

(`lookahead_frames`: a forward-only GRU of width 2H whose frame t is read after frame t + the
look-ahead, a model that can stream with bounded latency; see `run_context`)

and appends two pass-through channels, the frame's f0 (as (MIDI - 60) / 12) and FCPE's confidence,
so the output is `(B, T, 2H + 2)` at 100 frames/s. The head sees all of it; `sung_pitch(features)`
reads the f0 channel back, so decoding can report each note's sung (fractional) pitch.

FCPE runs as `FastPitchNetwork` computes it (the same function as torchfcpe's modules, faster on
a CPU). `pitch_precision` says how: "float32" (training, and what the feature cache holds) or
"bfloat16" products (what `svt.inference.bundle.load_bundle` sets for inference: FCPE about 1.5x
faster on an AVX-512 CPU for the same scores; `bfloat16_matmul`). Only the context network is
trainable and stored in bundles: the FCPE weights (43 MB) stay in the torchfcpe wheel and are
loaded from there with `torch.load(weights_only=True)`.

`pitch_stride=2` has FCPE read every second mel frame and interpolates the rest (half of FCPE's
cost); the context network still runs at 100 frames/s. Measured, it loses notes that follow
each other closely (docs/shipped-model.md, "FCPE on every second frame"), so the shipped model
reads every frame.

`CompactPitchNetwork` is a network a fifth of FCPE's cost distilled from it
(`svt.training.pitch_distillation`); an encoder built with `compact_pitch_network=` computes
the salience with it instead (its weights, frozen, are then part of the bundle). The shipped
model does not: see the class for why.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from svt.models.encoder import EncoderNotAvailableError, FrameEncoder

SAMPLE_RATE = 16000
HOP = 160  # FCPE's mel hop at 16 kHz: 100 frames/s
MEL_BINS = 128
SALIENCE_BINS = 360
#: FCPE frames whose salience peak is below this are unvoiced (torchfcpe's own default, 0.006,
#: is for its f0 output; notes need a firmer voicing decision).
VOICING_THRESHOLD = 0.05
CONFIG_FILE = "svt_encoder.json"
#: Receptive field of one output frame in samples, for chunked transcription: FCPE's mel window
#: (1024) plus its convolutions; the BiGRU sees the whole chunk, so chunks overlap by the
#: transcriber's context (0.5 s) and this only sizes the last frame's window.
RECEPTIVE_FIELD = 1024
#: The longest look-ahead a streaming context network may have (frames of 10 ms).
MAX_LOOKAHEAD_FRAMES = 500
#: The largest `pitch_stride` accepted: the pitch network sees one mel frame in this many.
MAX_PITCH_STRIDE = 4
#: How FCPE's matrix products may be computed (`PitchNetworkEncoder.pitch_precision`):
#: float32, or bfloat16 operands with float32 sums (`bfloat16_matmul`).
PITCH_PRECISIONS = ("float32", "bfloat16")


def check_pitch_precision(pitch_precision) -> None:
    """Refuse (ValueError) a `pitch_precision` that is not one of `PITCH_PRECISIONS`."""
    if pitch_precision not in PITCH_PRECISIONS:
        raise ValueError(f"pitch_precision must be one of {', '.join(PITCH_PRECISIONS)}, got "
                         f"{pitch_precision!r}")


def load_fcpe():
    """FCPE's inference model from the torchfcpe wheel, frozen, on the CPU.

    Loaded with `weights_only=True` (torchfcpe's own loader would unpickle anything)."""
    try:
        import torchfcpe
        from torchfcpe.models_infer import InferCFNaiveMelPE
        from torchfcpe.tools import DotDict
    except ImportError as err:
        raise EncoderNotAvailableError(
            f"the pitch-network encoder needs torchfcpe ({err}); install it with "
            "`pip install torchfcpe==0.0.4` (its wheel carries the FCPE weights)") from None
    path = Path(torchfcpe.__file__).parent / "assets" / "fcpe_c_v001.pt"
    if not path.is_file():
        raise EncoderNotAvailableError(f"{path}: the FCPE weights are missing from the torchfcpe "
                                       "installation; reinstall torchfcpe==0.0.4")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = checkpoint["config_dict"]
    config["model"]["conv_dropout"] = 0.0
    config["model"]["atten_dropout"] = 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # torchfcpe prints [INFO]/[WARN] notes
        model = InferCFNaiveMelPE(DotDict(config), checkpoint["model"]).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class FastPitchNetwork:
    """FCPE's network (torchfcpe's `CFNaiveMelPE`, conv-only) computed faster on a CPU, the same
    function within float rounding (about 1e-6): each item in the (time, channels) layout, where
    the pointwise convolutions are matrix products (oneDNN's, `_pointwise`) and the 31-tap
    depthwise one is oneDNN's channels-last depthwise kernel (0.2-0.5 ms for a 6-s chunk against
    1.3 ms for 31 shifted multiply-adds and 3.5 ms for torch's grouped Conv1d; the multiply-adds
    remain where torch has no oneDNN, whose channels-last kernel is far slower than them). In
    float32 the whole transcription takes 0.76x its time with torchfcpe's modules
    (`benchmarks/bench_transcribe.py`).
    `precision="bfloat16"` runs the products with bfloat16 operands (`bfloat16_matmul`). `wrap`
    returns None for a network of another shape (another torchfcpe), which then runs as it is."""

    def __init__(self, model, layers):
        self.model, self.layers = model, layers
        # (products, device) -> (the weights' storages and versions, `_prepare`'s operands)
        self._operands = {}

    def _prepare(self, matmul, device: torch.device) -> dict:
        """The weights as `matmul` takes them (rounded to bfloat16 for its bfloat16 products),
        kept from call to call (rounding them took 5 % of a 6-s chunk's time) and made again
        when the weights change: a move to another device, an edit in place (the key holds
        each parameter's storage and version counter)."""
        key = (matmul, device)
        weights = tuple((p.data_ptr(), p._version) for p in self.model.parameters())
        if key not in self._operands or self._operands[key][0] != weights:
            model = self.model
            first, _, _, second = model.input_stack
            operands = {
                "input": [(matmul.operand(conv.weight), matmul.operand(conv.bias), conv.padding)
                          for conv in (first, second)],
                "layers": [(norm_layer, matmul.operand(expand.weight[:, :, 0]),
                            matmul.operand(expand.bias), depthwise.weight[:, 0, :],
                            depthwise.bias, matmul.operand(shrink.weight[:, :, 0]),
                            matmul.operand(shrink.bias))
                           for norm_layer, expand, depthwise, shrink in self.layers],
                "output": (matmul.operand(model.output_proj.weight),
                           matmul.operand(model.output_proj.bias)),
            }
            self._operands[key] = (weights, operands)
        return self._operands[key][1]

    @classmethod
    def wrap(cls, fcpe):
        model = getattr(fcpe, "model", None)
        try:
            layers = []
            for layer in model.net.encoder_layers:
                net = layer.conformer.net
                norm, expand, glu, depthwise, silu, shrink = (net[0], net[2], net[3], net[4].conv,
                                                              net[5], net[6])
                if not (layer.attn is None and isinstance(norm, nn.LayerNorm)
                        and isinstance(expand, nn.Conv1d) and expand.kernel_size == (1,)
                        and isinstance(shrink, nn.Conv1d) and shrink.kernel_size == (1,)
                        and isinstance(depthwise, nn.Conv1d)
                        and depthwise.groups == depthwise.in_channels == depthwise.out_channels
                        and depthwise.stride == (1,) and depthwise.dilation == (1,)
                        and 2 * depthwise.padding[0] + 1 == depthwise.kernel_size[0]
                        and isinstance(glu, nn.GLU) and glu.dim == 1
                        and isinstance(silu, nn.SiLU) and len(net) == 9):
                    return None
                layers.append((norm, expand, depthwise, shrink))
            first, group_norm, leaky_relu, second = model.input_stack
            if not (all(isinstance(conv, nn.Conv1d) and conv.groups == 1
                        and conv.stride == (1,) and conv.dilation == (1,)
                        and conv.padding_mode == "zeros" for conv in (first, second))
                    and isinstance(group_norm, nn.GroupNorm)
                    and isinstance(leaky_relu, nn.LeakyReLU)):
                return None
            model.norm, model.output_proj, model.harmonic_emb  # noqa: B018
        except (AttributeError, IndexError, TypeError, ValueError):
            return None
        return cls(model, layers) if layers else None

    def __call__(self, mel: torch.Tensor, precision: str = "float32") -> torch.Tensor:
        """FCPE's salience `(B, T, 360)` for a log-mel `(B, T, 128)`, as `model(mel)`.

        `precision="bfloat16"`: the matrix products and the input stack's two convolutions
        (most of the work) take their operands rounded to bfloat16, accumulate in float32 and
        round the result to bfloat16; norms, activations, the depthwise convolution and the
        residual sums stay float32. See `bfloat16_matmul` for how this is computed on machines
        without bfloat16 kernels."""
        import torch.nn.functional as F

        check_pitch_precision(precision)
        model = self.model
        matmul = bfloat16_matmul(mel.device) if precision == "bfloat16" else _Float32Matmul
        operands = self._prepare(matmul, mel.device)
        (first_weight, first_bias, first_padding), (second_weight, second_bias, second_padding) \
            = operands["input"]
        _, group_norm, leaky_relu, _ = model.input_stack
        x = matmul.conv1d(mel.transpose(-1, -2), first_weight, first_bias, first_padding)
        x = matmul.conv1d(leaky_relu(group_norm(x)), second_weight, second_bias,
                          second_padding).transpose(-1, -2)
        if model.harmonic_emb is not None:
            x = x + model.harmonic_emb(torch.zeros(1, dtype=torch.long, device=x.device))
        depthwise_conv = _depthwise if _has_fast_depthwise(x.device) else _depthwise_by_taps
        items = []
        for item in x:  # item by item, each a (time, channels) matrix
            for norm_layer, expand_weight, expand_bias, taps, taps_bias, shrink_weight, \
                    shrink_bias in operands["layers"]:
                hidden = F.glu(matmul.linear(norm_layer(item), expand_weight, expand_bias), dim=1)
                hidden = F.silu(depthwise_conv(hidden, taps, taps_bias))
                item = item + matmul.linear(hidden, shrink_weight, shrink_bias)
            items.append(item)
        x = torch.stack(items)
        return torch.sigmoid(matmul.linear(model.norm(x), *operands["output"]))


def _uses_onednn(device: torch.device) -> bool:
    """Whether torch computes channels-last convolutions on `device` with oneDNN (a CPU, with a
    torch built with it, as the x86 and ARM wheels are)."""
    return device.type == "cpu" and torch.backends.mkldnn.is_available()


def _has_fast_depthwise(device: torch.device) -> bool:
    """Whether torch's channels-last depthwise convolution is fast on `device`: oneDNN's on a
    CPU, cuDNN's on a GPU. Without oneDNN it is about 75x slower than `_depthwise_by_taps`."""
    return device.type == "cuda" or _uses_onednn(device)


def _pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for `x` `(..., C)` as oneDNN's 1x1 convolution of `x` read as
    a channels-last image (no copy): the same products within float32 rounding (1e-6), and on
    this project's CPU (AMD EPYC with AVX-512, where torch's float32 linear takes MKL's slower
    code for CPUs other than Intel's) 1.8x as fast: FCPE in float32 went from 79 to 54 ms per
    6-s chunk."""
    shape, channels = x.shape, x.shape[-1]
    image = x.contiguous().view(1, 1, -1, channels).permute(0, 3, 1, 2)
    out = torch.nn.functional.conv2d(image, weight[:, :, None, None], bias)
    return out.permute(0, 2, 3, 1).reshape(*shape[:-1], weight.shape[0])


def _depthwise(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 'same' depthwise convolution of `x` `(T, C)` along T with `taps` `(C, K)` (K odd), as
    `Conv1d(C, C, K, padding=K // 2, groups=C)` on `x.t()`, in the same layout: `x` is read as a
    channels-last image of height 1 (no copy), which oneDNN's depthwise kernel takes as it is."""
    length, channels = x.shape
    image = x.contiguous().view(1, 1, length, channels).permute(0, 3, 1, 2)
    out = torch.nn.functional.conv2d(image, taps[:, None, None, :], bias,
                                     padding=(0, taps.shape[1] // 2), groups=channels)
    return out.permute(0, 2, 3, 1).reshape(length, channels)


def _depthwise_by_taps(x: torch.Tensor, taps: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`_depthwise` as one multiply-add per tap on the overlapping ranges, no padded copy: the
    fast way where torch has no fast channels-last depthwise kernel."""
    length, kernel = x.shape[0], taps.shape[1]
    out = bias[None, :].expand(length, -1).clone()
    for k in range(kernel):
        shift = k - kernel // 2
        if abs(shift) >= length:
            continue  # a tap that reaches past the whole input only ever reads padding
        if shift >= 0:
            out[:length - shift].addcmul_(x[shift:], taps[None, :, k])
        else:
            out[-shift:].addcmul_(x[:length + shift], taps[None, :, k])
    return out


class _Float32Matmul:
    """FCPE's products in float32: oneDNN's where torch has it (`_pointwise`), else torch's
    linear."""

    @staticmethod
    def operand(t):
        return t

    @staticmethod
    def linear(x, weight, bias):
        import torch.nn.functional as F

        if _uses_onednn(x.device):
            return _pointwise(x, weight, bias)
        return F.linear(x, weight, bias)

    @staticmethod
    def conv1d(x, weight, bias, padding):
        import torch.nn.functional as F

        return F.conv1d(x, weight, bias, padding=padding)


class _NativeBfloat16Matmul:
    """bfloat16 operands in bfloat16 tensors: oneDNN's (or the GPU's) bfloat16 kernels, which
    accumulate in float32."""

    @staticmethod
    def operand(t):
        return t.to(torch.bfloat16)

    @staticmethod
    def linear(x, weight, bias):
        import torch.nn.functional as F

        return F.linear(x.to(torch.bfloat16), weight, bias).float()

    @staticmethod
    def conv1d(x, weight, bias, padding):
        import torch.nn.functional as F

        return F.conv1d(x.to(torch.bfloat16), weight, bias, padding=padding).float()


class _EmulatedBfloat16Matmul:
    """The same products on hardware without fast bfloat16 kernels: operands rounded to
    bfloat16 but held in float32 (a product of two bfloat16 numbers is exact in float32),
    float32 kernels, the result rounded to bfloat16."""

    @staticmethod
    def operand(t):
        return t.to(torch.bfloat16).float()

    @staticmethod
    def linear(x, weight, bias):
        product = _Float32Matmul.linear(x.to(torch.bfloat16).float(), weight, bias)
        return product.to(torch.bfloat16).float()

    @staticmethod
    def conv1d(x, weight, bias, padding):
        import torch.nn.functional as F

        return F.conv1d(x.to(torch.bfloat16).float(), weight, bias,
                        padding=padding).to(torch.bfloat16).float()


def bfloat16_matmul(device: torch.device):
    """How to compute FCPE's bfloat16 products on `device`.

    Why bfloat16: FCPE is most of the transcriber's time, nearly all of it in its products, and
    on an AVX-512 CPU oneDNN's bfloat16 kernels run them about 1.6x faster than its float32
    ones (3x torch's float32 linear on this project's AMD CPU); the salience moves by at most
    about 0.01 and the scores on recorded singing by a few hundredths (docs/shipped-model.md,
    "Speed"). Native where torch has fast bfloat16 kernels (CPUs with AVX-512, GPUs of compute
    capability 8 or more). Elsewhere torch's bfloat16 product has no
    fast kernel, so the same products are emulated in float32 (as fast as float32): operands
    rounded to bfloat16 (exact and machine-independent), float32 sums, the result rounded to
    bfloat16. The two paths differ only where a float32 sum, added in another order, lands on
    the other side of a bfloat16 rounding boundary (about 1 result in 10,000); measured on the
    67 SSVD recordings, 17 of 3,526 notes move a boundary (15 by one frame, none by more than
    40 ms) and no pitch moves by a cent. `pitch_precision="float32"` gives results that do not
    depend on it."""
    device = torch.device(device)
    if device.type == "cpu":
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    elif device.type == "cuda":
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    else:
        native = False
    return _NativeBfloat16Matmul if native else _EmulatedBfloat16Matmul


class CompactPitchBlock(nn.Module):
    """One block of `CompactPitchNetwork`, FCPE's convolution-only conformer block at a smaller
    width: `x + shrink(silu(depthwise(glu(expand(norm(x))))))` on `(B, T, dim)`."""

    def __init__(self, dim: int, expansion: int, kernel_size: int):
        super().__init__()
        inner = dim * expansion
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, 2 * inner)
        self.depthwise = nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2,
                                   groups=inner)
        self.shrink = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        hidden = F.glu(self.expand(self.norm(x)), dim=-1).transpose(1, 2)
        hidden = F.silu(self.depthwise(hidden)).transpose(1, 2)
        return x + self.shrink(hidden)


class CompactPitchNetwork(nn.Module):
    """A small pitch network that computes what FCPE does from the same log-mel: FCPE's 360-bin
    salience `(B, T, 360)` from `(B, T, 128)`. It is FCPE's architecture made narrower and
    shallower (default: width 256 and 4 blocks against 512 and 6, 2.0 M parameters against
    10.8 M, about a fifth of FCPE's multiply-adds), trained to imitate FCPE
    (`svt.training.pitch_distillation`). Like FCPE's, its input stack normalises over the whole
    input (GroupNorm over channels and time), so a frame's level is heard relative to the rest
    of the chunk. Distilled on generated singing it follows FCPE on generated songs but not on
    recorded ones (docs/shipped-model.md, "A compact pitch network"), so the shipped model runs
    FCPE.

    Extension point: any module with this `forward` contract and a `config()` that rebuilds it
    can replace FCPE in `PitchNetworkEncoder` (`compact_pitch_network=`)."""

    def __init__(self, dim: int = 256, num_layers: int = 4, expansion: int = 2,
                 kernel_size: int = 31):
        super().__init__()
        for name, value in (("dim", dim), ("num_layers", num_layers), ("expansion", expansion),
                            ("kernel_size", kernel_size)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"CompactPitchNetwork: {name} must be a whole number, 1 or "
                                 f"more, got {value!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"CompactPitchNetwork: kernel_size must be odd (a centred "
                             f"convolution), got {kernel_size}")
        self.dim, self.num_layers = dim, num_layers
        self.expansion, self.kernel_size = expansion, kernel_size
        self.input_conv = nn.Conv1d(MEL_BINS, dim, 3, padding=1)
        self.input_norm = nn.GroupNorm(4, dim)
        self.input_conv2 = nn.Conv1d(dim, dim, 3, padding=1)
        self.blocks = nn.ModuleList(CompactPitchBlock(dim, expansion, kernel_size)
                                    for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)
        self.output = nn.Linear(dim, SALIENCE_BINS)

    def config(self) -> dict:
        return {"dim": self.dim, "num_layers": self.num_layers, "expansion": self.expansion,
                "kernel_size": self.kernel_size}

    def logits(self, mel: torch.Tensor) -> torch.Tensor:
        """Salience logits `(B, T, 360)` for a log-mel `(B, T, 128)` (what distillation trains)."""
        import torch.nn.functional as F

        x = F.leaky_relu(self.input_norm(self.input_conv(mel.transpose(1, 2))), 0.01)
        x = self.input_conv2(x).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.output(self.norm(x))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """FCPE's salience (in [0, 1]) `(B, T, 360)` for a log-mel `(B, T, 128)`."""
        return torch.sigmoid(self.logits(mel))


def interpolate_frames(frames: torch.Tensor, stride: int, num_frames: int) -> torch.Tensor:
    """Frames `(B, T', C)` read every `stride` frames (frame k at position k * stride) at every
    position `0 .. num_frames - 1`: linear between neighbours, the last one repeated after it."""
    position = torch.arange(num_frames, device=frames.device, dtype=frames.dtype) / stride
    last = frames.shape[1] - 1
    left = position.floor().long().clamp(max=last)
    right = (left + 1).clamp(max=last)
    weight = (position - left.to(frames.dtype)).clamp(0.0, 1.0)[None, :, None]
    return frames[:, left] * (1.0 - weight) + frames[:, right] * weight


def salience_to_midi(salience: torch.Tensor, cent_table: torch.Tensor) -> torch.Tensor:
    """Frame f0 in fractional MIDI from FCPE's salience `(B, T, 360)`: the salience-weighted mean
    cent value of the 9 bins around the peak (FCPE's local-argmax decoder), as MIDI."""
    peak = salience.argmax(dim=-1, keepdim=True)
    window = (peak + torch.arange(-4, 5, device=salience.device)).clamp(0, salience.shape[-1] - 1)
    weights = torch.gather(salience, -1, window)
    cents = (cent_table[window] * weights).sum(-1) / weights.sum(-1).clamp_min(1e-8)
    hz = 10.0 * torch.pow(2.0, cents / 1200.0)  # FCPE's cents are relative to 10 Hz
    return 69.0 + 12.0 * torch.log2(hz / 440.0)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`(B, T, D)` with each item's first `lengths[b]` frames in reverse order; the padding
    after them stays where it is."""
    frames = torch.arange(x.shape[1], device=x.device)[None, :]
    ends = lengths.to(x.device)[:, None]
    order = torch.where(frames < ends, ends - 1 - frames, frames)
    return x.gather(1, order[..., None].expand(-1, -1, x.shape[2]))


def gru_without_packing(gru: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """What `gru` (batch-first) computes for a packed batch, `(B, T, D)` items of `lengths`
    frames, without packing: `(B, T, H * directions)`, zeros past each item's end.

    Why: on a CPU, the backward pass of torch's GRU over a packed batch takes about 3x as long as
    over a padded one (16 x 5 s, 2 layers of 128: 1.2 s against 0.4 s), and it was most of a
    training epoch. Padding after an item's end cannot reach its frames in the forward
    direction, so each layer runs each direction on its own over the padded batch, the reverse
    direction on each item reversed within its length, with the layer's own weights (the same
    parameters, so checkpoints and bundles are unchanged). The outputs equal the packed GRU's to
    float rounding (tests/test_pitch_network.py); only dropout's random masks differ."""
    from torch.func import functional_call

    out = x
    directions = ["", "_reverse"] if gru.bidirectional else [""]
    for layer in range(gru.num_layers):
        # A one-layer, one-direction GRU on the meta device: a shape only (no memory, no draw
        # from the random generator); functional_call runs it with this layer's weights.
        one = nn.GRU(out.shape[2], gru.hidden_size, batch_first=True, bias=gru.bias,
                     device="meta")
        names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if gru.bias else [])
        outputs = []
        for suffix in directions:
            weights = {f"{name}_l0": getattr(gru, f"{name}_l{layer}{suffix}") for name in names}
            if suffix:
                y, _ = functional_call(one, weights, (reverse_within_lengths(out, lengths),))
                outputs.append(reverse_within_lengths(y, lengths))
            else:
                outputs.append(functional_call(one, weights, (out,))[0])
        out = torch.cat(outputs, dim=-1)
        if layer < gru.num_layers - 1 and gru.dropout and gru.training:
            out = nn.functional.dropout(out, gru.dropout, training=True)
    valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
    return out * valid[..., None]


class PitchNetworkEncoder(FrameEncoder):
    """Frozen FCPE + a trainable BiGRU context network (see the module docstring);
    `lookahead_frames` (None: bidirectional) makes the context network forward-only with that
    many frames of look-ahead."""

    encoder_type = "pitch_network"
    #: The context GRU steps through a chunk frame by frame, and a step costs about the same for
    #: 4 chunks as for 16, so whole recordings run faster in larger batches (SSVD, 40 minutes:
    #: 0.9x the time of 4 chunks, 82 MB more); FCPE runs item by item, so memory hardly grows.
    inference_batch_size = 16

    def __init__(self, hidden_size: int = 128, num_layers: int = 2, dropout: float = 0.1,
                 input_size: int = 192, lookahead_frames: int | None = None,
                 compact_pitch_network: dict | None = None, pitch_stride: int = 1,
                 pitch_precision: str = "float32"):
        super().__init__()
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.dropout, self.input_size = float(dropout), int(input_size)
        if lookahead_frames is not None and not (
                isinstance(lookahead_frames, int) and not isinstance(lookahead_frames, bool)
                and 0 <= lookahead_frames <= MAX_LOOKAHEAD_FRAMES):
            raise ValueError(f"lookahead_frames must be a whole number of frames from 0 to "
                             f"{MAX_LOOKAHEAD_FRAMES} (or null: a bidirectional context network), "
                             f"got {lookahead_frames!r}")
        self.lookahead_frames = lookahead_frames
        if not (isinstance(pitch_stride, int) and not isinstance(pitch_stride, bool)
                and 1 <= pitch_stride <= MAX_PITCH_STRIDE):
            raise ValueError(f"pitch_stride must be a whole number of mel frames from 1 to "
                             f"{MAX_PITCH_STRIDE} (1: the pitch network reads every 10-ms frame), "
                             f"got {pitch_stride!r}")
        self.pitch_stride = pitch_stride
        self.pitch_precision = "float32"
        self.set_pitch_precision(pitch_precision)
        # Kept out of the module tree on purpose: its weights come from the torchfcpe wheel, so
        # they are neither trained, nor saved in checkpoints/bundles, nor given to optimisers.
        self.__dict__["fcpe"] = load_fcpe()
        self.fast_fcpe = FastPitchNetwork.wrap(self.fcpe)  # None: FCPE runs as torchfcpe has it
        # A network distilled from FCPE that replaces it (its weights are the bundle's, frozen);
        # FCPE's mel front-end and cent table stay in use.
        self.compact_pitch_network = None
        if compact_pitch_network is not None:
            if not isinstance(compact_pitch_network, dict):
                raise ValueError("compact_pitch_network must be the options of a "
                                 "CompactPitchNetwork (a mapping such as {'dim': 256, "
                                 f"'num_layers': 4}}), got {compact_pitch_network!r}")
            self.use_compact_pitch_network(CompactPitchNetwork(**compact_pitch_network))
        self.mel_norm = nn.BatchNorm1d(MEL_BINS)
        self.project = nn.Sequential(
            nn.Linear(MEL_BINS + SALIENCE_BINS + 1, self.input_size), nn.GELU(),
            nn.Dropout(self.dropout))
        # Bidirectional (the offline model), or forward-only with a bounded look-ahead (a model
        # that can stream): one direction of twice the size, so the features keep their width.
        bidirectional = lookahead_frames is None
        self.context = nn.GRU(self.input_size, self.hidden_size * (1 if bidirectional else 2),
                              num_layers=self.num_layers, batch_first=True,
                              bidirectional=bidirectional,
                              dropout=self.dropout if self.num_layers > 1 else 0.0)

    def use_compact_pitch_network(self, network: CompactPitchNetwork) -> None:
        """Compute the salience with `network` (frozen; saved with the bundle) instead of FCPE."""
        network.eval()
        for parameter in network.parameters():
            parameter.requires_grad_(False)
        self.compact_pitch_network = network

    def set_pitch_precision(self, precision: str) -> None:
        """How the frozen pitch network computes its matrix products: "float32" (FCPE exactly
        as trained, what training computes and caches) or "bfloat16" (bfloat16 operands,
        float32 sums: FCPE about 1.5x faster on an AVX-512 CPU, salience within about 0.01 of
        float32, `bfloat16_matmul`). Not part of the model: `svt.inference.bundle.load_bundle`
        sets it for inference.
        A compact network or torchfcpe's own modules (another torchfcpe) run under torch's
        bfloat16 autocast instead."""
        check_pitch_precision(precision)
        self.pitch_precision = precision

    @property
    def pitch_network_name(self) -> str:
        """What computes the salience, as the bundle manifest records it."""
        if self.compact_pitch_network is None:
            return "torchfcpe fcpe_c_v001"
        return "compact network distilled from torchfcpe fcpe_c_v001"

    # ------------------------------------------------------------------ nn.Module plumbing
    def _apply(self, fn, *args, **kwargs):
        self.fcpe._apply(fn, *args, **kwargs)  # device moves reach the frozen network too
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.fcpe.eval()  # never dropout/batch statistics in the frozen part
        if self.compact_pitch_network is not None:
            self.compact_pitch_network.eval()
        return self

    # ------------------------------------------------------------------ geometry
    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size + 2

    @property
    def frame_rate(self) -> float:
        return SAMPLE_RATE / HOP

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def receptive_field(self) -> int:
        return RECEPTIVE_FIELD

    def num_frames(self, num_samples):
        """FCPE's centred mel frames: n // 160 + 1."""
        if torch.is_tensor(num_samples):
            return torch.div(num_samples, HOP, rounding_mode="floor") + 1
        return int(num_samples) // HOP + 1

    def frame_lengths(self, lens, num_inputs: int, batch_size: int | None = None):
        if lens is None:
            return torch.full((batch_size or 1,), self.num_frames(num_inputs), dtype=torch.long)
        samples = torch.round(lens.float() * num_inputs).long()
        return self.num_frames(samples)

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def pitch_features(self, wavs: torch.Tensor, num_samples=None):
        """`(log_mel, salience)` of the frozen network for a batch `(B, N)`, zero past each item's
        `num_samples`. Items run one at a time, unpadded: FCPE's GroupNorm spans the whole
        input, so padding would change what it hears."""
        num_samples = [wavs.shape[1]] * wavs.shape[0] if num_samples is None else num_samples
        num_frames = self.num_frames(wavs.shape[1])
        mel = wavs.new_zeros(wavs.shape[0], num_frames, MEL_BINS)
        salience = wavs.new_zeros(wavs.shape[0], num_frames, SALIENCE_BINS)
        # FCPE's mel front-end expects samples in [-1, 1] (it complains about anything beyond).
        wavs = wavs.float().clamp(-1.0, 1.0)
        for b, n in enumerate(num_samples):
            item_mel = self.fcpe.wav2mel(wavs[b:b + 1, :int(n)].unsqueeze(-1), SAMPLE_RATE)
            frames = item_mel.shape[1]
            mel[b, :frames] = item_mel[0]
            salience[b, :frames] = self.salience(item_mel)[0]
        return mel, salience

    def salience(self, mel: torch.Tensor) -> torch.Tensor:
        """The pitch network's salience `(1, T, 360)` for one item's log-mel `(1, T, 128)`.

        With `pitch_stride` s the network reads mel frames 0, s, 2s, ... and frames in between
        are interpolated linearly (frames after the last one read repeat it): s times fewer
        frames for the network, which is most of the transcriber's time."""
        if self.pitch_stride != 1:
            return interpolate_frames(self._run_pitch_network(mel[:, ::self.pitch_stride]
                                                              .contiguous()),
                                      self.pitch_stride, mel.shape[1])
        return self._run_pitch_network(mel)

    def _run_pitch_network(self, mel: torch.Tensor) -> torch.Tensor:
        if self.compact_pitch_network is None and self.fast_fcpe is not None:
            return self.fast_fcpe(mel, self.pitch_precision)
        network = self.compact_pitch_network or self.fcpe.model
        if self.pitch_precision == "float32":
            return network(mel)
        with torch.autocast(mel.device.type, dtype=torch.bfloat16):
            return network(mel).float()

    def item_samples(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None) -> list:
        """Each item's number of samples in a padded batch."""
        if wav_lens is None:
            return [wavs.shape[1]] * wavs.shape[0]
        return torch.round(wav_lens.float() * wavs.shape[1]).long().tolist()

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None,
                pitch_features=None) -> torch.Tensor:
        """Features `(B, T, 2H + 2)`; `pitch_features` (`(log_mel, salience)` as
        `pitch_features()` returns them for these waveforms, e.g. from a `PitchFeatureCache`)
        skips the frozen network."""
        num_frames = self.num_frames(wavs.shape[1])
        lengths = self.frame_lengths(wav_lens, wavs.shape[1], wavs.shape[0]).clamp(1, num_frames)
        if pitch_features is None:
            pitch_features = self.pitch_features(wavs, self.item_samples(wavs, wav_lens))
        mel, salience = pitch_features
        confidence, _ = salience.max(dim=-1, keepdim=True)
        f0 = salience_to_midi(salience, self.fcpe.model.cent_table)
        mel = self.mel_norm(mel.transpose(1, 2)).transpose(1, 2)
        x = self.project(torch.cat([mel, salience, confidence], dim=-1))
        out = self.run_context(x, lengths)
        pitch = torch.stack([(f0 - 60.0) / 12.0, confidence[..., 0]], dim=-1)
        features = torch.cat([out, pitch], dim=-1)
        valid = torch.arange(num_frames, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        return features * valid[..., None]

    def run_context(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The context network over projected frames `(B, T, input_size)`, each item's first
        `lengths[b]` frames: `(B, T, 2H)`.

        With `lookahead_frames` L the GRU runs forward only and frame t's output is its state
        after frame t + L; past an item's end it reads L frames of zeros, which is also what a
        stream's last frames see (`svt.inference.live`)."""
        look = self.lookahead_frames or 0
        if look:
            frames = torch.arange(x.shape[1] + look, device=x.device)[None, :]
            x = torch.cat([x, x.new_zeros(x.shape[0], look, x.shape[2])], dim=1)
            x = x * (frames < lengths.to(x.device)[:, None])[..., None]
        if torch.is_grad_enabled() and x.device.type == "cpu":
            # Training on a CPU: the same function without packing, whose backward pass is 3x
            # faster there. Measured on CPUs only: a GPU keeps cuDNN's packed GRU.
            return gru_without_packing(self.context, x, lengths + look)[:, look:]
        packed = nn.utils.rnn.pack_padded_sequence(x, (lengths + look).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.context(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                  total_length=x.shape[1])
        return out[:, look:]

    @staticmethod
    def sung_pitch(features: torch.Tensor, threshold: float = VOICING_THRESHOLD) -> torch.Tensor:
        """Per-frame f0 in fractional MIDI from this encoder's output (NaN where unvoiced)."""
        midi = features[..., -2] * 12.0 + 60.0
        return torch.where(features[..., -1] >= threshold, midi, torch.full_like(midi, math.nan))

    # ------------------------------------------------------------------ bundles
    def encoder_config(self) -> dict:
        config = {"hidden_size": self.hidden_size, "num_layers": self.num_layers,
                  "dropout": self.dropout, "input_size": self.input_size,
                  "pitch_network": self.pitch_network_name}
        if self.compact_pitch_network is not None:
            config["compact_pitch_network"] = self.compact_pitch_network.config()
        if self.lookahead_frames is not None:  # older bundles: bidirectional, key absent
            config["lookahead_frames"] = self.lookahead_frames
        if self.pitch_stride != 1:  # older bundles: every frame, key absent
            config["pitch_stride"] = self.pitch_stride
        return config

    def save_for_bundle(self, folder: str | os.PathLike) -> Path:
        """Only the options: the trainable weights are in the bundle's weights file and FCPE's in
        the torchfcpe wheel."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self.encoder_config(), indent=2) + "\n")
        return folder

    @classmethod
    def from_bundle(cls, folder: str | os.PathLike, **overrides) -> "PitchNetworkEncoder":
        path = Path(folder) / CONFIG_FILE
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise EncoderNotAvailableError(f"{path}: cannot read the encoder options ({err})") \
                from None
        config.pop("pitch_network", None)
        config.update(overrides)
        return cls(**config)


class PitchFeatureCache:
    """What the frozen pitch network computes for training utterances, kept on disk.

    FCPE is frozen, so its log-mel and salience for an utterance never change; computing them
    again every epoch was most of an epoch's time on a CPU. Files are named by the utterance and
    a CRC-32 of its samples (`<folder>/<id>-<crc>.npy`, float16 `(T, 128 + 360)`): a changed
    recording, another utterance length or another sample rate gives a new name, so a stale file
    is never read; so does a compact pitch network in FCPE's place (its weights' CRC-32 is in the
    name). Files are written atomically; a damaged one is computed again."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._network_tags = {}

    def path(self, item_id: str, samples: torch.Tensor, network_tag: str = "") -> Path:
        import zlib

        data = samples.detach().float().cpu().contiguous().numpy().tobytes()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(item_id))
        return self.folder / f"{safe}-{zlib.crc32(data):08x}-{len(data) // 4}{network_tag}.npy"

    def network_tag(self, encoder: PitchNetworkEncoder) -> str:
        """"" for FCPE reading every frame in float32 (the names of older caches),
        "-compact<crc>" for a compact network, "-stride<s>" added for a `pitch_stride` above 1,
        "-bfloat16" for bfloat16 products."""
        import zlib

        stride = "" if encoder.pitch_stride == 1 else f"-stride{encoder.pitch_stride}"
        if encoder.pitch_precision != "float32":
            stride += f"-{encoder.pitch_precision}"
        network = encoder.compact_pitch_network
        if network is None:
            return stride
        key = id(network)
        if key not in self._network_tags:  # the network is kept with its tag: ids are not reused
            crc = 0
            for name, tensor in sorted(network.state_dict().items()):
                crc = zlib.crc32(name.encode(), crc)
                crc = zlib.crc32(tensor.detach().float().cpu().contiguous().numpy().tobytes(), crc)
            self._network_tags[key] = (network, f"-compact{crc:08x}")
        return self._network_tags[key][1] + stride

    def pitch_features(self, encoder: PitchNetworkEncoder, wavs: torch.Tensor,
                       wav_lens: torch.Tensor | None, ids) -> tuple:
        """`(log_mel, salience)` for a padded batch, as `encoder.pitch_features` gives them,
        read from the cache where present and computed (and stored) where not."""
        import numpy as np

        from svt.fileio import atomic_path

        samples = encoder.item_samples(wavs, wav_lens)
        num_frames = encoder.num_frames(wavs.shape[1])
        mel = wavs.new_zeros(wavs.shape[0], num_frames, MEL_BINS)
        salience = wavs.new_zeros(wavs.shape[0], num_frames, SALIENCE_BINS)
        tag = self.network_tag(encoder)
        for b, (item_id, n) in enumerate(zip(ids, samples)):
            path = self.path(item_id, wavs[b, :int(n)], tag)
            stored = None
            if path.is_file():
                try:
                    stored = torch.from_numpy(np.load(path).astype(np.float32))
                except (OSError, ValueError):
                    stored = None  # damaged (a crash mid-write cannot leave one, a disk can)
            expected = encoder.num_frames(int(n))
            if stored is None or stored.shape != (expected, MEL_BINS + SALIENCE_BINS):
                item_mel, item_salience = encoder.pitch_features(wavs[b:b + 1, :int(n)])
                stored = torch.cat([item_mel[0], item_salience[0]], dim=-1).cpu()
                with atomic_path(path) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, stored.numpy().astype(np.float16))
                stored = stored.half().float()  # the same values as a later read
            mel[b, :expected] = stored[:, :MEL_BINS].to(mel.device)
            salience[b, :expected] = stored[:, MEL_BINS:].to(mel.device)
        return mel, salience
