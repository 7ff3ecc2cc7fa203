"""Run: one run of `run` or `check`, from prepared input to exit code.

prepare (before any request), wiring (builds the collaborators), job (lifecycle:
stages, signals, shutdown), canceller (one reference), summary (tally, exit code).
"""
