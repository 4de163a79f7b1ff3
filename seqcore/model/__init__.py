"""The model, decided once in NumPy: its spec, canonical parameters, dropout masks and the reference."""
