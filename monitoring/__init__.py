"""Health endpoints, metrics and alert rules."""
