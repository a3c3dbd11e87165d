"""Synthetic user registry: fills identity.users.v1 for demos, tests and benchmarks."""
