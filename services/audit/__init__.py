"""Audit service: a hash-chained ledger of every message on every topic, and its replay."""
