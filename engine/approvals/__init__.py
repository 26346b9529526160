"""Decisions on signals: one per signal and subscriber, the executor that starts them, auto-execution."""
