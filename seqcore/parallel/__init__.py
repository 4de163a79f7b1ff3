"""Data-parallel training: the world of workers, their collectives, the backend one worker trains through."""
