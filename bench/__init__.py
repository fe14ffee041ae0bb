"""``make bench``: the home feed, ingestion and a ceiling endpoint, measured on loopback.

Not part of the application or of ``make test``; see docs/BENCHMARKS.md.
"""
