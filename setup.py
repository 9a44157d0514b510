"""Installs the `svt` singing-voice-transcription library and its command-line tools."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
# Compatible ranges; the exact versions verified together are pinned in requirements.txt.
requirements = [
    "torch>=2.2",
    "torchaudio>=2.2",
    "speechbrain>=1.0,<2",
    "transformers>=4.40",
    "huggingface_hub>=0.23",
    "safetensors>=0.4",
    "HyperPyYAML>=1.2",
    "ruamel.yaml>=0.17",  # recipe options are checked on the unbuilt YAML (svt.training.options)
    "librosa>=0.10",
    "mir_eval>=0.7",
    "numpy>=1.26",
    "pandas>=2.0",
    "scipy>=1.11",
    "soundfile>=0.12",
    "mido>=1.3",
    "matplotlib>=3.7",
    "tqdm>=4.60",
    "joblib>=1.3",
    "soxr>=0.3",
    # The shipped transcriber's frozen pitch network (MIT; its weights are inside the wheel).
    "torchfcpe>=0.0.4,<0.1",
]

setup(
    name="svt",
    version="0.1.0",
    description="Singing voice transcription (audio, video, audio-visual) on self-supervised models",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["svt", "svt.*"]),
    # The default model: svt/pretrained/<name>/{svt_bundle.json, weights.pt, encoder/...}.
    package_data={"svt": ["pretrained/*/*.json", "pretrained/*/*.pt", "pretrained/*/*.md",
                          "pretrained/*/encoder/*"]},
    install_requires=requirements,
    extras_require={
        "slurm": ["submitit>=1.4"],        # MUSAN preparation / noise synthesis on a cluster
        # vocals of full songs: svt-transcribe --separate, MIR-ST500 preparation --separate
        "separation": ["demucs>=4.0,<5"],
        # Recorded voices in the generated training corpus (WORLD; pyworld imports pkg_resources).
        "corpus": ["pyworld>=0.3.5", "setuptools<81"],
        # svt-live's microphone (needs the PortAudio library) and MIDI ports.
        "live": ["sounddevice>=0.4", "python-rtmidi>=1.5"],
        "test": ["pytest>=7"],
    },
    entry_points={
        "console_scripts": [
            "svt-live=svt.cli.live:main",
            "svt-score=svt.cli.score:main",
            "svt-transcribe=svt.cli.transcribe:main",
        ]
    },
)
