"""Logs, Prometheus metrics and readiness probes."""
