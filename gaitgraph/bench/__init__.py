"""Benchmarks of the platform's own steps (each step timed in a fresh process)."""
