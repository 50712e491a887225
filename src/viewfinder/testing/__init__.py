"""Helpers for tests and benchmarks: tiny offline model checkpoints."""
