"""Command-line entry points (`svt-transcribe`, `svt-score`): argument parsing and output
only; the work is done by the library."""
