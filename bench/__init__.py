"""Benchmarks: `make bench` runs them against a fresh broker in a subprocess."""
