"""Using a trained model: inference bundles, chunked transcription of recordings of any
length (with lip video for audio-visual models), piano-roll plots."""
