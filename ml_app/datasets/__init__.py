"""Readers of offline data sets: pure parsers, no database access."""
