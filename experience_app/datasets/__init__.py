"""Parsers and generators for data sets: pure functions, no database access."""
