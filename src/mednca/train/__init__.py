"""Training: losses, the training loop shared by every model, checkpoints."""
