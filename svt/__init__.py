"""svt: singing voice transcription from audio, lip video, or both.

The calls most users need are importable from here; each is loaded on first use, so
`import svt` (and `svt-score`) stays light and never imports torch unless transcription is asked
for. The layout of the library is described in docs/architecture.md.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "LiveTranscriber": "svt.inference.live",
    "frames_to_notes": "svt.notes.decoding",
    "notes_to_frames": "svt.notes.labels",
    "score_song": "svt.notes.scoring",
    "transcribe": "svt.inference.transcribe",
    "transcribe_files": "svt.inference.files",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'svt' has no attribute {name!r}")
