"""The cross-framework comparison report: run records, the grid of runs, figures, HTML and Markdown."""
