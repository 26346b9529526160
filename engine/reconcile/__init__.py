"""Reconciliation: the broker is the truth about positions and orders; the store is brought in line."""
