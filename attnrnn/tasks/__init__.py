"""Training tasks: each ties a model to its data, loss and metrics for the generic trainer."""
