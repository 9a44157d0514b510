"""One module per dataset layout (MIR-ST500, TONAS, ISMIR2014, N20EMv2, MUSAN and the noisy
mixtures): find songs and notes, validate them, write labels, notes, 16 kHz audio and CSVs."""
