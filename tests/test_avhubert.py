"""Tests of svt.models.avhubert: AV-HuBERT video encoder, fairseq checkpoint loading without fairseq.

No real AV-HuBERT checkpoint is available offline, so the checkpoints are fabricated with the
structure of fairseq's (`save_fairseq_style_checkpoint`): a pickled dict with `cfg`, `model`,
`task_state` holding a `fairseq.data.dictionary.Dictionary` (a stand-in pickled under fairseq's
class name, so plain `torch.load(weights_only=True)` refuses it, as it refuses the real file). The
LARGE test uses the exact key names and shapes of `large_vox_iter5.pt` (reference:
tests/data/avhubert_large_state_dict.txt, rebuilt here independently of the module) with random
float16 values.
"""

import json
import math
import pickle
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from svt.models.avhubert import (
    AVHUBERT_LARGE_URL,
    DROPPED_KEYS,
    AVHubertConfig,
    AVHubertVideoEncoder,
    CheckpointError,
    UnsafeCheckpointError,
    _encoder_state_and_config,
    stand_in_class,
    load_fairseq_checkpoint,
)
from svt.models.ssl import EncoderNotAvailableError
from svt.synthetic.fairseq_checkpoints import (
    _STAND_IN_PICKLE_MODULE,
    save_fairseq_style_checkpoint,
)
from svt.synthetic.tiny_models import tiny_config

REFERENCE_KEYS = Path(__file__).parent / "data" / "avhubert_large_state_dict.txt"


