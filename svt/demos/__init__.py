"""The one-command demos (`make demo`, `make demo-video`, `make demo-av`): generated data
through the real recipes."""
