"""Observe: what people and machines see of a run: logs, progress, metrics."""
