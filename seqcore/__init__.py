"""seqcore: the framework-neutral core (NumPy and the standard library only).

Specs, corpora, vocabulary, samplers, canonical parameters, the NumPy reference models, the
training protocol and reports live here; frameworks live in `backends.<name>`, loaded by name.
"""
__version__ = "0.1.0"
