"""Offline BPTT training in PyTorch of the same model the Numba core runs (the only torch importer in rnncore)."""
