"""Training and evaluation with SpeechBrain: the base Brain the recipes subclass, the fusion
Brain, feature extraction and the helpers every experiment.py uses."""
