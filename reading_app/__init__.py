"""Content core (categories, providers, items, subscriptions) and reading progress."""
