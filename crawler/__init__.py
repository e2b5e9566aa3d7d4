"""backlink-crawler: verify claimed backlinks."""
