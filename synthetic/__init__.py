"""Synthetic repositories and small model versions built from them, for the tests and the benchmarks.

Both import from here (never the benchmarks from ``tests/``). Nothing in the served or trained code path uses
this package: it exists so that checks and measurements run on data and models made the way the real ones are.
"""
