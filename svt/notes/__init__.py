"""Frame targets, note decoding, scoring and note files: the note-level core every other part
builds on (no torch)."""
