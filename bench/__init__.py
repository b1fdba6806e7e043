"""Benchmarks: ``python -m bench NAME [options]`` (``make bench`` runs the ledger one).

Each benchmark prints its figures beside the physical limit it measured in the same run, as JSON lines,
so the README can quote them with the command that produced them. Nothing here runs in the test suite.
"""
