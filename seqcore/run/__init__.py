"""The run layer: one training run of any task (folder, logs, progress, checkpoints, resume, signals)."""
