"""A damaged or foreign bundle is one clear error naming the file and the fault."""
import json
import shutil

import pytest
import torch

from svt.inference.bundle import BundleError, load_bundle
from svt.inference.transcribe import DEFAULT_MODEL


@pytest.fixture()
def bundle(tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, copy)
    return copy


def expect_error(bundle, pattern):
    with pytest.raises(BundleError, match=pattern) as info:
        load_bundle(bundle)
    assert "weights_only=False" not in str(info.value)
    return str(info.value)


def test_truncated_weights(bundle):
    weights = bundle / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    message = expect_error(bundle, r"weights\.pt: not a readable weights file")
    assert str(weights) in message


def test_garbage_weights(bundle):
    (bundle / "weights.pt").write_bytes(b"\x80\x04garbage" * 50)
    expect_error(bundle, "not a readable weights file")


def test_weights_holding_objects_other_than_tensors(bundle):
    torch.save({"head.w.weight": torch.zeros(1), "x": torch.nn.Linear(2, 2)},
               bundle / "weights.pt")
    expect_error(bundle, "holds objects other than tensors|expected a dict of tensors")


def test_missing_extra_and_misshaped_tensors(bundle):
    state = torch.load(bundle / "weights.pt", weights_only=True)
    first = sorted(state)[0]
    del state[first]
    state["head.extra"] = torch.zeros(3)
    name = "head.w.weight" if "head.w.weight" in state else sorted(k for k in state
                                                                   if k.startswith("head"))[0]
    state[name] = torch.zeros(7, 7)
    torch.save(state, bundle / "weights.pt")
    message = expect_error(bundle, "the weights do not fit the model")
    assert f"1 missing tensor(s): {first}" in message
    assert "1 unexpected tensor(s): head.extra" in message
    assert f"1 mis-shaped tensor(s): {name}" in message


def test_manifest_missing_a_key(bundle):
    manifest = json.loads((bundle / "svt_bundle.json").read_text())
    del manifest["onset_threshold"]
    (bundle / "svt_bundle.json").write_text(json.dumps(manifest))
    expect_error(bundle, r"svt_bundle\.json: the manifest lacks onset_threshold")


def test_unknown_encoder_option(bundle):
    path = bundle / "encoder" / "svt_encoder.json"
    options = json.loads(path.read_text())
    options["warp_drive"] = True
    path.write_text(json.dumps(options))
    expect_error(bundle, r"encoder: the encoder options do not fit .*warp_drive")


def test_exported_bundles_are_readable_by_others(tmp_path):
    import os
    import stat

    from svt.inference.bundle import export_bundle
    from svt.models.head import TranscriptionHead
    from svt.models.pitch_network import PitchNetworkEncoder

    encoder = PitchNetworkEncoder(hidden_size=8, num_layers=1)
    previous = os.umask(0o022)
    try:
        folder = export_bundle(tmp_path / "model", encoder, TranscriptionHead(encoder.output_size),
                               {"onset_threshold": 0.4, "offset_threshold": 0.5,
                                "label_frame_rate": 100.0, "sample_rate": 16000})
    finally:
        os.umask(previous)
    modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in [folder, *folder.rglob("*")]}
    assert modes["."] == 0o755 and modes["encoder"] == 0o755
    assert modes["weights.pt"] == modes["svt_bundle.json"] == 0o644
    assert modes["encoder/svt_encoder.json"] == 0o644
    load_bundle(folder)


def test_only_the_recipes_hparams_file_goes_through_hyperpyyaml():
    """HyperPyYAML runs the Python its tags name: only the hparams file a user passes to a recipe
    (svt.training.experiment.load_experiment, whose options svt.training.options checks first)
    may be parsed with it, never a bundle, a dataset file or anything else the library reads."""
    import ast
    from pathlib import Path

    import svt

    users = set()
    for path in Path(svt.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(name.split(".")[0] == "hyperpyyaml" for name in names):
                users.add(path.relative_to(Path(svt.__file__).parent).as_posix())
    assert users == {"training/experiment.py", "training/options.py"}


def edit_manifest(bundle, change):
    path = bundle / "svt_bundle.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(change(manifest)))


def setting(key, value):
    return lambda manifest: {**manifest, key: value}


@pytest.mark.parametrize("change, pattern", [
    (lambda m: [1, 2, 3], r"svt_bundle\.json: corrupt bundle manifest \(a JSON list"),
    (lambda m: None, r"corrupt bundle manifest \(a JSON NoneType"),
    (setting("onset_threshold", 5), r"onset_threshold is 5, expected a number between 0 and 1"),
    (setting("offset_threshold", -1), r"offset_threshold is -1, expected a number between 0 and 1"),
    (setting("onset_threshold", "0.4"), r"onset_threshold is '0.4', expected a number between"),
    (setting("onset_threshold", None), r"onset_threshold is None, expected a number between"),
    (setting("decoder", "beam"), r"decoder is 'beam', expected one of paper, voiced, pitch"),
    (setting("onset_delay", 0.5), r"onset_delay is 0.5, expected seconds between 0 and 0.1"),
    (setting("onset_delay", -0.01), r"onset_delay is -0.01, expected seconds between 0 and 0.1"),
    (setting("dur_threshold", 0), r"dur_threshold is 0, expected a positive number"),
    (setting("dur_threshold", "five"), r"dur_threshold is 'five', expected a positive number"),
    (setting("format_version", "1"), r"format_version is '1', expected the number 1"),
    (setting("encoder_type", ["ssl"]), r"encoder_type is \['ssl'\], expected a name"),
    (setting("head_config", {"input_size": -1}), r"svt_bundle\.json: cannot build the head"),
    (setting("encoder_config", "x"), r"encoder_config is 'x', expected an object of options"),
])
def test_manifest_settings_of_the_wrong_type_or_range(bundle, change, pattern):
    """Settings that would decode a song as one note, or fail after a whole file was
    transcribed, are refused when the bundle loads, naming the manifest."""
    edit_manifest(bundle, change)
    message = expect_error(bundle, pattern)
    assert str(bundle / "svt_bundle.json") in message


def test_a_manifest_with_a_byte_order_mark_still_loads(bundle):
    path = bundle / "svt_bundle.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_bundle(bundle).settings["decoder"] == "pitch"


def test_encoder_folder_that_does_not_fit_its_weights(tmp_path):
    """An SSL bundle whose encoder/config.json was edited: transformers' long mismatch report
    becomes one line naming the encoder folder."""
    from svt.inference.bundle import export_bundle
    from svt.models.head import TranscriptionHead
    from svt.models.ssl import SSLEncoder
    from svt.synthetic.tiny_models import build_tiny_ssl_model

    encoder = SSLEncoder(source=build_tiny_ssl_model(tmp_path / "hf", num_layers=1))
    folder = export_bundle(tmp_path / "model", encoder, TranscriptionHead(encoder.output_size),
                           {"frame_rate": 49.8, "sample_rate": 16000, "dur_threshold": 5,
                            "onset_threshold": 0.4, "offset_threshold": 0.5})
    load_bundle(folder)  # whole, it loads
    config = next((folder / "encoder").rglob("config.json"))
    values = json.loads(config.read_text())
    values["hidden_size"] *= 2
    config.write_text(json.dumps(values))
    message = expect_error(folder, r"encoder: cannot build the encoder from the bundle|"
                                   r"the weights do not fit")
    assert len(message.splitlines()) == 1
    config.write_text("{ not json")
    message = expect_error(folder, r"encoder: cannot build the encoder from the bundle")
    assert "download" not in message.lower()
