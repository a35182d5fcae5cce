"""The model: architecture (config), weights, the saved artifact, attention and direction."""
