"""Search over newsletters and their items through a pluggable ``SearchBackend``."""
