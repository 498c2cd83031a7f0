"""Studies on the toolkit: the autoencoder study, SSFT, the hardness scoreboard, pruning; output file names."""
