"""Writes of ml_app: data set imports."""
