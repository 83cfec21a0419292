"""Benchmarks for dual-storage against raw boto3 and the fastest S3 CLI clients.

Run ``python -m bench.run`` (full) or ``python -m bench.run --quick`` (CI smoke test).
Everything talks to a SeaweedFS server that the bench starts on loopback.
"""
