"""Tests of the embedded Bambora sandbox (worker.sandbox)."""
