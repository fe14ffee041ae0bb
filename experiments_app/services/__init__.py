"""Writes of the experiments app: validation and the draft -> running -> stopped lifecycle."""
