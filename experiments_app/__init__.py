"""Experiments: A/B tests with sound statistics, bandits and off-policy evaluation (issue 12)."""
