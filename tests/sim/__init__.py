"""Deterministic simulation: seeded crash-and-resume nights against fakes (README, Reliability)."""
