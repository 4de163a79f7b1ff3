"""The data every task trains on: corpora, vocabularies, samplers, IDX image sets, downloads."""
