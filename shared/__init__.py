"""Countermand's shared package: message contracts, the topic catalogue and runtime wiring.

Services import only this package; it holds no service's logic.
"""
