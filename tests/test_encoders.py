"""Tests of svt.models.ssl: SSL encoder loading, geometry, masking, normalisation, layers, freezing.

All models are tiny random ones written by `build_tiny_ssl_model` (no network: HF_HUB_OFFLINE=1).
"""

import json
import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from svt.models.ssl import (
    EncoderNotAvailableError,
    SSLEncoder,
    UnsupportedEncoderError,
    masked_standardize,
)
from svt.synthetic.tiny_models import build_tiny_ssl_model

FAMILIES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
HIDDEN = 32
LAYERS = 2

# svt.models.ssl silences this (harmless) torch warning raised inside HF's WavLM attention, but pytest
# resets warning filters for each test.
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """{(family, feat_extract_norm): folder}; data2vec-audio only has layer-norm convs."""
    root = tmp_path_factory.mktemp("tiny_ssl")
    folders = {}
    for family in FAMILIES:
        for norm in ("group", "layer"):
            if family == "data2vec-audio" and norm == "group":
                continue
            folders[family, norm] = build_tiny_ssl_model(root / f"{family}-{norm}", family,
                                                         feat_extract_norm=norm, seed=3)
    return folders


def _wavs(batch=2, samples=80000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, samples, generator=generator)


def _encoder(folder, **kwargs):
    return SSLEncoder(source=folder, **kwargs).eval()


