"""The generic training engine: optimizer and schedule, checkpoints, the training loop."""
