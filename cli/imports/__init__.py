"""`countermand registry import FILE`: load a provider's real user base into identity.users.v1.

Read (CSV, JSON Lines, Parquet) -> map columns -> validate on Arrow columns -> encode UserUpserted JSON ->
produce per partition in whole batches. See docs/registry-import.md.
"""
