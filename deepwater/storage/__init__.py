"""The storage layer: saved models, the models held in this process, checkpoints."""
