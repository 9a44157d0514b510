"""From prepared CSVs to SpeechBrain datasets: audio utterances read partially from disk, lip
videos, per-song features for the audio-visual stage, and song stitching."""
