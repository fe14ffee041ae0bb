"""Generators of the demo world: pure functions, no database access."""
