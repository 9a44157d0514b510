"""svt: singing voice transcription from audio, lip video, or both.

The library behind the recipes: frame labels (`svt.labels`), note decoding (`svt.decoding`),
scoring (`svt.scoring`), note files (`svt.notes_io`), encoders, heads, data pipelines, training
(`svt.brain`), model bundles and transcription (`svt.transcribe`).
"""

__version__ = "0.1.0"

from svt.decoding import frames_to_notes  # noqa: E402,F401
from svt.labels import notes_to_frames  # noqa: E402,F401
from svt.scoring import score_song  # noqa: E402,F401
from svt.transcribe import transcribe  # noqa: E402,F401
