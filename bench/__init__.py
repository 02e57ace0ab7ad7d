"""Benchmarks behind BENCHMARKS.md: each module prints its figures beside their anchors."""
