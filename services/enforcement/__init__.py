"""Enforcement: turns impact assessments into cluster commands and tracks every cluster's acknowledgement."""
