"""Training engine: epoch loop, checkpoints, distributed set-up."""
