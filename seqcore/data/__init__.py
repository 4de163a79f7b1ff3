"""The data every task trains on: typed data specs (spec.py, the one way to get data), corpora,
vocabularies, samplers, IDX image sets, computed waves, downloads and fingerprints."""
