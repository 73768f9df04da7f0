"""Benchmarks of kubestash's sync against the fewest possible calls and kubestash 2.0.2."""
