"""Fixtures every test module may use: the original's parity cases and the recipe runner."""
import gzip
import json
import os
import runpy
from pathlib import Path

import pytest

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def parity_cases():
    """Cases produced by the original note2frame / frame2note (see tests/data/README.md)."""
    with gzip.open(DATA / "notes_parity_dev.json.gz", "rt") as f:
        return json.load(f)


class RecipeRunner:
    """Runs a recipe's `experiment.py` in this process: `run_experiment(recipe, yaml, *args)` is
    `python <recipe>/experiment.py <recipe>/hparams/<yaml> *args` without `run_recipe` around it,
    so it returns what `main` returns and raises what it raises."""

    def main(self, recipe: str):
        """The `main(argv)` of `<recipe>/experiment.py` (`recipe`: its folder, e.g.
        "N20EMv2/audio_only"), for a test that builds its own argv or wraps it in `run_recipe`."""
        return runpy.run_path(str(ROOT / recipe / "experiment.py"), run_name="experiment")["main"]

    def __call__(self, recipe: str, yaml: str, *args):
        """Run the recipe on its `hparams/<yaml>` with the options `args` (paths and numbers are
        turned into strings)."""
        return self.main(recipe)([str(ROOT / recipe / "hparams" / yaml), *map(str, args)])


@pytest.fixture(scope="session")
def run_experiment():
    """`run_experiment(recipe, yaml, *args)` runs a recipe (see `RecipeRunner`)."""
    return RecipeRunner()
