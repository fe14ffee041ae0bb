"""Writes of experience_app: feed, interactions, interests and the demo world."""
