"""Training: optimizers, the loop, metrics, checkpoints and schedules (one module per idea)."""
