"""Feature store: the user event log, counters and item features."""
