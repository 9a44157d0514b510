import gzip
import json
import os
from pathlib import Path

import pytest

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def parity_cases():
    """Cases produced by the original note2frame / frame2note (see tests/data/README.md)."""
    with gzip.open(DATA / "notes_parity_dev.json.gz", "rt") as f:
        return json.load(f)
