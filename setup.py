"""Installs the `svt` singing-voice-transcription library and its command-line tools."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#") and not line.startswith("pytest")
]

setup(
    name="svt",
    version="0.1.0",
    description="Singing voice transcription (audio, video, audio-visual) on self-supervised models",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["svt", "svt.*"]),
    install_requires=requirements,
    entry_points={
        "console_scripts": [
            "svt-score=svt.cli.score:main",
            "svt-transcribe=svt.cli.transcribe:main",
        ]
    },
)
