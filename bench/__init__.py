"""Benchmarks: `make bench` runs them and prints what they measured as tables."""
