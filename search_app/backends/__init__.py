"""Search backends: PostgreSQL full-text (default) and Meilisearch."""