# ------------------------------------------------------------------ helpers / fixtures
def large_checkpoint_shapes(num_clusters=500):
    """[(name, shape)] of the pre-trained LARGE checkpoint, in state-dict order (538 tensors),
    written from docs/av-hubert.md §5 (not from the module under test)."""
    dim, ffn, layers, prefix = 1024, 4096, 24, "feature_extractor_video.resnet"

    def bn(name, channels):
        return [(f"{name}.{p}", (channels,)) for p in ("weight", "bias", "running_mean",
                                                       "running_var")] + \
            [(f"{name}.num_batches_tracked", ())]

    shapes = [("mask_emb", (104,)), ("label_embs_concat", (num_clusters + 4, 256)),
              ("feature_extractor_audio.proj.weight", (dim, 104)),
              ("feature_extractor_audio.proj.bias", (dim,)),
              (f"{prefix}.frontend3D.0.weight", (64, 1, 5, 7, 7)),
              *bn(f"{prefix}.frontend3D.1", 64),
              (f"{prefix}.frontend3D.2.weight", (64,))]
    for layer, channels in zip(range(1, 5), (64, 128, 256, 512)):
        for block in range(2):
            down = block == 0 and layer > 1
            cin = channels // 2 if down else channels
            name = f"{prefix}.trunk.layer{layer}.{block}"
            shapes += [(f"{name}.conv1.weight", (channels, cin, 3, 3)),
                       *bn(f"{name}.bn1", channels),
                       (f"{name}.relu1.weight", (channels,)), (f"{name}.relu2.weight", (channels,)),
                       (f"{name}.conv2.weight", (channels, channels, 3, 3)),
                       *bn(f"{name}.bn2", channels)]
            if down:
                shapes += [(f"{name}.downsample.0.weight", (channels, cin, 1, 1)),
                           *bn(f"{name}.downsample.1", channels)]
    shapes += [("feature_extractor_video.proj.weight", (dim, 512)),
               ("feature_extractor_video.proj.bias", (dim,)),
               ("post_extract_proj.weight", (dim, 2 * dim)), ("post_extract_proj.bias", (dim,)),
               ("encoder.pos_conv.0.bias", (dim,)), ("encoder.pos_conv.0.weight_g", (1, 1, 128)),
               ("encoder.pos_conv.0.weight_v", (dim, dim // 16, 128))]
    for n in range(layers):
        name = f"encoder.layers.{n}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            shapes += [(f"{name}.self_attn.{proj}.weight", (dim, dim)),
                       (f"{name}.self_attn.{proj}.bias", (dim,))]
        shapes += [(f"{name}.self_attn_layer_norm.weight", (dim,)),
                   (f"{name}.self_attn_layer_norm.bias", (dim,)),
                   (f"{name}.fc1.weight", (ffn, dim)), (f"{name}.fc1.bias", (ffn,)),
                   (f"{name}.fc2.weight", (dim, ffn)), (f"{name}.fc2.bias", (dim,)),
                   (f"{name}.final_layer_norm.weight", (dim,)),
                   (f"{name}.final_layer_norm.bias", (dim,))]
    shapes += [("encoder.layer_norm.weight", (dim,)), ("encoder.layer_norm.bias", (dim,)),
               ("layer_norm.weight", (2 * dim,)), ("layer_norm.bias", (2 * dim,)),
               ("final_proj.weight", (256, dim)), ("final_proj.bias", (256,))]
    return shapes


def _random_large_state(seed=0, dtype=torch.float16):
    """The LARGE checkpoint's tensors with random values, in its key order.

    Drawing 325 M random numbers takes seconds, so each tensor is a copy of a random window of one
    random pool (distinct values per tensor all the same). Running variances are positive, norm
    scales and PReLU slopes near 1, batch counters int64 scalars.
    """
    generator = torch.Generator().manual_seed(seed)
    pool = torch.randn(9_000_000, generator=generator).to(dtype)
    state = {}
    for name, shape in large_checkpoint_shapes():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(1000, dtype=torch.long)
            continue
        numel = math.prod(shape)
        start = int(torch.randint(0, pool.numel() - numel + 1, (), generator=generator))
        values = pool[start:start + numel].clone().view(shape)
        if name.endswith("running_var") or (len(shape) == 1 and name.endswith(
                ("norm.weight", "bn1.weight", "bn2.weight", "1.weight"))):
            values = 1.0 + 0.1 * values.abs()
        else:
            values *= 0.02
        state[name] = values
    return state


def _video(batch, frames, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, frames, 88, 88, generator=generator)


def _randomise_batch_norm(model, seed=1):
    """Non-trivial running statistics (a fresh model has mean 0 / var 1)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0.0, 0.1, generator=generator)
            module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model in eval mode, its config, a fabricated pre-trained checkpoint file)."""
    root = tmp_path_factory.mktemp("avhubert")
    config = tiny_config()
    torch.manual_seed(0)
    model = _randomise_batch_norm(AVHubertVideoEncoder(config)).eval()
    path = save_fairseq_style_checkpoint(model, config, root / "tiny_avhubert.pt")
    return model, config, path


def _state_without(model, *names):
    return {k: v for k, v in model.state_dict().items() if k not in names}


# ------------------------------------------------------------------ LARGE: real key names/shapes
def test_large_key_set_matches_the_reference():
    shapes = large_checkpoint_shapes()
    assert len(shapes) == 538
    kept = [(name, shape) for name, shape in shapes if name not in DROPPED_KEYS]
    assert len(kept) == 532 and len(shapes) - len(kept) == 6
    with torch.device("meta"):
        model = AVHubertVideoEncoder(AVHubertConfig.large())
    state = model.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == kept  # names, shapes and order
    assert sum(v.numel() for v in state.values()) == pytest.approx(324.5e6, rel=1e-3)
    listed = []  # the reference listing (tests/data/README.md): must match exactly
    for line in REFERENCE_KEYS.read_text().splitlines():
        name, dims = re.match(r"(\S+) \(([^)]*)\)", line).groups()
        listed.append((name, tuple(int(d) for d in dims.split(",") if d.strip())))
    assert listed == shapes


def test_large_fabricated_checkpoint_loads_by_name(tmp_path):
    """Full-size LARGE file (538 tensors, random float16 values, ~650 MB), weights_only load."""
    state = _random_large_state()
    samples = {name: state[name].clone() for name in (
        "encoder.pos_conv.0.weight_g", "encoder.layers.23.fc2.bias", "layer_norm.bias",
        "feature_extractor_video.resnet.trunk.layer4.1.bn2.running_var",
        "feature_extractor_video.resnet.frontend3D.1.num_batches_tracked")}
    path = tmp_path / "large_vox_iter5.pt"
    try:
        save_fairseq_style_checkpoint(state, AVHubertConfig.large(), path)
        del state
        with pytest.raises(pickle.UnpicklingError, match="fairseq.data.dictionary"):
            torch.load(path, weights_only=True)  # as the real file: needs the stand-ins
        encoder = AVHubertVideoEncoder.from_checkpoint(path)
    finally:
        path.unlink(missing_ok=True)
    config = encoder.config
    assert (config.encoder_layers, config.encoder_embed_dim, config.encoder_ffn_embed_dim,
            config.encoder_attention_heads, config.conv_pos, config.conv_pos_groups) == \
        (24, 1024, 4096, 16, 128, 16)
    assert (config.encoder_layerdrop, config.dropout_input, config.feature_grad_mult) == \
        (0.05, 0.1, 0.1)
    assert encoder.output_size == 1024
    loaded = encoder.state_dict()
    assert len(loaded) == 532 and not set(DROPPED_KEYS) & set(loaded)
    assert all(not t.is_meta for t in loaded.values())
    for name, value in samples.items():
        expected = value.float() if value.is_floating_point() else value
        assert loaded[name].dtype == expected.dtype and torch.equal(loaded[name], expected)
    assert encoder.checkpoint_path == str(path)
    with torch.no_grad():
        features = encoder.eval()(_video(1, 3))
    assert features.shape == (1, 3, 1024) and torch.isfinite(features).all()


# ------------------------------------------------------------------ tiny checkpoints
def test_tiny_checkpoint_loads_and_gives_one_frame_per_input_frame(tiny):
    model, config, path = tiny
    encoder = AVHubertVideoEncoder.from_checkpoint(path).eval()
    assert encoder.config == config
    for batch, frames in ((2, 5), (1, 1)):
        video = _video(batch, frames)
        with torch.no_grad():
            features = encoder(video)
            assert torch.equal(features, model(video))
        assert features.shape == (batch, frames, config.encoder_embed_dim)
        assert encoder.num_frames(frames) == frames
    # [B, T, H, W] without the channel axis is accepted too
    with torch.no_grad():
        assert torch.equal(encoder(video[:, 0]), features)


def test_checkpoint_structure_and_dropped_keys(tiny):
    _, config, path = tiny
    checkpoint = load_fairseq_checkpoint(path)
    assert set(checkpoint) >= {"args", "cfg", "model", "optimizer_history", "task_state",
                               "extra_state"}
    assert checkpoint["cfg"]["model"]["_name"] == "av_hubert"
    assert checkpoint["cfg"]["task"]["image_mean"] == 0.421
    dictionary = checkpoint["task_state"]["dictionaries"][0]
    assert type(dictionary).__name__ == "Dictionary" and len(dictionary.symbols) == 504
    assert dictionary.indices["<pad>"] == 1  # pickled state restored, no fairseq code run
    assert list(checkpoint["model"])[:4] == ["mask_emb", "label_embs_concat",
                                             "feature_extractor_audio.proj.weight",
                                             "feature_extractor_audio.proj.bias"]
    state, model_cfg, dropped = _encoder_state_and_config(checkpoint, str(path))
    assert sorted(dropped) == sorted(DROPPED_KEYS)
    assert model_cfg["encoder_embed_dim"] == config.encoder_embed_dim


def test_finetuned_prefix_loads_with_its_overrides(tiny, tmp_path):
    model, config, _ = tiny
    path = save_fairseq_style_checkpoint(model, config, tmp_path / "ft.pt", finetuned=True)
    checkpoint = load_fairseq_checkpoint(path)
    assert all(k.startswith(("encoder.w2v_model.", "decoder.")) for k in checkpoint["model"])
    assert "final_proj.weight" not in "".join(checkpoint["model"])
    assert checkpoint["task_state"]["s2s_tokenizer"].sp.pickled_state.startswith(b"\n")
    encoder = AVHubertVideoEncoder.from_checkpoint(path).eval()
    video = _video(1, 3)
    with torch.no_grad():
        assert torch.equal(encoder(video), model(video))
    # the fine-tuned model's own dropout / layerdrop settings win over the pre-training ones
    checkpoint["cfg"]["model"].update(layerdrop=0.3, dropout=0.2)
    _, model_cfg, dropped = _encoder_state_and_config(checkpoint, str(path))
    assert model_cfg["encoder_layerdrop"] == 0.3 and model_cfg["dropout"] == 0.2
    assert "decoder.embed_tokens.weight" in dropped and "mask_emb" in dropped


def test_legacy_format_checkpoint_loads(tiny, tmp_path):
    model, config, _ = tiny
    path = save_fairseq_style_checkpoint(model, config, tmp_path / "legacy.pt",
                                         legacy_format=True)
    encoder = AVHubertVideoEncoder.from_checkpoint(path).eval()
    video = _video(1, 2)
    with torch.no_grad():
        assert torch.equal(encoder(video), model(video))


def test_missing_and_unexpected_keys_are_listed(tiny, tmp_path):
    model, config, _ = tiny
    state = _state_without(model, "encoder.layers.1.fc2.bias", "layer_norm.weight")
    state["encoder.layers.1.extra_gate"] = torch.zeros(3)
    path = save_fairseq_style_checkpoint(state, config, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        AVHubertVideoEncoder.from_checkpoint(path)
    message = str(info.value)
    assert "encoder.layers.1.fc2.bias" in message and "layer_norm.weight" in message
    assert "encoder.layers.1.extra_gate" in message
    assert info.value.missing == ["encoder.layers.1.fc2.bias", "layer_norm.weight"]
    assert info.value.unexpected == ["encoder.layers.1.extra_gate"]


def test_wrong_shapes_are_listed_with_expected_and_found(tiny, tmp_path):
    model, config, _ = tiny
    state = model.state_dict()
    state["post_extract_proj.weight"] = torch.zeros(32, 48)
    state["encoder.pos_conv.0.weight_v"] = torch.zeros(32, 16, 16)
    path = save_fairseq_style_checkpoint(state, config, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError) as info:
        AVHubertVideoEncoder.from_checkpoint(path)
    message = str(info.value)
    assert "post_extract_proj.weight: expected [32, 64], found [32, 48]" in message
    assert "encoder.pos_conv.0.weight_v: expected [32, 8, 16], found [32, 16, 16]" in message
    assert set(info.value.mismatched) == {"post_extract_proj.weight",
                                          "encoder.pos_conv.0.weight_v"}


def test_missing_file_says_where_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        AVHubertVideoEncoder.from_checkpoint(tmp_path / "large_vox_iter5.pt")
    assert isinstance(info.value, EncoderNotAvailableError)
    assert AVHUBERT_LARGE_URL in str(info.value) and "avhubert_checkpoint:" in str(info.value)


def test_unsupported_config_and_overrides(tiny, tmp_path):
    model, config, path = tiny
    with pytest.raises(ValueError, match="encoder_layers"):
        AVHubertVideoEncoder.from_checkpoint(path, encoder_layers=4)
    with pytest.raises(TypeError, match="not_a_field"):
        AVHubertVideoEncoder.from_checkpoint(path, not_a_field=1)
    encoder = AVHubertVideoEncoder.from_checkpoint(path, dropout=0.0, encoder_layerdrop=0.0)
    assert encoder.config.dropout == 0.0 and encoder.encoder.layers[0].dropout1.p == 0.0
    checkpoint = load_fairseq_checkpoint(path)
    checkpoint["cfg"]["model"]["modality_fuse"] = "add"
    torch.save(checkpoint, tmp_path / "add.pt", pickle_module=_STAND_IN_PICKLE_MODULE)
    with pytest.raises(CheckpointError, match="modality_fuse"):
        AVHubertVideoEncoder.from_checkpoint(tmp_path / "add.pt")


# ------------------------------------------------------------------ unsafe pickles
EXECUTED = []


def _side_effect(*args):
    EXECUTED.append(args)
    return {}


class Payload:
    """Unpickling this calls `_side_effect`: it must never happen."""

    def __reduce__(self):
        return (_side_effect, ("arbitrary code",))


@pytest.mark.parametrize("legacy", [False, True])
def test_unsafe_pickles_are_refused(tmp_path, legacy):
    path = tmp_path / "evil.pt"
    torch.save({"model": {"x": torch.zeros(1)}, "cfg": None, "extra_state": Payload()}, path,
               _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError, match="_side_effect") as info:
        AVHubertVideoEncoder.from_checkpoint(path)
    assert "allow-list" in str(info.value)
    assert EXECUTED == []


def test_fairseq_namespace_objects_become_inert_stand_ins(tmp_path):
    """A fairseq-named *function* in the pickle is not called: its stand-in just keeps the args."""
    runner = stand_in_class("fairseq.checkpoint_utils.some_function")

    class Call:
        def __reduce__(self):
            return (runner, ("would have run",))

    path = tmp_path / "fs.pt"
    torch.save({"model": {}, "extra_state": Call()}, path, pickle_module=_STAND_IN_PICKLE_MODULE)
    loaded = load_fairseq_checkpoint(path)["extra_state"]
    assert type(loaded).__name__ == "some_function"
    assert loaded.pickled_args == (("would have run",), {})


def test_non_checkpoint_files_are_rejected(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint " * 20)
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        AVHubertVideoEncoder.from_checkpoint(garbage)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="'model'"):
        AVHubertVideoEncoder.from_checkpoint(plain)


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("output_norm", [True, False])
def test_padding_invariance(tiny, output_norm):
    model, _, _ = tiny
    model.output_norm = output_norm
    try:
        short = _video(1, 4, seed=3)
        batch = _video(2, 7, seed=4)  # item 1: the short clip + garbage padding frames
        batch[1, :, :4] = short[0]
        with torch.no_grad():
            padded = model(batch, torch.tensor([1.0, 4 / 7]))
            alone = model(short)
        assert torch.allclose(padded[1, :4], alone[0], atol=1e-4)
        assert torch.equal(padded[1, 4:], torch.zeros_like(padded[1, 4:]))
        with torch.no_grad():  # the full-length item is unaffected by its neighbour
            assert torch.allclose(padded[0], model(batch[:1]), atol=1e-4)
    finally:
        model.output_norm = True


def test_output_norm_statistics_per_utterance(tiny):
    model, _, _ = tiny
    with torch.no_grad():
        features = model(_video(2, 6, seed=5), torch.tensor([1.0, 0.5]))
    for item, length in ((0, 6), (1, 3)):
        valid = features[item, :length]
        assert abs(float(valid.mean())) < 1e-5
        assert float(valid.var(unbiased=False)) == pytest.approx(1.0, abs=1e-3)
    # = the raw features (final LayerNorm output) standardised over each utterance's valid frames
    raw = AVHubertVideoEncoder(model.config, output_norm=False)
    raw.load_state_dict(model.state_dict())
    with torch.no_grad():
        unnormalised = raw.eval()(_video(2, 6, seed=5), torch.tensor([1.0, 0.5]))
    assert torch.equal(unnormalised[1, 3:], torch.zeros(3, 32))
    for item, length in ((0, 6), (1, 3)):
        valid = unnormalised[item, :length]
        expected = (valid - valid.mean()) / torch.sqrt(valid.var(unbiased=False) + 1e-5)
        assert torch.allclose(features[item, :length], expected, atol=1e-5)


def test_video_only_fusion_uses_the_audio_half(tiny):
    """The LayerNorm(2D) runs over [zeros, video]; its audio-half affine params reach the output."""
    model, config, _ = tiny
    video = _video(1, 2, seed=6)
    changed = AVHubertVideoEncoder(config)
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.layer_norm.bias[: config.encoder_embed_dim] += 0.5
        assert not torch.allclose(changed.eval()(video), model(video), atol=1e-3)


def test_freeze_semantics(tiny):
    _, config, path = tiny
    encoder = AVHubertVideoEncoder.from_checkpoint(path, freeze=True)
    assert encoder.freeze and not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not any(m.training for m in encoder.modules())
    video = _video(1, 2)
    features = encoder(video)
    assert not features.requires_grad
    assert torch.equal(features, encoder(video))  # deterministic: no dropout / layerdrop
    assert encoder.encoder_config()["freeze"] is True
    assert AVHubertVideoEncoder(config, freeze=True).training is False


def test_gradients_and_feature_grad_mult(tiny):
    """Training mode trains; the front-end's gradient is scaled by feature_grad_mult."""
    model, config, _ = tiny
    grads = {}
    for mult in (1.0, 0.1, 0.0):
        encoder = AVHubertVideoEncoder(tiny_config(feature_grad_mult=mult, dropout=0.0,
                                                   attention_dropout=0.0, dropout_input=0.0),
                                       output_norm=False)
        encoder.load_state_dict(model.state_dict())
        encoder.eval()  # deterministic; gradients still flow
        encoder(_video(1, 2, seed=7)).square().sum().backward()
        front = encoder.feature_extractor_video.proj.weight.grad
        grads[mult] = (None if front is None else front.clone(),
                       encoder.post_extract_proj.weight.grad.clone())
    assert torch.allclose(grads[0.1][0], 0.1 * grads[1.0][0], rtol=1e-4, atol=1e-9)
    assert torch.allclose(grads[0.1][1], grads[1.0][1])  # transformer side unchanged
    assert grads[0.0][0] is None  # 0: the front-end runs without gradient
    encoder.train()
    assert encoder.training and encoder.encoder.training


def test_bundle_round_trip_is_identical(tiny, tmp_path):
    model, config, path = tiny
    encoder = AVHubertVideoEncoder.from_checkpoint(path, output_norm=False).eval()
    folder = encoder.save_for_bundle(tmp_path / "encoder")
    options = json.loads((folder / "svt_encoder.json").read_text())
    assert options["model_type"] == "av_hubert" and options["checkpoint_path"] == str(path)
    reloaded = AVHubertVideoEncoder.from_bundle(folder).eval()
    video, lens = _video(2, 3, seed=8), torch.tensor([1.0, 2 / 3])
    with torch.no_grad():
        assert torch.equal(reloaded(video, lens), encoder(video, lens))
    assert reloaded.output_norm is False and reloaded.config == config
    frozen = AVHubertVideoEncoder.from_bundle(folder, freeze=True, dropout=0.0)
    assert frozen.freeze and frozen.config.dropout == 0.0
    # encoder_config() is JSON-safe and rebuilds the same architecture
    rebuilt = AVHubertVideoEncoder(**json.loads(json.dumps(encoder.encoder_config())))
    assert rebuilt.config == config and rebuilt.output_norm is False
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
        {k: v.shape for k, v in encoder.state_dict().items()}
    with pytest.raises(EncoderNotAvailableError):
        AVHubertVideoEncoder.from_bundle(tmp_path / "nothing")


def test_encoder_interface(tiny):
    model, config, _ = tiny
    assert model.output_size == config.encoder_embed_dim
    assert model.frame_rate is None
    assert model.num_frames(250) == 250
    assert torch.equal(model.num_frames(torch.tensor([3, 5])), torch.tensor([3, 5]))
    assert model.frame_lengths(torch.tensor([1.0, 0.5, 0.01]), 250).tolist() == [250, 125, 2]
    assert model.frame_lengths(None, 7, batch_size=2).tolist() == [7, 7]
    with pytest.raises(ValueError, match="frames"):
        model(torch.zeros(1, 3, 2, 88, 88))


def test_training_mode_batch_norm_statistics_skip_padding(tiny):
    """In training, batch statistics come from valid frames only: garbage padding changes nothing."""
    model, _, _ = tiny
    no_dropout = tiny_config(dropout=0.0, attention_dropout=0.0, dropout_input=0.0)
    clip = _video(1, 4, seed=9)
    padded = torch.cat([clip, 5 * _video(1, 3, seed=10)], dim=2)
    outputs = []
    for video, lens in ((padded, torch.tensor([4 / 7])), (clip, None)):
        encoder = AVHubertVideoEncoder(no_dropout)
        encoder.load_state_dict(model.state_dict())
        with torch.no_grad():
            outputs.append(encoder.train()(video, lens))
    assert torch.allclose(outputs[0][:, :4], outputs[1], atol=1e-4)


def _literal_fairseq_forward(state, config, video):
    """fairseq's video-only `extract_finetune` transcribed op by op (eval mode, no padding):
    5-D BatchNorm3d, fold time into batch, [T, B, D] layout, torch's weight_norm, and
    `F.multi_head_attention_forward` with separate q/k/v weights."""
    dim, prefix = config.encoder_embed_dim, "feature_extractor_video.resnet."

    def bn(x, name):
        return F.batch_norm(x, state[name + ".running_mean"], state[name + ".running_var"],
                            state[name + ".weight"], state[name + ".bias"], False, 0.1, 1e-5)

    batch = video.shape[0]
    x = F.conv3d(video, state[prefix + "frontend3D.0.weight"], None, (1, 2, 2), (2, 3, 3))
    x = F.prelu(bn(x, prefix + "frontend3D.1"), state[prefix + "frontend3D.2.weight"])
    x = F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
    frames = x.shape[2]
    x = x.transpose(1, 2).reshape(batch * frames, *x.shape[1:2], *x.shape[3:])
    for layer in range(1, 5):
        for block in range(2):
            name = f"{prefix}trunk.layer{layer}.{block}."
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.conv2d(x, state[name + "conv1.weight"], None, stride, 1)
            out = F.prelu(bn(out, name + "bn1"), state[name + "relu1.weight"])
            out = bn(F.conv2d(out, state[name + "conv2.weight"], None, 1, 1), name + "bn2")
            residual = x
            if name + "downsample.0.weight" in state:
                residual = bn(F.conv2d(x, state[name + "downsample.0.weight"], None, 2),
                              name + "downsample.1")
            x = F.prelu(out + residual, state[name + "relu2.weight"])
    x = F.adaptive_avg_pool2d(x, 1).view(batch, frames, 512)
    x = F.linear(x, state["feature_extractor_video.proj.weight"],
                 state["feature_extractor_video.proj.bias"]).transpose(1, 2)
    features = torch.cat([torch.zeros_like(x), x], dim=1).transpose(1, 2)
    features = F.layer_norm(features, (2 * dim,), state["layer_norm.weight"],
                            state["layer_norm.bias"])
    x = F.linear(features, state["post_extract_proj.weight"], state["post_extract_proj.bias"])
    conv = nn.utils.parametrizations.weight_norm(
        nn.Conv1d(dim, dim, config.conv_pos, padding=config.conv_pos // 2,
                  groups=config.conv_pos_groups), dim=2)
    conv.load_state_dict({k.split(".")[-1]: v for k, v in state.items()
                          if k.startswith("encoder.pos_conv.0.")})
    x = x + F.gelu(conv(x.transpose(1, 2))[:, :, :-1]).transpose(1, 2)
    x = x.transpose(0, 1)
    for index in range(config.encoder_layers):
        name = f"encoder.layers.{index}."
        residual = x
        x = F.layer_norm(x, (dim,), state[name + "self_attn_layer_norm.weight"],
                         state[name + "self_attn_layer_norm.bias"])
        x = residual + F.multi_head_attention_forward(
            x, x, x, dim, config.encoder_attention_heads, None,
            torch.cat([state[name + f"self_attn.{p}_proj.bias"] for p in "qkv"]), None, None,
            False, 0.0, state[name + "self_attn.out_proj.weight"],
            state[name + "self_attn.out_proj.bias"], training=False, need_weights=False,
            use_separate_proj_weight=True, q_proj_weight=state[name + "self_attn.q_proj.weight"],
            k_proj_weight=state[name + "self_attn.k_proj.weight"],
            v_proj_weight=state[name + "self_attn.v_proj.weight"])[0]
        residual = x
        x = F.layer_norm(x, (dim,), state[name + "final_layer_norm.weight"],
                         state[name + "final_layer_norm.bias"])
        x = F.gelu(F.linear(x, state[name + "fc1.weight"], state[name + "fc1.bias"]))
        x = residual + F.linear(x, state[name + "fc2.weight"], state[name + "fc2.bias"])
    return F.layer_norm(x.transpose(0, 1), (dim,), state["encoder.layer_norm.weight"],
                        state["encoder.layer_norm.bias"])


def test_matches_a_literal_transcription_of_the_fairseq_forward(tiny):
    model, config, _ = tiny
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(11)
    for name, value in state.items():  # non-trivial norms, biases and slopes
        if value.is_floating_point() and value.dim() == 1 and "running" not in name:
            value.add_(0.1 * torch.randn(value.shape, generator=generator))
    encoder = AVHubertVideoEncoder(config, output_norm=False)
    encoder.load_state_dict(state)
    video = _video(2, 3, seed=12)
    with torch.no_grad():
        ours = encoder.eval()(video)
        reference = _literal_fairseq_forward(state, config, video)
        assert torch.allclose(ours, reference, atol=1e-5)
        # at batch size 1 the per-utterance output norm is the original's F.layer_norm(x, x.shape)
        encoder.output_norm = True
        assert torch.allclose(encoder(video[:1]),
                              F.layer_norm(reference[:1], reference[:1].shape), atol=1e-5)


# ------------------------------------------------------------------ building blocks vs torch
def test_positional_conv_weight_norm_matches_torch():
    """Same maths as torch's weight_norm(dim=2) loaded from the legacy weight_g / weight_v keys."""
    config = tiny_config()
    with torch.no_grad():
        encoder = AVHubertVideoEncoder(config)
        ours = encoder.encoder.pos_conv[0]
        ours.weight_g.uniform_(0.5, 2.0)
        reference = nn.utils.parametrizations.weight_norm(
            nn.Conv1d(32, 32, 16, padding=8, groups=4), dim=2)
        reference.load_state_dict({"bias": ours.bias, "weight_g": ours.weight_g,
                                   "weight_v": ours.weight_v})
        x = torch.randn(2, 32, 10)
        assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_attention_matches_torch_multihead_attention():
    torch.manual_seed(0)
    layer = AVHubertVideoEncoder(tiny_config()).encoder.layers[0].self_attn.eval()
    reference = nn.MultiheadAttention(32, 2, batch_first=True).eval()
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.cat([layer.q_proj.weight, layer.k_proj.weight,
                                                  layer.v_proj.weight]))
        reference.in_proj_bias.copy_(torch.cat([layer.q_proj.bias, layer.k_proj.bias,
                                                layer.v_proj.bias]))
        reference.out_proj.load_state_dict(layer.out_proj.state_dict())
        x = torch.randn(2, 5, 32)
        mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
        expected = reference(x, x, x, key_padding_mask=mask, need_weights=False)[0]
        assert torch.allclose(layer(x, mask), expected, atol=1e-5)


def test_tiny_config_and_sizes():
    config = tiny_config(encoder_layers=3)
    assert config.encoder_layers == 3 and config.encoder_embed_dim == 32
    base = AVHubertConfig.base()
    assert (base.encoder_layers, base.encoder_embed_dim, base.encoder_attention_heads) == \
        (12, 768, 12)
    with torch.device("meta"):
        model = AVHubertVideoEncoder(base)
    assert len(model.state_dict()) == 340  # 346 in the BASE checkpoint, minus the 6 dropped
    assert AVHubertConfig.from_fairseq({"encoder_layers": "24", "layer_norm_first": "true",
                                        "unrelated": 1}).encoder_layers == 24
    with pytest.raises(ValueError, match="modality_fuse"):
        AVHubertVideoEncoder(tiny_config(modality_fuse="add"))
    assert math.isclose(tiny_config().feature_grad_mult, 0.1)
