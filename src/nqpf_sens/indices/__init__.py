"""Composite indices shipped with nqpf_sens: their metadata, data and published results."""
