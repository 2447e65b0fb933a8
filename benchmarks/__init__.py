"""Benchmarks: each module prints its figures, ours next to a baseline, in one run."""
