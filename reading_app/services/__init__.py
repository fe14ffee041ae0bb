"""Writes of reading_app: catalog imports, subscriptions, saves and reading progress."""
