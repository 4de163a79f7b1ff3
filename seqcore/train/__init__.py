"""The training protocol: a step, a span of steps, an epoch; the training spec and schedules."""
