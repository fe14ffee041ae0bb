"""Writes of experience_app: data set imports and the demo world."""