# ------------------------------------------------------------------ build / save / reload
@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_saves_and_reloads_offline(tiny_folders, tmp_path, family):
    folder = tiny_folders[family, "layer"]
    assert (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file()
    encoder = _encoder(folder)
    assert encoder.model_type == family
    assert encoder.normalize_input is True  # from preprocessor_config.json (do_normalize)
    assert sum(p.numel() for p in encoder.parameters()) < 1_000_000
    wavs, lens = _wavs(), torch.tensor([1.0, 0.7])
    with torch.no_grad():
        reference = encoder(wavs, lens)
    assert reference.shape == (2, 249, HIDDEN) and reference.dtype == torch.float32

    bundle = encoder.save_for_bundle(tmp_path / "bundle")
    for reloaded in (_encoder(bundle), SSLEncoder.from_bundle(bundle).eval()):
        with torch.no_grad():
            assert torch.equal(reloaded(wavs, lens), reference)

    # Same seed, same weights; the global RNG is not consumed.
    state = torch.random.get_rng_state()
    again = build_tiny_ssl_model(tmp_path / "again", family, feat_extract_norm="layer", seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    with torch.no_grad():
        assert torch.equal(_encoder(again)(wavs, lens), reference)


def test_encoder_config_round_trips_through_json(tiny_folders):
    encoder = SSLEncoder(source=tiny_folders["hubert", "group"], output_layer=1, output_norm=False,
                         freeze_feature_extractor=True)
    config = json.loads(json.dumps(encoder.encoder_config()))
    rebuilt = SSLEncoder(**config)
    assert rebuilt.encoder_config() == encoder.encoder_config()
    wavs = _wavs(1)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(wavs), encoder.eval()(wavs))


def test_bundle_restores_weighted_layer_weights(tiny_folders, tmp_path):
    encoder = _encoder(tiny_folders["wavlm", "layer"], weighted_layers=True, output_norm=False)
    with torch.no_grad():
        encoder.layer_weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    wavs = _wavs()
    with torch.no_grad():
        reference = encoder(wavs)
    bundle = encoder.save_for_bundle(tmp_path / "bundle")
    restored = SSLEncoder.from_bundle(bundle).eval()
    assert restored.weighted_layers and not restored.output_norm
    assert torch.equal(restored.layer_weights.detach(), encoder.layer_weights.detach())
    # The plain constructor restores the learned weights too when asked for weighted layers.
    plain = _encoder(bundle, weighted_layers=True, output_norm=False)
    with torch.no_grad():
        assert torch.equal(restored(wavs), reference)
        assert torch.equal(plain(wavs), reference)
    # The layer weights are also in the module's state dict.
    assert "layer_weights" in encoder.state_dict()


def test_bundle_records_resolved_input_normalisation(tiny_folders, tmp_path):
    encoder = _encoder(tiny_folders["wav2vec2", "group"], normalize_input=False)
    bundle = encoder.save_for_bundle(tmp_path / "bundle")
    assert json.loads((bundle / "preprocessor_config.json").read_text())["do_normalize"] is False
    assert _encoder(bundle).normalize_input is False


# ------------------------------------------------------------------ geometry
def test_frame_counts_match_the_model(tiny_folders):
    encoder = _encoder(tiny_folders["wav2vec2", "group"])
    assert encoder.num_frames(80000) == 249
    assert encoder.frame_rate == 50.0 and encoder.sample_rate == 16000
    assert encoder.output_size == HIDDEN and encoder.num_layers == LAYERS
    assert encoder._receptive_field() == 400
    lengths = [400, 401, 719, 720, 1000, 16000, 33333, 80000]
    assert torch.equal(encoder.num_frames(torch.tensor(lengths)),
                       torch.tensor([encoder.num_frames(n) for n in lengths]))
    with torch.no_grad():
        for n in lengths:
            assert encoder(_wavs(1, n)).shape[1] == encoder.num_frames(n), n
    # Relative lengths -> valid frames, as forward masks them.
    assert encoder.frame_lengths(torch.tensor([1.0, 0.5]), 80000).tolist() == [249, 124]


# ------------------------------------------------------------------ padding
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("output_norm", [True, False])
def test_layer_norm_models_are_padding_invariant(tiny_folders, family, output_norm):
    """With an attention mask, a padded utterance's valid frames equal running it alone."""
    encoder = _encoder(tiny_folders[family, "layer"], output_norm=output_norm)
    assert encoder.uses_attention_mask
    wavs = _wavs(2, 80000)
    short = 48000
    wavs[1, short:] = 0.5  # garbage in the padding must not matter
    with torch.no_grad():
        batch = encoder(wavs, torch.tensor([1.0, short / 80000]))
        alone = encoder(wavs[1:, :short])
        first_alone = encoder(wavs[:1])
    valid = encoder.num_frames(short)
    assert alone.shape[1] == valid == 149
    torch.testing.assert_close(batch[1, :valid], alone[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batch[0], first_alone[0], atol=1e-4, rtol=1e-4)
    assert torch.all(batch[1, valid:] == 0)


@pytest.mark.parametrize("family", ["wav2vec2", "hubert", "wavlm"])
def test_group_norm_models_zero_padding_without_attention_mask(tiny_folders, family):
    """Group-norm CNNs get no attention mask (HF's rule). Their first conv layer normalises over the
    whole (zero-padded) signal and the transformer attends to the padded frames, so a padded
    utterance's valid frames are NOT equal to running it alone (max abs difference about 1-2 on
    unit-variance features for these tiny random models, correlation about 0.95): we only check
    they are finite and clearly correlated, and that padded frames are exactly zero.
    The longest utterance of the batch (no padding) is unaffected."""
    encoder = _encoder(tiny_folders[family, "group"])
    assert not encoder.uses_attention_mask
    wavs = _wavs(2, 80000)
    short = 48000
    wavs[1, short:] = 0.5  # zeroed by the encoder before the CNN
    with torch.no_grad():
        batch = encoder(wavs, torch.tensor([1.0, short / 80000]))
        alone = encoder(wavs[1:, :short])
        first_alone = encoder(wavs[:1])
    valid = encoder.num_frames(short)
    torch.testing.assert_close(batch[0], first_alone[0], atol=1e-4, rtol=1e-4)
    assert torch.all(batch[1, valid:] == 0)
    padded_valid = batch[1, :valid]
    assert torch.isfinite(padded_valid).all()
    correlation = torch.corrcoef(torch.stack([padded_valid.flatten(), alone[0].flatten()]))[0, 1]
    assert correlation > 0.8, correlation  # about 0.95 for these tiny random models
    # Padding with zeros instead of garbage gives exactly the same result (padding is zeroed).
    wavs[1, short:] = 0.0
    with torch.no_grad():
        assert torch.equal(encoder(wavs, torch.tensor([1.0, short / 80000])), batch)


def test_no_lengths_equals_full_lengths(tiny_folders):
    encoder = _encoder(tiny_folders["wav2vec2", "layer"])
    wavs = _wavs()
    with torch.no_grad():
        assert torch.equal(encoder(wavs), encoder(wavs, torch.ones(2)))


def test_very_short_utterance_in_a_batch_keeps_one_frame(tiny_folders):
    encoder = _encoder(tiny_folders["wav2vec2", "layer"])
    with torch.no_grad():
        out = encoder(_wavs(2, 16000), torch.tensor([1.0, 0.01]))  # 160 samples < 400
    assert torch.isfinite(out).all()
    assert torch.all(out[1, 1:] == 0) and torch.any(out[1, 0] != 0)


# ------------------------------------------------------------------ normalisation
def test_output_norm_is_per_utterance_over_valid_frames(tiny_folders):
    encoder = _encoder(tiny_folders["hubert", "layer"], output_norm=True)
    wavs = _wavs(3, 32000)
    wavs[2] *= 50  # a loud utterance must not change the others' normalisation
    lens = torch.tensor([1.0, 0.55, 0.8])
    with torch.no_grad():
        out = encoder(wavs, lens)
    for b, n_frames in enumerate(encoder.frame_lengths(lens, 32000).tolist()):
        valid = out[b, :n_frames]
        assert abs(valid.mean().item()) < 1e-4
        assert abs(valid.var(unbiased=False).item() - 1) < 1e-3
        assert torch.all(out[b, n_frames:] == 0)


def test_batch_of_one_matches_the_original_whole_tensor_layer_norm(tiny_folders):
    raw = _encoder(tiny_folders["wav2vec2", "layer"], output_norm=False, normalize_input=False)
    normed = _encoder(tiny_folders["wav2vec2", "layer"], output_norm=True, normalize_input=True)
    wavs = _wavs(1)
    with torch.no_grad():
        original_input = torch.nn.functional.layer_norm(wavs, wavs.shape)  # docs/original-recipes.md §3.2, batch size 1
        original_output = torch.nn.functional.layer_norm(raw(original_input),
                                                         raw(original_input).shape)
        torch.testing.assert_close(normed(wavs), original_output, atol=1e-5, rtol=1e-5)


def test_masked_standardize_input_normalisation():
    x = torch.randn(2, 1000) * torch.tensor([[3.0], [0.2]]) + torch.tensor([[1.0], [-2.0]])
    mask = torch.arange(1000)[None, :] < torch.tensor([[1000], [600]])
    out = masked_standardize(x, mask)
    torch.testing.assert_close(out[1, :600], torch.nn.functional.layer_norm(x[1, :600], (600,)))
    torch.testing.assert_close(out[0], torch.nn.functional.layer_norm(x[0], (1000,)))
    assert torch.all(out[1, 600:] == 0)


# ------------------------------------------------------------------ layer selection
@pytest.mark.parametrize("family", FAMILIES)
def test_output_layer_and_weighted_layers_match_hf_hidden_states(tiny_folders, family):
    folder = tiny_folders[family, "layer"]
    base = _encoder(folder, output_norm=False, normalize_input=False)
    wavs = _wavs()
    with torch.no_grad():
        hidden = base.model(wavs, output_hidden_states=True).hidden_states
        assert len(hidden) == LAYERS + 1
        for layer in range(LAYERS + 1):
            encoder = _encoder(folder, output_norm=False, normalize_input=False, output_layer=layer)
            torch.testing.assert_close(encoder(wavs), hidden[layer], atol=1e-6, rtol=1e-6)
        last = _encoder(folder, output_norm=False, normalize_input=False, output_layer=-1)
        torch.testing.assert_close(last(wavs), hidden[LAYERS], atol=1e-6, rtol=1e-6)

        weighted = _encoder(folder, output_norm=False, normalize_input=False, weighted_layers=True)
        weighted.layer_weights.copy_(torch.tensor([0.5, -1.0, 1.5]))
        expected = sum(w * h for w, h in zip(torch.softmax(weighted.layer_weights, 0), hidden))
        torch.testing.assert_close(weighted(wavs), expected, atol=1e-6, rtol=1e-6)
    zero_init = _encoder(folder, weighted_layers=True)
    assert torch.equal(zero_init.layer_weights.detach(), torch.zeros(LAYERS + 1))


def test_layer_options_are_validated(tiny_folders):
    folder = tiny_folders["wav2vec2", "group"]
    with pytest.raises(ValueError, match="mutually exclusive"):
        SSLEncoder(source=folder, output_layer=1, weighted_layers=True)
    with pytest.raises(ValueError, match="out of range"):
        SSLEncoder(source=folder, output_layer=LAYERS + 1)


def test_hidden_states_survive_layerdrop_in_training(tmp_path):
    """Under layerdrop transformers drops skipped layers from `hidden_states`; ours keeps L+1."""
    folder = build_tiny_ssl_model(tmp_path / "drop", "wav2vec2", num_layers=4, layerdrop=0.7,
                                  hidden_dropout=0.0, attention_dropout=0.0,
                                  activation_dropout=0.0, feat_proj_dropout=0.0)
    encoder = SSLEncoder(source=folder, weighted_layers=True, output_norm=False).train()
    first = SSLEncoder(source=folder, output_layer=0, output_norm=False)
    wavs = _wavs(1, 16000)
    torch.manual_seed(0)
    for _ in range(5):
        out = encoder(wavs)
        assert out.shape == (1, 49, HIDDEN) and torch.isfinite(out).all()
        out.sum().backward()
        assert encoder.layer_weights.grad is not None
    # The input of the first layer does not depend on layerdrop.
    with torch.no_grad():
        torch.testing.assert_close(first.train()(wavs), first.eval()(wavs))


# ------------------------------------------------------------------ freezing
def test_freeze_keeps_model_in_eval_and_blocks_gradients(tiny_folders):
    encoder = SSLEncoder(source=tiny_folders["wav2vec2", "group"], freeze=True,
                         weighted_layers=True).train()
    assert not encoder.model.training and encoder.training
    assert not any(p.requires_grad for p in encoder.model.parameters())
    assert encoder.layer_weights.requires_grad  # SUPERB: the layer mix is still learned
    out = encoder(_wavs())
    out.sum().backward()
    assert all(p.grad is None for p in encoder.model.parameters())
    assert encoder.layer_weights.grad is not None

    plain = SSLEncoder(source=tiny_folders["wav2vec2", "group"], freeze=True).train()
    assert not plain(_wavs()).requires_grad


def test_freeze_feature_extractor_freezes_only_the_cnn(tiny_folders):
    encoder = SSLEncoder(source=tiny_folders["hubert", "group"],
                         freeze_feature_extractor=True).train()
    assert encoder.model.training
    cnn = {name for name, _ in
           encoder.model.feature_extractor.named_parameters(prefix="feature_extractor")}
    for name, parameter in encoder.model.named_parameters():
        assert parameter.requires_grad == (name not in cnn), name
    encoder(_wavs()).sum().backward()
    for name, parameter in encoder.model.named_parameters():
        if name in cnn:
            assert parameter.grad is None, name
    assert encoder.model.encoder.layers[0].feed_forward.output_dense.weight.grad is not None


def test_unfrozen_encoder_trains_end_to_end(tiny_folders):
    encoder = SSLEncoder(source=tiny_folders["wavlm", "layer"], output_norm=False).train()
    assert all(p.requires_grad for p in encoder.model.parameters())
    encoder(_wavs(), torch.tensor([1.0, 0.6])).sum().backward()
    first_conv = encoder.model.feature_extractor.conv_layers[0].conv.weight
    assert first_conv.grad is not None and torch.isfinite(first_conv.grad).all()


def test_spec_augment_flag_is_set_on_the_config(tiny_folders):
    folder = tiny_folders["wav2vec2", "group"]
    assert SSLEncoder(source=folder).model.config.apply_spec_augment is False
    augmented = SSLEncoder(source=folder, apply_spec_augment=True)
    assert augmented.model.config.apply_spec_augment is True


# ------------------------------------------------------------------ precision
def test_runs_under_bf16_autocast(tiny_folders):
    encoder = _encoder(tiny_folders["wav2vec2", "layer"])
    wavs = _wavs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(wavs, torch.tensor([1.0, 0.5]))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    with torch.no_grad():
        reference = encoder(wavs, torch.tensor([1.0, 0.5]))
    assert torch.corrcoef(torch.stack([out.flatten(), reference.flatten()]))[0, 1] > 0.95


# ------------------------------------------------------------------ loading errors
def test_missing_hub_model_offline_raises_a_helpful_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    source = "facebook/svt-no-such-model-xyz"
    with pytest.raises(EncoderNotAvailableError) as info:
        SSLEncoder(source=source)
    message = str(info.value)
    assert source in message and "ssl_source" in message and "hf download" in message
    assert isinstance(info.value, FileNotFoundError)


def test_folder_without_config_raises(tmp_path):
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(EncoderNotAvailableError) as info:
        SSLEncoder(source=tmp_path / "empty_model")
    assert str(tmp_path / "empty_model") in str(info.value) and "ssl_source" in str(info.value)
    with pytest.raises(EncoderNotAvailableError, match="no such folder"):
        SSLEncoder(source=tmp_path / "does" / "not" / "exist")


def test_folder_without_weights_raises_unless_random_init(tiny_folders, tmp_path):
    folder = tmp_path / "config_only"
    folder.mkdir()
    shutil.copy(tiny_folders["wav2vec2", "group"] / "config.json", folder)
    with pytest.raises(EncoderNotAvailableError, match="weights"):
        SSLEncoder(source=folder)
    encoder = SSLEncoder(source=folder, pretrained=False)
    assert encoder.normalize_input is False  # no preprocessor_config.json
    assert encoder(_wavs(1)).shape == (1, 249, HIDDEN)


def test_unsupported_model_type_raises(tmp_path):
    from transformers import BertConfig

    folder = tmp_path / "bert"
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=64).save_pretrained(folder)
    with pytest.raises(UnsupportedEncoderError, match="bert"):
        SSLEncoder(source=folder)
    with pytest.raises(UnsupportedEncoderError):
        build_tiny_ssl_model(tmp_path / "x", "whisper")
    with pytest.raises(UnsupportedEncoderError, match="add_adapter"):
        SSLEncoder(source=build_tiny_ssl_model(tmp_path / "adapter", add_adapter=True))


def test_model_type_falls_back_to_the_name_rule(tiny_folders, tmp_path):
    folder = tmp_path / "my-hubert-checkpoint"
    shutil.copytree(tiny_folders["hubert", "group"], folder)
    config = json.loads((folder / "config.json").read_text())
    del config["model_type"]
    (folder / "config.json").write_text(json.dumps(config))
    assert SSLEncoder(source=folder).model_type == "hubert"


def test_remote_code_named_by_a_model_folder_never_runs(tmp_path, monkeypatch):
    """A config.json whose auto_map points at code in the folder: transformers would ask to run
    it (and run it on "y"); svt loads the built-in class and runs nothing."""
    import builtins
    import json as json_module

    folder = build_tiny_ssl_model(tmp_path / "wav2vec2_model", model_type="wav2vec2")
    marker = tmp_path / "ran.txt"
    (folder / "evil_config.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import Wav2Vec2Config\n"
        "class EvilConfig(Wav2Vec2Config):\n    pass\n")
    (folder / "evil_model.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import Wav2Vec2Model\n"
        "class EvilModel(Wav2Vec2Model):\n    pass\n")
    config = json_module.loads((folder / "config.json").read_text())
    # A model type transformers does not know: only the folder's code could build it.
    config["model_type"] = "evil-ssl"
    config["auto_map"] = {"AutoConfig": "evil_config.EvilConfig",
                          "AutoModel": "evil_model.EvilModel"}
    (folder / "config.json").write_text(json_module.dumps(config))

    prompts = []

    def careless_user(prompt=""):  # answers "y" to transformers' "run the custom code?"
        prompts.append(prompt)
        return "y"

    monkeypatch.setattr(builtins, "input", careless_user)
    encoder = SSLEncoder(source=str(folder))
    assert type(encoder.model).__name__ == "Wav2Vec2Model"
    assert prompts == [] and not marker.exists()


def test_a_bundle_naming_remote_code_loads_without_running_it(tmp_path, monkeypatch):
    import builtins
    import json as json_module

    from svt.inference.bundle import export_bundle, load_bundle
    from svt.models.head import TranscriptionHead

    source = build_tiny_ssl_model(tmp_path / "wav2vec2_src", model_type="wav2vec2")
    encoder = SSLEncoder(source=str(source))
    settings = {"modality": "audio", "label_frame_rate": 49.8, "sample_rate": 16000,
                "dur_threshold": 5, "onset_threshold": 0.4, "offset_threshold": 0.5}
    bundle = export_bundle(tmp_path / "wav2vec2_bundle",
                           encoder, TranscriptionHead(encoder.output_size), settings)
    marker = tmp_path / "ran.txt"
    (bundle / "encoder" / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import Wav2Vec2Config\nclass EvilConfig(Wav2Vec2Config):\n    pass\n")
    config_path = bundle / "encoder" / "config.json"
    config = json_module.loads(config_path.read_text())
    config.update(model_type="evil-ssl", auto_map={"AutoConfig": "evil.EvilConfig"})
    config_path.write_text(json_module.dumps(config))
    prompts = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": prompts.append(prompt) or "y")
    load_bundle(bundle)
    assert prompts == [] and not marker.exists()
