"""Benchmarks: scripts that print figures, each ending with one JSON line."""
