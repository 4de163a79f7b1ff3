"""What each task hands the run layer: its batches, evaluation, figures and summary (a Job)."""
