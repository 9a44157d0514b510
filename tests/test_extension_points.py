"""The extension points a contributor adds to without editing `svt`: an encoder and a head defined
outside the package load back from a bundle (docs/architecture.md, "Adding an encoder or a
head"), and an error class of a new module prints as one line (`svt.errors.SvtUserError`)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from svt.errors import SvtUserError
from svt.inference.bundle import BundleError, export_bundle, load_bundle, read_manifest
from svt.models.encoder import FrameEncoder
from svt.models.head import NUM_FRAME_OUTPUTS, FrameHead
from svt.training.experiment import run_recipe

ROOT = Path(__file__).resolve().parents[1]
HOP, WINDOW = 320, 400


# ------------------------------------------------ step 1-2: an encoder, defined outside svt
class FramePoolEncoder(FrameEncoder):
    """Windows of 400 samples every 320 (50 frames/s, as wav2vec 2.0) -> a linear projection."""

    encoder_type = "test_frame_pool"
    sample_rate = 16000
    receptive_field = WINDOW

    def __init__(self, size: int = 8):
        super().__init__()
        self.size = int(size)
        self.project = torch.nn.Linear(WINDOW, self.size)

    @property
    def output_size(self) -> int:
        return self.size

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / HOP

    def num_frames(self, num_inputs):
        if torch.is_tensor(num_inputs):
            return torch.clamp(torch.div(num_inputs - WINDOW, HOP, rounding_mode="floor") + 1,
                               min=0)
        return max(0, (int(num_inputs) - WINDOW) // HOP + 1)

    def frame_lengths(self, lens, num_inputs, batch_size=None):
        if lens is None:
            return torch.full((batch_size or 1,), self.num_frames(num_inputs), dtype=torch.long)
        return self.num_frames(torch.round(lens.float() * num_inputs).long())

    def forward(self, wavs, lens=None):
        frames = wavs.unfold(1, WINDOW, HOP)  # (B, T, WINDOW)
        features = self.project(frames)
        valid = self.frame_lengths(lens, wavs.shape[1], wavs.shape[0]).to(wavs.device)
        mask = torch.arange(features.shape[1], device=wavs.device)[None, :] < valid[:, None]
        return features * mask[..., None]

    def encoder_config(self) -> dict:
        return {"size": self.size}

    def save_for_bundle(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "options.json").write_text(json.dumps(self.encoder_config()))
        return folder

    @classmethod
    def from_bundle(cls, folder, **overrides):
        return cls(**{**json.loads((Path(folder) / "options.json").read_text()), **overrides})


# ----------------------------------------------------------------------- step 3: a head
class TwoLayerHead(FrameHead):
    """Linear -> tanh -> Linear(20)."""

    head_type = "test_two_layer"

    def __init__(self, input_size: int, hidden_size: int = 12):
        super().__init__()
        self.config = {"input_size": int(input_size), "hidden_size": int(hidden_size)}
        self.layers = torch.nn.Sequential(torch.nn.Linear(input_size, hidden_size),
                                          torch.nn.Tanh(),
                                          torch.nn.Linear(hidden_size, NUM_FRAME_OUTPUTS))

    def head_config(self) -> dict:
        return dict(self.config)

    def forward(self, features):
        return self.layers(features)


SETTINGS = {"modality": "audio", "label_frame_rate": 50.0, "sample_rate": 16000,
            "dur_threshold": 5, "onset_threshold": 0.4, "offset_threshold": 0.5}


def test_an_encoder_and_a_head_defined_in_a_test_round_trip_through_a_bundle(tmp_path):
    """docs/architecture.md, "Adding an encoder or a head", step by step: the two classes above
    (steps 1-3) go into a bundle and come back through `load_bundle` with no edit to svt
    (step 5; step 4, training them, is any recipe with the classes named in its YAML)."""
    torch.manual_seed(0)
    encoder, head = FramePoolEncoder(size=8), TwoLayerHead(8, hidden_size=12)
    assert FrameEncoder.for_type("test_frame_pool") is FramePoolEncoder
    assert "test_two_layer" in FrameHead.registry.names()

    folder = export_bundle(tmp_path / "model", encoder, head, SETTINGS)
    manifest = read_manifest(folder)
    assert manifest["encoder_type"] == "test_frame_pool" and manifest["encoder_config"] == \
        {"size": 8}
    assert manifest["head_type"] == "test_two_layer" and manifest["head_config"] == \
        {"input_size": 8, "hidden_size": 12}

    model = load_bundle(folder)
    assert type(model.encoder) is FramePoolEncoder and type(model.head) is TwoLayerHead
    assert model.frame_rate == 50.0 and model.label_frame_rate == 50.0
    wavs = torch.randn(2, 16000)
    lens = torch.tensor([1.0, 0.5])
    with torch.no_grad():
        expected = head(encoder(wavs, lens))
        torch.testing.assert_close(model(wavs, lens), expected)
    # No sung pitch (the encoder has no pitch network): the four decoder inputs.
    frames = model.predict_frames(wavs[0].numpy())
    assert len(frames) == 4 and len(frames[0]) == encoder.num_frames(16000) == 49
    assert model.decode(frames).shape[1] == 3

    # Whole recordings through the front door.
    import svt

    notes = svt.transcribe(np.random.default_rng(0).normal(0, 0.1, 40000).astype(np.float32),
                           16000, model=model)
    assert notes.ndim == 2 and notes.shape[1] == 3


def test_a_bundle_never_imports_code_so_an_outside_class_is_imported_first(tmp_path):
    """Step 5: in a process that has not imported the module defining the encoder, the bundle
    is refused with the types this svt knows (a bundle names a type, never code to import)."""
    folder = export_bundle(tmp_path / "model", FramePoolEncoder(), TwoLayerHead(8), SETTINGS)
    code = ("from svt.inference.bundle import BundleError, load_bundle\n"
            "try:\n    load_bundle(r'%s')\nexcept BundleError as err:\n    print(err)\n" % folder)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "unknown encoder type 'test_frame_pool'" in proc.stdout
    assert "'pitch_network'" in proc.stdout and "'ssl'" in proc.stdout  # the built-in ones


def test_builtin_architectures_register_on_first_lookup_and_not_on_import():
    """`import svt.models` (and the interface modules) import no architecture; the first lookup
    of a name not registered yet imports them all, so a built-in type needs no import."""
    code = ("import sys\n"
            "from svt.models.encoder import FrameEncoder\n"
            "from svt.models.head import FrameHead\n"
            "print(sorted(m for m in sys.modules if m.startswith('svt.models.')))\n"
            "print(FrameEncoder.for_type('pitch_network').__name__)\n"
            "print(FrameHead.build('mlp', {'input_size': 4}).head_type)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported, encoder, head = proc.stdout.splitlines()
    assert imported == "['svt.models.encoder', 'svt.models.head']"
    assert (encoder, head) == ("PitchNetworkEncoder", "mlp")


def test_registry_refuses_a_taken_name_and_ignores_inherited_ones():
    with pytest.raises(TypeError, match="encoder_type 'ssl' is already svt.models.ssl.SSLEncoder"):
        class Impostor(FramePoolEncoder):  # noqa: F841
            encoder_type = "ssl"

    class Variant(FramePoolEncoder):  # inherits the name: the registered class stays the parent
        pass

    assert FrameEncoder.for_type("test_frame_pool") is FramePoolEncoder
    with pytest.raises(KeyError, match="unknown head type 'nope'; known: .*'linear'"):
        FrameHead.build("nope", {})


def test_unknown_head_in_a_bundle_is_a_bundle_error(tmp_path):
    folder = export_bundle(tmp_path / "model", FramePoolEncoder(), TwoLayerHead(8), SETTINGS)
    manifest = json.loads((folder / "svt_bundle.json").read_text())
    manifest["head_type"] = "gone"
    (folder / "svt_bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="cannot build the head .*unknown head type 'gone'"):
        load_bundle(folder)


# --------------------------------------------------------------------------- user errors
class TempoMapError(SvtUserError, ValueError):
    """A new module's error about the user's input (defined here, outside svt)."""


def test_a_new_modules_user_error_prints_as_one_line(capsys):
    def main(argv):
        raise TempoMapError(f"{argv[0]}: the tempo map has no beats; export it again")

    assert run_recipe(main, "MyRecipe", ["song.tempo"]) == 2
    assert capsys.readouterr().err == \
        "MyRecipe: error: song.tempo: the tempo map has no beats; export it again\n"
    with pytest.raises(ValueError):  # still the built-in kind it names
        main(["x"])


def test_a_new_modules_user_error_in_a_prepare_script():
    from svt.datasets.arguments import run_cli

    def prepare():
        raise TempoMapError("tempo.csv: no beats")

    assert run_cli(prepare) == 1


def test_every_svt_error_class_is_a_user_error():
    """The error classes of svt are all about the user's input (bugs raise built-in errors)."""
    import importlib

    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in
             sorted((ROOT / "svt").rglob("*.py")) if p.name != "__init__.py"]
    found = {}
    for name in names:
        if name.startswith("svt.cli"):
            continue  # command lines: no error classes of their own
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, Exception) \
                    and value.__module__ == name and not issubclass(value, Warning):
                found[f"{name}.{attr}"] = issubclass(value, SvtUserError)
    missing = [name for name, ok in found.items() if not ok]
    assert found and not missing, ("error classes that are no svt.errors.SvtUserError (derive "
                                   "them from it, keeping their built-in base): "
                                   + ", ".join(missing))


def test_the_documented_steps_are_the_ones_this_file_follows():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Adding an encoder or a head", 1)[1].split("\n## ", 1)[0]
    for name in ("tests/test_extension_points.py", "encoder_type", "head_type", "head_config",
                 "encoder_config", "save_for_bundle", "from_bundle", "sung_pitch",
                 "export_bundle", "load_bundle", "import_architectures", "encoder_inputs"):
        assert name in section, name
    dataset = text.split("## Adding a dataset", 1)[1].split("\n## ", 1)[0]
    assert "svt.errors.SvtUserError" in dataset
