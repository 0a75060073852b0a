"""Benchmarks: measurements run by hand, not tests (see README.md)."""
